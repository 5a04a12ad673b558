"""Personal-data detector: e-mail, phone numbers, Chinese resident IDs (checksum), bank cards (Luhn), IPs.

Pure functions, no I/O, no logging: a `PiiMatch` carries the kind and the span, never the value, so callers
cannot leak what was found by printing it. Usage::

    found = detect_pii("mail me at a@b.cn", kinds=("email",))   # [PiiMatch(kind='email', start=11, end=17)]

A value is found in the forms people write it in, not one spelling: the text is first normalised in one pass
(`normalise`, routing/text_forms.py: escapes such as `\\u0031`, `&#64;` and `%40` decoded, every Unicode digit
made ASCII, invisible characters dropped, dash, space, dot and full-width variants made ASCII), then the patterns
accept the separators written between digit groups, and checksums (ID, Luhn) keep random numbers out. Every
pattern is bounded or unambiguous, so a scan takes time linear in the text's length, whatever the text.
"""

from __future__ import annotations

import bisect
import datetime
import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tierwise.routing.settings import ALL_PII_KINDS
from tierwise.routing.text_forms import normalise, normalise_with_offsets

# Between digit groups, after normalisation: "138 0013", "138.0013", "138 - 0013", "415/555"; phones also put
# parentheses there: "(010) 6552 9988", "+44 (0)20 7946 0958".
_SEP = r"(?:[ .\-/]{1,3})"
_PSEP = r"(?:[ .\-/()]{1,4})"
# Not inside a word or a longer number (3.14159265358, 1101-0119-9003-0777-56), nor part of a grouped one.
_BEGIN = r"(?<![0-9A-Za-z+])(?<!\d[.-])"
_END = r"(?![0-9A-Za-z]|\.\d)"
# A checksummed number may follow a word ("ID110101…", "card4111…"): the checksum keeps the false alarms out.
_CHECKED_BEGIN = r"(?<!\d)(?<!\d[.-])"

_EMAIL = re.compile(  # Unicode local parts and domains (用户@例子.广告, josé@exämple.de), punycode TLDs
    r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\."
    r"(?:xn--[A-Za-z0-9-]+|[A-Za-z]{2,63}(?![A-Za-z0-9-])|[^\W\d_A-Za-z]{2,})"
)
# Each alternative starts with a literal or a digit, so the regex engine skips those that cannot start quickly.
_PHONE = re.compile(
    _BEGIN
    + "(?:"
    + "|".join(
        (
            rf"\+\(?[1-9](?:{_PSEP}?\d){{7,14}}",  # +CC: 8 to 15 digits (E.164); not "a + 12345678"
            rf"00[1-9]\d{{0,2}}{_PSEP}[1-9](?:{_PSEP}?\d){{5,12}}",  # 00 CC: 0086 10 6552 9988 (not 001 002 003)
            rf"1[3-9]\d(?:{_PSEP}?\d{{4}}){{2}}",  # CN mobile: 11 digits, 3-4-4, 3-8 ...
            rf"86{_PSEP}?1[3-9]\d(?:{_PSEP}?\d{{4}}){{2}}",  # ... and with the country code: wa.me/8613800138000
            rf"\(86\){_PSEP}?1[3-9]\d(?:{_PSEP}?\d{{4}}){{2}}",
            rf"1{_PSEP}(?:\(\d{{3}}\) ?|\d{{3}}{_PSEP})\d{{3}}{_PSEP}\d{{4}}",  # North American: 1-415-555-2671
            rf"\(\d{{3}}\) ?\d{{3}}{_PSEP}\d{{4}}",  # (415) 555-2671
            rf"\d{{3}}{_PSEP}\d{{3}}{_PSEP}\d{{4}}",  # 415-555-2671, 415.555.2671, 415/555/2671
            rf"\(0[1-9]\d{{1,2}}\) ?\d{{3,4}}{_PSEP}?\d{{4}}",  # trunk 0 and area code: (010) 6552 9988
            rf"0[1-9]\d{{1,2}}{_PSEP}\d{{3,4}}{_PSEP}?\d{{4}}",  # 010-12345678, 0755-8888 6666, 020 7946 0958
        )
    )
    + ")"
    + _END
)
_LINK_SCHEMES = "tel: sms: smsto: mms: callto: facetime: facetime-audio: whatsapp: viber: skype: wa.me/ ?phone= &phone="
# A link that dials or messages a number. The schemes are written as character classes ([Tt][Ee][Ll]:) rather
# than with a case-insensitive flag, so the engine rejects a position on its first character.
_PHONE_LINK = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    + "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in scheme)
        for scheme in _LINK_SCHEMES.split()
    )
    + rf")(?://)?\+?\(?\d(?:{_PSEP}?\d){{6,14}}{_END}"
)
# In groups of three or more, the last of two or more (a separator has three digits before it and two after), so
# "12 34 56 …" is no candidate: "110101 19900307 7756", "1101-0119-9003-0777-56", "110101-199003-077756".
_CN_ID = re.compile(rf"{_CHECKED_BEGIN}\d(?:(?:(?<=\d{{3}}){_SEP}(?=\d[\dXx]))?\d){{16}}[\dXx]{_END}")
# Ungrouped, or as issuers print them: 4-4-4-4 (-3 for 19 digits, 4-4-4-1 for 13), 4-6-5 and 4-6-4 (Amex, Diners).
_CARD = re.compile(
    rf"{_CHECKED_BEGIN}(?:\d{{13,19}}|\d{{4}}(?:{_SEP}\d{{4}}){{2,3}}(?:{_SEP}\d{{1,4}})?|\d{{4}}{_SEP}\d{{6}}{_SEP}\d{{4,5}})(?!\d|\.\d)"
)
# Not inside a longer dotted number (a version like 1.2.3.4.5), but a full stop that ends a sentence is fine.
_IPV4 = re.compile(r"(?<!\d)(?<!\d\.)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ISSUER_DIGITS = "2345689"  # Mastercard, Amex, Visa, Discover, UnionPay, …; 8 and 9: domestic schemes
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")



_Detector = Callable[[str], Iterator[tuple[int, int]]]


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
    backwards = digits[::-1]
    doubled = backwards[1::2].translate(_LUHN_DOUBLED)  # each digit doubled, its two digits summed
    return (sum(map(int, backwards[::2])) + sum(map(int, doubled))) % 10 == 0


def _scan(pattern: re.Pattern[str], accept: Callable[[str], int] | None = None) -> _Detector:
    """A detector: the matches of `pattern` that `accept` takes (how many characters of the match; 0 = none).

    After a refused match the scan goes on from the next character, not past the match, so a refused window
    ("2024 4111 1111 1111 1111") does not hide a valid one inside it; the patterns with a check match at most a
    few dozen characters, so this stays linear.
    """

    def find(text: str) -> Iterator[tuple[int, int]]:
        pos = 0
        while m := pattern.search(text, pos):
            taken = accept(m.group()) if accept else m.end() - m.start()
            if taken:
                yield m.start(), m.start() + taken
            pos = m.start() + (taken or 1)

    return find


def _whole_if(check: Callable[[str], bool]) -> Callable[[str], int]:
    return lambda s: len(s) if check(s) else 0


def _cn_id_ok(s: str) -> bool:
    value = re.sub(r"[^\dXx]", "", s)
    if value[0] not in "12345678" or not cn_id_valid(value):  # region codes begin 1-8
        return False
    try:  # a real birth date: random 18-digit numbers pass the checksum one time in eleven, this almost never
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return 1850 <= born.year <= 2100


def _card_ok(digits: str) -> bool:
    # a card begins with an issuer's digit, and only Visa has 13 digits: a millisecond timestamp is not a card
    return (
        13 <= len(digits) <= 19
        and digits[0] in _ISSUER_DIGITS
        and (len(digits) != 13 or digits[0] == "4")
        and len(set(digits)) > 1
        and luhn_valid(digits)
    )


def _card_length(s: str) -> int:
    """The longest run of whole groups from the start that is a card: "4111 1111 1111 1111 123" has a CVV."""
    if s[0] not in _ISSUER_DIGITS:
        return 0
    if _card_ok(re.sub(r"\D", "", s)):
        return len(s)
    groups = list(re.finditer(r"\d+", s))[:-1]
    for g in reversed(groups):
        if _card_ok(re.sub(r"\D", "", s[: g.end()])):
            return g.end()
    return 0


def _ip_ok(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _ipv6_ok(s: str) -> bool:
    # at least three groups, so C++'s `a::b` or a clock's `12:30:45` is not an address
    return sum(bool(g) for g in s.split(":")) >= 3 and _ip_ok(s)


def _either(*detectors: _Detector) -> _Detector:
    return lambda text: (span for find in detectors for span in find(text))


# Each detector takes normalised text (`normalise`) and yields the spans it finds there.
DETECTORS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "email": _scan(_EMAIL),
    "phone": _either(_scan(_PHONE), _scan(_PHONE_LINK)),
    "cn_id": _scan(_CN_ID, _whole_if(_cn_id_ok)),
    "bank_card": _scan(_CARD, _card_length),
    "ip": _either(_scan(_IPV4, _whole_if(_ip_ok)), _scan(_IPV6, _whole_if(_ipv6_ok))),
}


def _findings(text: str, kinds: Iterable[str]) -> list[tuple[str, int, int]]:
    wanted = list(kinds)
    unknown = [k for k in wanted if k not in DETECTORS]
    if unknown:
        raise KeyError(f"unknown PII kinds {unknown}; valid: {', '.join(DETECTORS)}")
    found = [(k, s, e) for k in wanted for s, e in DETECTORS[k](text)]
    # a phone-shaped run of digits inside a checksummed ID, a card number or an e-mail address is that, not a
    # second finding: a phone is inside one if the furthest end of those starting no later than it reaches its end
    strong = sorted((s, e) for k, s, e in found if k in ("cn_id", "bank_card", "email"))
    starts, reach = [s for s, _ in strong], list(itertools.accumulate((e for _, e in strong), max))

    def inside_strong(start: int, end: int) -> bool:
        i = bisect.bisect_right(starts, start)
        return i > 0 and reach[i - 1] >= end

    return [f for f in found if f[0] != "phone" or not inside_strong(f[1], f[2])]


def detect_pii(text: str, *, kinds: Iterable[str] = ALL_PII_KINDS) -> list[PiiMatch]:
    """Every finding of the given kinds, by position in `text`. A Chinese ID or card number is not also a phone."""
    scanned = normalise_with_offsets(text)
    found = [PiiMatch(k, *scanned.original_span(s, e)) for k, s, e in _findings(scanned.text, kinds)]
    return sorted(found, key=lambda m: (m.start, m.kind))


def pii_kinds_found(text: str, *, kinds: Iterable[str] = ALL_PII_KINDS) -> set[str]:
    """The kinds of personal data present in `text` (empty set if none)."""
    return {kind for kind, _, _ in _findings(normalise(text), kinds)}
