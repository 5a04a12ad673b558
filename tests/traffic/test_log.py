"""The decision log: records written by the writer thread, text kept only where allowed, retention, drops."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tierwise.routing.answer_signals import AnswerConfidence
from tierwise.traffic import store
from tierwise.traffic.log import DecisionLog
from tierwise.traffic.record import DecisionRecord
from tierwise.traffic.settings import DecisionLogSettings


def _record(i: int, **kw: object) -> DecisionRecord:
    base: dict[str, object] = dict(
        request_id=f"req-{i}", time=time.time(), tier="device", model="tiny", router="learned",
        router_version="abc123", reasons=["cheapest"], allowed=["device", "cloud"],
        predicted_quality={"device": 0.6, "cloud": 0.9}, latency_ms=12.5, prompt_tokens=10, completion_tokens=20,
        cost_usd=0.0, prompt=f"question {i}", answer=f"answer {i}",
        confidence=AnswerConfidence(mean_logprob=-0.4, min_logprob=-3.0, mean_entropy=1.2, tokens=20),
    )
    base.update(kw)
    return DecisionRecord(**base)  # type: ignore[arg-type]


def _read(path: Path) -> list[DecisionRecord]:
    conn = store.connect(path)
    try:
        return store.read_records(conn)
    finally:
        conn.close()


def test_records_round_trip_through_the_writer_thread(tmp_path: Path) -> None:
    log = DecisionLog(DecisionLogSettings(path=tmp_path / "t.sqlite", keep_text=True, batch_size=7))
    log.start()
    records = [_record(i) for i in range(50)]
    assert all(log.append(r) for r in records)
    asyncio.run(log.aclose())
    assert log.written == 50 and log.dropped == 0
    assert _read(tmp_path / "t.sqlite") == records


def test_the_writer_gathers_a_batch_for_its_interval_and_close_does_not_wait_for_it(tmp_path: Path) -> None:
    log = DecisionLog(DecisionLogSettings(path=tmp_path / "t.sqlite", flush_interval_s=2.0))
    log.start()
    for i in range(20):
        log.append(_record(i))
    time.sleep(0.3)
    assert log.written == 0  # still gathering: no transaction per request
    started = time.monotonic()
    log.close()
    assert log.written == 20 and time.monotonic() - started < 1.5  # close() cuts the interval short, writes all


def test_text_is_kept_only_when_allowed(tmp_path: Path) -> None:
    cases = {"off": dict(keep_text=False), "edge": dict(keep_text=True, location="edge"),
             "device": dict(keep_text=True, location="device")}
    kept: dict[str, list[str | None]] = {}
    for name, kw in cases.items():
        path = tmp_path / f"{name}.sqlite"
        log = DecisionLog(DecisionLogSettings(path=path, **kw))  # type: ignore[arg-type]
        log.start()
        log.append(_record(0))
        log.append(_record(1, device_only=True, prompt="my email is a@b.com", answer="ok"))
        log.close()
        kept[name] = [r.prompt for r in _read(path)]
    assert kept["off"] == [None, None]
    assert kept["edge"] == ["question 0", None]  # personal data kept on the device never lands in an edge log
    assert kept["device"] == ["question 0", "my email is a@b.com"]
    raw = (tmp_path / "edge.sqlite").read_bytes() + (tmp_path / "off.sqlite").read_bytes()
    assert b"a@b.com" not in raw


def test_keys_are_hashed_with_a_salt_per_log(tmp_path: Path) -> None:
    a, b = (DecisionLog(DecisionLogSettings(path=tmp_path / f"{n}.sqlite")) for n in "ab")
    a.start()
    b.start()
    try:
        assert a.hash_key("sk-secret") == a.hash_key("sk-secret")
        assert a.hash_key("sk-secret") != b.hash_key("sk-secret")
        assert a.hash_key("sk-secret") != a.hash_key("sk-other")
        assert "secret" not in (a.hash_key("sk-secret") or "")
        assert a.hash_key(None) is None
    finally:
        a.close()
        b.close()


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    log = DecisionLog(DecisionLogSettings(path=tmp_path / "t.sqlite", queue_size=3))
    assert not log.append(_record(0))  # not started: refused, counted
    log.start()
    conn = sqlite3.connect(tmp_path / "t.sqlite", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")  # the writer cannot commit: its queue fills up
    try:
        results = [log.append(_record(i)) for i in range(200)]
        assert not all(results)
        assert log.dropped >= 200 - 3 - 256  # at most one batch in the writer's hands plus the queue
        assert log.dropped > 1
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    log.close()
    assert log.written + log.lost + log.dropped == 201


def test_retention_deletes_old_rows_and_keeps_the_file_under_its_size(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    conn = store.connect(path)
    now = time.time()
    rows = [store.row_of(_record(i, time=now - 86400 * (10 if i < 100 else 0), answer="x" * 2000), keep_text=True)
            for i in range(2000)]
    store.insert_rows(conn, rows)
    assert store.used_bytes(conn) > 3_000_000
    deleted = store.prune(conn, max_bytes=1_000_000, max_age_s=5 * 86400, now=now)
    left = store.read_records(conn)
    assert deleted == 2000 - len(left) and len(left) > 0
    assert all(r.time >= now - 5 * 86400 for r in left)  # the old rows went first
    assert [r.request_id for r in left] == [f"req-{i}" for i in range(2000 - len(left), 2000)]  # oldest deleted
    assert store.used_bytes(conn) <= 1_000_000
    conn.close()
    assert path.stat().st_size <= 1_100_000  # pages handed back (incremental vacuum), not only reused


def test_the_writer_prunes_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    log = DecisionLog(DecisionLogSettings(path=path, max_age_days=1, prune_every_s=0.01, batch_size=1))
    log.start()
    log.append(_record(0, time=time.time() - 3 * 86400))
    time.sleep(0.05)
    log.append(_record(1))
    time.sleep(0.05)
    log.append(_record(2))
    log.close()
    assert [r.request_id for r in _read(path)] == ["req-1", "req-2"]


@pytest.mark.parametrize("bad", [{"max_mb": 0}, {"max_age_days": -1}, {"location": "moon"}, {"colour": 1}])
def test_bad_settings_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DecisionLogSettings(path=tmp_path / "x", **bad)  # type: ignore[arg-type]


def test_the_config_takes_a_log_section_and_names_a_wrong_key(tmp_path: Path) -> None:
    from tierwise.config import settings_from_dict
    from tierwise.errors import ConfigError

    tiers = [{"name": "cloud", "location": "cloud", "backend": "openai", "base_url": "http://x/v1", "model": "m"}]
    settings = settings_from_dict({"tiers": tiers, "router": {"log": {"path": str(tmp_path / "t.sqlite"),
                                                                      "keep_text": True, "location": "device"}}})
    assert settings.router.log is not None and settings.router.log.location == "device"
    assert settings.router.reload_every_s == 5.0
    with pytest.raises(ConfigError, match=r"router\.log\.keep_txt"):
        settings_from_dict({"tiers": tiers, "router": {"log": {"path": "t.sqlite", "keep_txt": True}}})


def test_a_log_that_cannot_be_opened_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    from tierwise.errors import ConfigError

    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match=r"router\.log\.path"):
        DecisionLog(DecisionLogSettings(path=tmp_path / "file" / "t.sqlite")).start()
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="cannot open"):
        DecisionLog(DecisionLogSettings(path=tmp_path / "garbage.sqlite")).start()
