"""PII detector: positives per kind, negatives that look similar, checksum failures, configurable kinds."""

from __future__ import annotations

import pytest

from tierwise.routing.pii import cn_id_valid, detect_pii, luhn_valid, pii_kinds_found


def cn_id_with_check(prefix17: str) -> str:
    """The 17 digits with their check character (shared with test_pii_forms)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return prefix17 + "10X98765432"[sum(int(d) * w for d, w in zip(prefix17, weights, strict=True)) % 11]


def luhn_completed(prefix: str) -> str:
    """The prefix with the digit that makes it pass Luhn."""
    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


VALID_ID = cn_id_with_check("11010519491231002")  # check character X
VALID_ID_DIGIT = cn_id_with_check("44030419900101123")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+work@example.co.uk today", "email"),
        ("张三的邮箱是 zhang.san@qq.com。", "email"),
        ("call +86 138 0013 8000 please", "phone"),
        ("我的手机号13800138000", "phone"),
        ("手机 138-0013-8000", "phone"),
        ("office (555) 123-4567", "phone"),
        ("office 555-123-4567", "phone"),
        ("London +44 20 7946 0958", "phone"),
        ("Berlin +49-30-1234567", "phone"),
        ("Beijing 010-12345678", "phone"),
        (f"身份证号 {VALID_ID}", "cn_id"),
        (f"id {VALID_ID_DIGIT}.", "cn_id"),
        ("card 4111 1111 1111 1111 exp 12/30", "bank_card"),
        ("card 5500-0000-0000-0004", "bank_card"),
        (f"unionpay {luhn_completed('622202123456789012')}", "bank_card"),
        ("我的邮箱li@example.cn谢谢", "email"),
        ("server at 192.168.1.20:8080", "ip"),
        ("The VPN gateway is at 192.168.10.24.", "ip"),
        ("v6 2001:db8::8a2e:370:7334", "ip"),
    ],
)
def test_finds_each_kind(text: str, kind: str) -> None:
    found = detect_pii(text)
    assert kind in {m.kind for m in found}
    m = next(m for m in found if m.kind == kind)
    assert 0 <= m.start < m.end <= len(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is 2+2? And 17 * 23 = 391.",
        "In 1949 the population was 541670000 people.",
        "Call me at noon; the ratio is 10:1 at 12:30:45.",
        "std::vector<int> v; a::b::c",
        "version 1.2.3.4.5 and 999.1.1.1",
        "an email-like a@b without a domain",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_no_false_positives_on_ordinary_text(text: str) -> None:
    assert detect_pii(text) == []


def test_checksum_failures_are_not_reported() -> None:
    bad_id = VALID_ID[:-1] + ("1" if VALID_ID[-1] != "1" else "2")
    assert cn_id_valid(VALID_ID) and not cn_id_valid(bad_id)
    assert pii_kinds_found(f"身份证 {bad_id}") == set()
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert pii_kinds_found("card 4111 1111 1111 1112") == set()
    assert pii_kinds_found("card 0000 0000 0000 0000") == set()  # passes Luhn, but not a card


def test_id_is_not_also_reported_as_a_phone() -> None:
    assert {m.kind for m in detect_pii(f"no. {VALID_ID_DIGIT}")} == {"cn_id"}


def test_kinds_are_configurable_and_values_never_kept() -> None:
    text = "mail a@example.com from 10.0.0.1"
    assert pii_kinds_found(text, kinds=["ip"]) == {"ip"}
    assert pii_kinds_found(text, kinds=["phone"]) == set()
    assert "example" not in repr(detect_pii(text))
    with pytest.raises(KeyError, match="valid: email"):
        detect_pii(text, kinds=["passport"])
