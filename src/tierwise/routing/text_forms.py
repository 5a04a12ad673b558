"""The form text is scanned in for personal data: one pass that undoes the ways a value can be disguised.

This module owns that normalisation: escapes decoded (JSON and JavaScript `\\u0031`, URL `%40`, HTML `&#64;`
and `&commat;`), every Unicode digit made ASCII, invisible characters dropped (zero-width, bidi marks, combining
marks, Hangul fillers, tag characters), and dash, space, dot and full-width variants made ASCII, by one
translation table built on first use, plus the way back from an offset in the normalised text to the span of
the original it came from. The detectors (routing/pii.py) scan only this form. Usage::

    normalise("１３８\\u200b0013–8000")                       # "1380013-8000"
    normalise_with_offsets(text).original_span(start, end)  # where a span found in the scanned form is in `text`
"""

from __future__ import annotations

import bisect
import functools
import html
import json
import re
import unicodedata
from dataclasses import dataclass, field

# Escaped characters, decoded before the scan: JSON and JavaScript (a tool call's arguments: \uff11, and a \n before
# a number, whose n would read as a letter), URLs (mailto:a%40b.cn), HTML references (&#64;, &commat;).
_ESCAPES = re.compile(
    r'(?:\\u[0-9A-Fa-f]{4}|\\["\\/bfnrt])+|(?:%[2-9A-Fa-f][0-9A-Fa-f])+'  # not %00-%1F: "50%13800138000"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
# Code points that can need normalising: all but the blocks of ideographs, Hangul syllables and private use,
# which hold only letters (plane 14 holds the invisible tag characters and variation selectors).
_SCANNED = ((0x80, 0x3400), (0x4DC0, 0x4E00), (0xA000, 0xAC00), (0xD7A4, 0xD800), (0xF900, 0x20000), (0xE0000, 0xE1000))
_INVISIBLE = {0x115F, 0x1160, 0x3164, 0xFFA0}  # Hangul fillers: letters that print as nothing
_AS_ASCII = {
    **dict.fromkeys((0x2212, 0x2043, 0x02D7, 0x2796, 0x30FC, 0xFF70), "-"),  # minus signs, ー (Japanese numbers)
    **dict.fromkeys((0x00B7, 0x2027, 0x30FB, 0xFF65, 0x2219, 0x22C5), "."),  # middle dots
    **dict.fromkeys((0x2044, 0x2215, 0x29F8), "/"),
    0x2800: " ",  # braille blank
}


def _ascii_form(ch: str) -> str | None:
    """What one character is scanned as: "" (dropped), one ASCII character, or None (kept as it is)."""
    cp, category = ord(ch), unicodedata.category(ch)
    if category in ("Cf", "Mn", "Mc", "Me") or cp in _INVISIBLE or (category == "Cc" and cp != 0x85):
        return ""  # zero-width, soft hyphen, bidi marks, combining marks (keycaps, accents), C1 controls
    digit = unicodedata.digit(ch, None)
    if digit is not None:
        return str(digit)  # full-width, Arabic-Indic, Devanagari, mathematical, circled, superscript …
    if category == "Zs":
        return " "
    if category == "Pd":
        return "-"
    if category in ("Zl", "Zp") or cp == 0x85:
        return "\n"
    if cp in _AS_ASCII:
        return _AS_ASCII[cp]
    compat = unicodedata.normalize("NFKC", ch)  # full-width and small forms: ＠ ﹫ ． （ ＋ ｊ
    return compat if len(compat) == 1 and compat.isascii() and compat.isprintable() else None


@functools.cache
def _translation() -> tuple[dict[int, str | None], re.Pattern[str]]:
    """The one-pass translation table (built on first use) and a pattern of the characters it drops."""
    table: dict[int, str | None] = {cp: None for cp in (*range(0x09), *range(0x0E, 0x20), 0x7F)}
    for low, high in _SCANNED:
        for cp in range(low, high):
            form = _ascii_form(chr(cp))
            if form is not None:
                table[cp] = form or None
    dropped = sorted(cp for cp, form in table.items() if form is None)
    ranges: list[list[int]] = []
    for cp in dropped:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return table, re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")


def _unescape(escaped: str) -> str:
    if escaped[0] == "\\":
        return str(json.loads(f'"{escaped}"'))
    if escaped[0] == "%":
        raw = bytes.fromhex(escaped.replace("%", ""))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return html.unescape(escaped)


@dataclass
class NormalisedText:
    """The text as scanned (`text`), and the way back from its offsets to the original's (`original_span`)."""

    text: str
    decoded: str  # the original with escapes decoded, before the translation
    escapes: list[tuple[int, int, int, int]]  # (start, end) in the original, (start, length) in `decoded`
    _dropped: list[int] | None = field(default=None, repr=False)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Where the characters `text[start:end]` came from in the original text."""
        if self._dropped is None:  # where in `text` each dropped character was: found only once a span is asked for
            dropped = _translation()[1].finditer(self.decoded) if len(self.text) < len(self.decoded) else ()
            self._dropped = [m.start() - i for i, m in enumerate(dropped)]
        first, last = (p + bisect.bisect_right(self._dropped, p) for p in (start, end - 1))
        return self._undecoded(first)[0], self._undecoded(last)[1]

    def _undecoded(self, p: int) -> tuple[int, int]:
        """Where character `p` of `decoded` came from in the original."""
        i = bisect.bisect_right(self.escapes, p, key=lambda e: e[2]) - 1
        if i < 0:
            return p, p + 1
        start, end, at, length = self.escapes[i]
        if p < at + length:
            return start, end
        return end + p - at - length, end + p - at - length + 1


def normalise_with_offsets(text: str) -> NormalisedText:
    """`normalise(text)`, kept with what maps a span found in it back to the span in `text`."""
    escapes: list[tuple[int, int, int, int]] = []
    decoded = text
    if "\\" in text or "%" in text or "&" in text:
        parts: list[str] = []
        done = at = 0
        for m in _ESCAPES.finditer(text):
            plain, value = text[done : m.start()], _unescape(m.group())
            at += len(plain)
            parts += (plain, value)
            escapes.append((m.start(), m.end(), at, len(value)))
            at += len(value)
            done = m.end()
        decoded = "".join((*parts, text[done:]))
    return NormalisedText(decoded.translate(_translation()[0]), decoded, escapes)


def normalise(text: str) -> str:
    """`text` as the detectors scan it: escapes decoded, Unicode digits ASCII, invisible characters dropped, and
    dash, space, dot and full-width variants ASCII. `normalise("１３８\u200b0013–8000") == "1380013-8000"`."""
    return normalise_with_offsets(text).text
