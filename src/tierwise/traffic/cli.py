"""`tierwise label`: grade a sample of logged traffic with a judge tier, as outcome rows a router trains on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tierwise.config import Settings, TierConfig
    from tierwise.traffic.judge import Answerer, Judge
    from tierwise.traffic.record import DecisionRecord


def label_command(
    log_path: Annotated[Path, typer.Option("--log", help="decision log (SQLite) written by the gateway")],
    config: Annotated[Path, typer.Option("--config", help="the gateway's config: where the judge tier is")],
    judge_tier: Annotated[str, typer.Option("--judge", help="the tier that grades (usually the strongest)")],
    sample: Annotated[float, typer.Option("--sample", min=0.0, max=1.0, help="share of unlabelled requests")] = 0.05,
    answer_share: Annotated[
        float, typer.Option("--answer-share", min=0.0, max=1.0, help="share of those the judge also answers")
    ] = 0.2,
    ask: Annotated[
        list[str] | None,
        typer.Option("--ask", metavar="TIER",
                     help="a tier that answers every sampled request again, graded too (repeatable; usually the "
                          "cheap tiers: rows then hold an outcome for each)"),
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="also write the rows here (JSONL)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the cost estimate and stop")] = False,
) -> None:
    """Ask a judge tier to grade served answers (and answer a share itself, and grade the --ask tiers' answers);
    labels go into the log."""
    from tierwise.config import load_settings
    from tierwise.outcomes import text_id
    from tierwise.traffic import store
    from tierwise.traffic.labels import estimate, sample_records

    settings = load_settings(config)
    judge = _tier(settings, judge_tier, config, "--judge")
    asked = {name: _tier(settings, name, config, "--ask") for name in dict.fromkeys(ask or [])}
    if judge_tier in asked:
        raise typer.BadParameter(f"{judge_tier!r} is the judge: it answers itself with --answer-share",
                                 param_hint="--ask")
    if not log_path.is_file():
        raise typer.BadParameter(f"{log_path} does not exist", param_hint="--log")
    if sample <= 0.0:
        raise typer.BadParameter("must be > 0", param_hint="--sample")
    conn = store.connect(log_path)
    try:
        records = store.read_records(conn)
        labels = store.read_labels(conn)
        done = {row["request_id"] for row in labels}
        picked = sample_records(records, share=sample, seed=seed, already_labelled=done,
                                labelled_queries={text_id(str(row["query"])) for row in labels},
                                judge_on_device=judge.location == "device")
        cost = estimate(picked, answer_share=answer_share, seed=seed, judge=judge.cost,
                        ask={name: t.cost for name, t in asked.items()})
        with_text = sum(1 for r in records if r.prompt and r.answer)
        typer.echo(f"{len(records)} requests logged, {with_text} with text, {len(done)} labelled already; "
                   f"sampled {len(picked)}: {cost} at the prices of {', '.join([judge_tier, *asked])}")
        if dry_run or not picked:
            return
        rows = asyncio.run(_label(picked, judge, asked, answer_share=answer_share, seed=seed))
        store.insert_labels(conn, rows)
    finally:
        conn.close()
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in rows)
    skipped = len(picked) - sum(1 for r in rows if r["kind"] == "served")
    typer.echo(f"wrote {len(rows)} label rows to {log_path}" + (f" and {output}" if output else "")
               + (f"; the judge gave no grade for {skipped}" if skipped else ""))


def _tier(settings: Settings, name: str, config: Path, option: str) -> TierConfig:
    try:
        return settings.tier(name)
    except KeyError:
        raise typer.BadParameter(f"no tier {name!r} in {config}", param_hint=option) from None


async def _label(picked: list[DecisionRecord], judge_config: TierConfig, asked: dict[str, TierConfig], *,
                 answer_share: float, seed: int) -> list[dict[str, object]]:
    """Start the judge and the asked tiers as the gateway would (any backend), label, stop them."""
    from tierwise.errors import ConfigError, TierUnavailable
    from tierwise.tiers.registry import build_tier
    from tierwise.traffic.judge import TierAnswerer, TierJudge
    from tierwise.traffic.labels import label_records

    started: list[Answerer] = []
    try:
        for name, config in [(judge_config.name, judge_config), *asked.items()]:
            tier = build_tier(config)
            try:
                await tier.start()
            except (ConfigError, TierUnavailable, OSError) as err:
                await tier.aclose()
                raise typer.BadParameter(f"tier {name!r} did not start: {err}",
                                         param_hint="--judge" if config is judge_config else "--ask") from None
            started.append(TierJudge(tier) if config is judge_config else TierAnswerer(tier))
        judge: Judge = started[0]  # type: ignore[assignment]
        return await label_records(picked, judge, answer_share=answer_share, seed=seed,
                                   ask=dict(zip(asked, started[1:], strict=True)))
    finally:
        for answerer in started:
            await answerer.aclose()
