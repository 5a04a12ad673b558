"""Personal-data detector: e-mail, phone numbers, Chinese resident IDs (checksum), bank cards (Luhn), IPs.

Pure functions, no I/O, no logging: a `PiiMatch` carries the kind and the span, never the value, so callers
cannot leak what was found by printing it. Usage::

    found = detect_pii("mail me at a@b.cn", kinds=("email",))   # [PiiMatch(kind='email', start=11, end=17)]
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tierwise.routing.settings import ALL_PII_KINDS

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"
)
_PHONE = re.compile(
    r"(?<![0-9A-Za-z+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"  # +CC formats
    r"|(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"  # North American: (555) 123-4567, 555-123-4567
    r"|1[3-9]\d{9}"  # Chinese mobile: 11 digits starting 13-19
    r"|1[3-9]\d[\s-]\d{4}[\s-]\d{4}"  # Chinese mobile, grouped 3-4-4
    r"|0\d{2,3}[\s-]\d{7,8}"  # landline with trunk prefix: 010-12345678
    r")(?![0-9A-Za-z])"
)
_CN_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?![\dA-Za-z])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Not inside a longer dotted number (a version like 1.2.3.4.5), but a full stop that ends a sentence is fine.
_IPV4 = re.compile(r"(?<!\d)(?<!\d\.)(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class PiiMatch:
    """One finding: its kind and where it is (character offsets); the value itself is never kept."""

    kind: str
    start: int
    end: int

    def __repr__(self) -> str:
        return f"PiiMatch(kind={self.kind!r}, start={self.start}, end={self.end})"


def cn_id_valid(value: str) -> bool:
    """An 18-character Chinese resident ID with a correct ISO 7064 MOD 11-2 check character."""
    if not re.fullmatch(r"\d{17}[\dXx]", value):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (bank card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _regex(pattern: re.Pattern[str], check: Callable[[str], bool] | None = None) -> Callable[[str], Iterator]:
    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in pattern.finditer(text):
            if check is None or check(m.group()):
                yield m.span()

    return find


def _card_ok(s: str) -> bool:
    digits = re.sub(r"[ -]", "", s)
    return 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1


def _ip_ok(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _ipv6_ok(s: str) -> bool:
    # at least three groups, so C++'s `a::b` or a clock's `12:30:45` is not an address
    return sum(bool(g) for g in s.split(":")) >= 3 and _ip_ok(s)


def _find_ip(text: str) -> Iterator[tuple[int, int]]:
    yield from _regex(_IPV4, _ip_ok)(text)
    yield from _regex(_IPV6, _ipv6_ok)(text)


DETECTORS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "email": _regex(_EMAIL),
    "phone": _regex(_PHONE, lambda s: 7 <= sum(c.isdigit() for c in s) <= 15),
    "cn_id": _regex(_CN_ID, cn_id_valid),
    "bank_card": _regex(_CARD, _card_ok),
    "ip": _find_ip,
}


def detect_pii(text: str, *, kinds: Iterable[str] = ALL_PII_KINDS) -> list[PiiMatch]:
    """Every finding of the given kinds, by position. A Chinese ID or card number is not also a phone."""
    wanted = list(kinds)
    unknown = [k for k in wanted if k not in DETECTORS]
    if unknown:
        raise KeyError(f"unknown PII kinds {unknown}; valid: {', '.join(DETECTORS)}")
    found = [PiiMatch(k, s, e) for k in wanted for s, e in DETECTORS[k](text)]
    strong = [m for m in found if m.kind in ("cn_id", "bank_card", "email")]
    # a phone-shaped run of digits inside a checksummed ID or card number is that ID, not a second finding
    found = [m for m in found if m.kind != "phone" or not any(s.start <= m.start and m.end <= s.end for s in strong)]
    return sorted(found, key=lambda m: (m.start, m.kind))


def pii_kinds_found(text: str, *, kinds: Iterable[str] = ALL_PII_KINDS) -> set[str]:
    """The kinds of personal data present in `text` (empty set if none)."""
    return {m.kind for m in detect_pii(text, kinds=kinds)}
