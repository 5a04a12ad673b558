"""Personal data in every written form: each family of spellings is found, its near-misses are not, and a scan
stays linear on adversarial input.

Families: Unicode digits, invisible format characters, Unicode dashes and spaces, punctuation separators and
groupings, checksummed IDs and cards in any grouping, internationalised and full-width e-mail, links that carry
a number or an address, and escaped text (JSON, HTML, URL).
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.routing.test_pii import cn_id_with_check, luhn_completed
from tierwise.routing.pii import detect_pii, pii_kinds_found
from tierwise.routing.text_forms import normalise, normalise_with_offsets

ID = cn_id_with_check("11010119900307775")
ID_X = cn_id_with_check("11010519491231002")  # check character X
CARD = "4111111111111111"
UNIONPAY = luhn_completed("622202123456789012")  # 19 digits
AMEX = "378282246310005"

# The zero of each script's digits: full-width, Arabic-Indic, Extended Arabic-Indic (Persian), Devanagari,
# Bengali, Thai, mathematical bold and monospace.
DIGIT_ZEROS = [0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1D7CE, 0x1D7F6]
FORMAT_CHARS = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f", "\U000e0020"]
# Written between digit groups: Unicode hyphens, dashes, minus signs and spaces, and ASCII punctuation.
SEPARATORS = [
    *"\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d\u30fc",
    *"\u00a0\u202f\u2007\u2009\u3000",
    " ", "-", ".", "/", "  ", " - ", "\u00b7",
]  # fmt: skip


def in_script(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c in "0123456789" else c for c in text)


def woven(text: str, filler: str) -> str:
    """`filler` between every two characters of `text`."""
    return filler.join(text)


def kinds(text: str) -> set[str]:
    return pii_kinds_found(text)


# --- the families: every canary must be found, as its kind ---------------------------------------------------

DIGIT_CANARIES = [
    ("13800138000", "phone"),
    ("+86 138 0013 8000", "phone"),
    ("(010) 6552 9988", "phone"),
    (ID, "cn_id"),
    (ID_X, "cn_id"),
    ("4111 1111 1111 1111", "bank_card"),
    ("192.168.10.24", "ip"),
]


@pytest.mark.parametrize("zero", DIGIT_ZEROS, ids=hex)
@pytest.mark.parametrize(("canary", "kind"), DIGIT_CANARIES)
def test_unicode_digits_read_as_ascii_digits(canary: str, kind: str, zero: int) -> None:
    assert kind in kinds(f"my detail: {in_script(canary, zero)} ok")


@pytest.mark.parametrize(
    "text",
    [
        "１３８００１３８０００",  # full-width
        "１３８－００１３－８０００",  # full-width digits and hyphen-minus
        "1️⃣3️⃣8️⃣0️⃣0️⃣1️⃣3️⃣8️⃣0️⃣0️⃣0️⃣",  # keycap emoji: digit, variation selector, enclosing keycap
        "①③⑧⓪⓪①③⑧⓪⓪⓪",  # circled digits
        "１１０１０１１９９００３０７７７５８",  # full-width ID
    ],
)
def test_digit_lookalikes_are_found(text: str) -> None:
    assert kinds(f"号码 {text} 谢谢") & {"phone", "cn_id"}


@pytest.mark.parametrize("filler", FORMAT_CHARS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    ("canary", "kind"),
    [*DIGIT_CANARIES, ("li.wei@example.com", "email"), ("用户@例子.广告", "email"), (AMEX, "bank_card")],
)
def test_format_characters_inside_a_value_are_ignored(canary: str, kind: str, filler: str) -> None:
    assert kind in kinds(f"see {woven(canary, filler)} here")


@pytest.mark.parametrize("sep", SEPARATORS, ids=lambda s: "+".join(f"U+{ord(c):04X}" for c in s))
@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("138{s}0013{s}8000", "phone"),
        ("+86{s}138{s}0013{s}8000", "phone"),
        ("415{s}555{s}2671", "phone"),
        ("0755{s}8888{s}6666", "phone"),
        ("4111{s}1111{s}1111{s}1111", "bank_card"),
        ("3782{s}822463{s}10005", "bank_card"),
        (f"{ID[:6]}{{s}}{ID[6:14]}{{s}}{ID[14:]}", "cn_id"),
        (f"{ID[:4]}{{s}}{ID[4:8]}{{s}}{ID[8:12]}{{s}}{ID[12:16]}{{s}}{ID[16:]}", "cn_id"),
    ],
)
def test_separator_family_between_digit_groups(template: str, kind: str, sep: str) -> None:
    assert kind in kinds(f"value {template.format(s=sep)} end")


@pytest.mark.parametrize(
    "text",
    [
        "138.0013.8000",
        "138  0013  8000",
        "(010) 6552 9988",
        "(010)6552-9988",
        "+86 10 6552-9988",
        "+86 (10) 6552 9988",
        "0086 10 6552 9988",
        "0755-8888 6666",
        "0755-88886666",
        "010-12345678-8001",  # extension
        "020 7946 0958",
        "+44 (0)20 7946 0958",
        "+33 1 23 45 67 89",
        "+1 (415) 555-2671",
        "1 (415) 555-2671",
        "1-415-555-2671",
        "(415)555-2671",
        "415/555/2671",
        "415.555.2671",
        "86 138 0013 8000",
        "8613800138000",
        "我的手机号13800138000",
        "電話：１３８\u200b００１３\u200b８０００。",
    ],
)
def test_phone_written_forms(text: str) -> None:
    assert "phone" in kinds(f"联系 {text} 谢谢")


@pytest.mark.parametrize(
    "text",
    [
        ID,
        ID_X,
        ID_X.lower(),
        ID_X[:-1] + "Ｘ",
        f"{ID[:6]} {ID[6:14]} {ID[14:]}",
        f"{ID_X[:6]} {ID_X[6:14]} {ID_X[14:]}",
        "-".join(re.findall("..?.?.?", ID)),  # 1101-0119-9003-0777-58
        f"{ID[:6]}-{ID[6:12]}-{ID[12:]}",
        f"{ID[:3]} {ID[3:6]} {ID[6:10]} {ID[10:14]} {ID[14:]}",
        f"身份证号：{ID}。",
    ],
)
def test_cn_id_groupings_are_found(text: str) -> None:
    assert "cn_id" in kinds(f"证件 {text} 谢谢")


@pytest.mark.parametrize(
    "text",
    [
        CARD,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111  1111  1111  1111",
        "4111\u00a01111\u00a01111\u00a01111",
        "4111–1111–1111–1111",
        "３７８２ ８２２４６３ １０００５",
        "3782-822463-10005",
        f"{UNIONPAY[:4]} {UNIONPAY[4:8]} {UNIONPAY[8:12]} {UNIONPAY[12:16]} {UNIONPAY[16:]}",
        UNIONPAY,
        "4111 1111 1111 1111 123",  # followed by its CVV
        "2024 4111 1111 1111 1111",  # after a year
    ],
)
def test_bank_card_groupings_are_found(text: str) -> None:
    assert "bank_card" in kinds(f"card {text} exp 12/30")


@pytest.mark.parametrize(
    "text",
    [
        "用户@例子.广告",
        "josé@exämple.de",
        "jose\u0301@exa\u0308mple.de",  # decomposed accents
        "δοκιμή@παράδειγμα.δοκιμή",
        "राम@उदाहरण.भारत",
        "a@xn--fsq.xn--0zwm56d",
        "user@xn--80ak6aa92e.com",
        "li.wei＠example.com",
        "li.wei﹫example.com",
        "ｌｉ．ｗｅｉ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "我的邮箱li@example.cn谢谢",
        "邮箱a@b.com电话",
        "13800138000@163.com",
        "mailto:jane.doe@example.com?subject=hi",
        "mailto:jane.doe%40example.com",
    ],
)
def test_email_written_forms(text: str) -> None:
    assert "email" in kinds(f"write to {text} today")


@pytest.mark.parametrize(
    "text",
    [
        "tel:+8613800138000",
        "tel:+1-415-555-2671",
        "TEL:4155552671",
        "https://wa.me/8613800138000",
        "https://wa.me/14155552671",
        "sms:+8613800138000?body=hi",
        "sms:4155552671",
        "smsto:4155552671",
        "callto:+44 20 7946 0958",
        "whatsapp://send?phone=14155552671",
        "https://api.whatsapp.com/send?phone=14155552671&text=hi",
        "tel:%2B86%20138%200013%208000",
        '<a href="tel:4155552671">call</a>',
    ],
)
def test_links_that_carry_a_phone_number(text: str) -> None:
    assert "phone" in kinds(f"link {text} end")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("\\u0031\\u0033\\u0038\\u0030\\u0030\\u0031\\u0033\\u0038\\u0030\\u0030\\u0030", "phone"),
        (json.dumps({"who": "１３８００１３８０００"}), "phone"),  # JSON with ensure_ascii: \uff11...
        (json.dumps({"who": "用户@例子.广告"}), "email"),
        (json.dumps({"who": "li.wei@example.com"}), "email"),
        ("&#49;&#51;&#56;&#48;&#48;&#49;&#51;&#56;&#48;&#48;&#48;", "phone"),
        ("&#x31;&#x33;&#x38; 0013 8000", "phone"),
        ("li.wei&#64;example.com", "email"),
        ("li.wei&commat;example.com", "email"),
        ("li.wei%40example.com", "email"),
        ("off 50%13800138000", "phone"),  # %13 is no escape worth decoding: it would hide the number
        (json.dumps({"card": "４１１１ １１１１ １１１１ １１１１"}), "bank_card"),
        (json.dumps({"note": "call\n13800138000"}), "phone"),  # the n of \n is no letter before the number
        (json.dumps({"id": f"\t{ID}"}), "cn_id"),
        (json.dumps({"url": "https://wa.me/8613800138000"}).replace("/", "\\/"), "phone"),
    ],
)
def test_escaped_text_is_decoded(text: str, kind: str) -> None:
    assert kind in kinds(text)


def test_normalise_is_one_form_for_the_family() -> None:
    assert normalise("１３８\u200b0013–8000") == "1380013-8000"
    assert normalise("٤١٥\u00a0٥٥٥\u2011٢٦٧١") == "415 555-2671"
    assert normalise("a＠b．cn") == "a@b.cn"
    assert normalise("plain ascii, unchanged: 1.2.3") == "plain ascii, unchanged: 1.2.3"


def test_spans_point_into_the_original_text() -> None:
    text = "前文 &#49;３８\u200b００１３\u200b８０００ 后文, mail li\u200b.wei%40example.com!"
    found = detect_pii(text)
    assert {m.kind for m in found} == {"phone", "email"}
    by_kind = {m.kind: normalise(text[m.start : m.end]) for m in found}
    assert by_kind == {"phone": "13800138000", "email": "li.wei@example.com"}


def test_a_span_in_the_scanned_form_maps_back_past_escapes_and_dropped_characters() -> None:
    text = "call \\u0031\u200b38 now"  # an escaped 1, a zero-width space, then 38
    scanned = normalise_with_offsets(text)
    assert scanned.text == "call 138 now"
    start = scanned.text.index("138")
    assert scanned.original_span(start, start + 3) == (5, len(text) - 4)
    assert scanned.original_span(0, 4) == (0, 4)


def test_kinds_still_select_what_is_looked_for() -> None:
    text = "ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ and １３８００１３８０００"
    assert pii_kinds_found(text, kinds=["email"]) == {"email"}
    assert pii_kinds_found(text, kinds=["ip", "cn_id"]) == set()


# --- near-misses: none of these is personal data -------------------------------------------------------------


def _with_wrong_check(id18: str) -> str:
    return id18[:-1] + ("1" if id18[-1] != "1" else "2")


NEAR_MISSES = [
    _with_wrong_check(ID),
    f"{_with_wrong_check(ID)[:6]} {_with_wrong_check(ID)[6:14]} {_with_wrong_check(ID)[14:]}",
    in_script(_with_wrong_check(ID), 0xFF10),
    cn_id_with_check("11010119901307775"),  # right checksum, but born in month 13
    cn_id_with_check("01010119900307775"),  # right checksum, no region begins with 0
    cn_id_with_check("11010118000307775"),  # right checksum, born in 1800
    "4111 1111 1111 1112",  # fails Luhn
    "4111-1111-1111-1112",
    "４１１１ １１１１ １１１１ １１１２",
    "0000 0000 0000 0000",  # passes Luhn, is no card
    luhn_completed("170981234567890"),  # a microsecond timestamp that passes Luhn: no issuer begins with 1
    luhn_completed("170981234567"),  # a millisecond timestamp that passes Luhn: only Visa has 13 digits
    "2024-03-07",
    "2024/03/07",
    "07.03.2024",
    "２０２４－０３－０７",
    "٢٠٢٤-٠٣-٠٧",
    "2024-03-07T13:45:10.123Z",
    "13:45:10",
    "v1.2.3",
    "1.2.3.4.5",
    "10.0.1",
    "$1,299.99",
    "¥13,800,138,000",
    "€ 1.234,56",
    "1949 1950 2024",
    "123 456",
    "12-34-56",
    "12 34 56 78 90 12 34 56 78",
    "15 20 30 40 50 6",
    "001 002 003 004",
    "+1 000 000",
    "3.14159265358979",
    "0.13800138000",
    "ISBN 978-3-16-148410-0",
    "ISBN 978-7-115-13800-1",
    "1709812345",
    "1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1",
    "an email-like a@b without a domain",
    "user@localhost",
    "@decorator and @mention",
    "50% off, 100% sure",
    "Tom &amp; Jerry &lt;3",
    "John spent 100000 + 12201900 = 12301900",
    "40 / 6 = 6.666666666666667",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_not_flagged(text: str) -> None:
    assert detect_pii(text) == []


ORDINARY_TEXT = [
    "In 2024 the company shipped 1,250,000 units across 37 countries, up 12.5% on 2023. Revenue reached "
    "$4.2 billion; the board meets on 2024-03-07 at 14:30 in room 1204, floor 12. Chapter 3, section 2.1, "
    "lists 15 risks and 7 mitigations; see pages 101-115 and table 4.",
    "for (int i = 0; i < 1024; i++) { buf[i] = (i * 2654435761u) >> 16; }  // 0x7fff5fbff8a8",
    "x = np.zeros((1024, 768)); y = a @ b.T; z = model(x)[0, 1:3]",
    "std::vector<int> v{1, 2, 3}; std::map<int, int> m; auto t = std::chrono::seconds(30);",
    "2024-03-07T13:45:10.123456+08:00 INFO request_id=42 latency_ms=183 status=200",
    "1709812345 1709812345678 20240307134510",
    "123e4567-e89b-12d3-a456-426614174000 550e8400-e29b-41d4-a716-446655440000",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855, commit 341c138",
    "md5 d41d8cd98f00b204e9800998ecf8427e, crc 0xcbf43926",
    "pip install numpy==1.26.4 torch==2.3.0 'fastapi>=0.110'",
    "价格：¥1,380.00，数量 2 件，订单日期 2024年3月7日，编号 A20240307-0001。",
    "Room 101, building 3, 5th floor; call extension 4412 or 8001.",
]


@pytest.mark.parametrize("text", ORDINARY_TEXT)
def test_ordinary_text_with_numbers_is_not_flagged(text: str) -> None:
    assert pii_kinds_found(text) == set()


# --- generated: any value of a family, written with any members of the family --------------------------------

separators = st.sampled_from(["", *SEPARATORS])
scripts = st.sampled_from([ord("0"), *DIGIT_ZEROS])
fillers = st.sampled_from(["", *FORMAT_CHARS])


@st.composite
def written(draw: st.DrawFn, groups: list[str], *, gaps: str = "any") -> str:
    """Digit groups in one script, with invisible characters strewn in, joined by separators of the family:
    `gaps` "any" (each gap a separator or none), "all" (each a separator), "all or none" (or no separators)."""
    separated = gaps == "all" or (gaps == "all or none" and draw(st.booleans()))
    gap = st.sampled_from(SEPARATORS) if separated else separators if gaps == "any" else st.just("")
    text = in_script(groups[0] + "".join(draw(gap) + g for g in groups[1:]), draw(scripts))
    filler = draw(fillers)
    spots = draw(st.sets(st.integers(0, len(text) - 1), max_size=3))
    return "".join(filler + c if i in spots else c for i, c in enumerate(text))


@st.composite
def cn_mobiles(draw: st.DrawFn) -> str:
    number = draw(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
    prefix = draw(st.sampled_from(["", "+86 ", "+86-", "0086 "]))
    return prefix + draw(written([number[:3], number[3:7], number[7:]]))


@st.composite
def na_phones(draw: st.DrawFn) -> str:
    area, exchange, line = (
        draw(st.from_regex(p, fullmatch=True)) for p in ("[2-9][0-9]{2}", "[2-9][0-9]{2}", "[0-9]{4}")
    )
    layout = draw(st.sampled_from(["({a}) {e}-{l}", "+1 ({a}) {e}-{l}", "1-{a}-{e}-{l}", None]))
    if layout is None:
        return draw(written([area, exchange, line], gaps="all"))
    return layout.format(a=area, e=exchange, l=line)


@st.composite
def cn_ids(draw: st.DrawFn) -> str:
    region = draw(st.from_regex(r"[1-8][0-9]{5}", fullmatch=True))
    born = draw(st.dates(datetime.date(1900, 1, 1), datetime.date(2024, 12, 31)))
    value = cn_id_with_check(region + born.strftime("%Y%m%d") + draw(st.from_regex(r"[0-9]{3}", fullmatch=True)))
    cuts = sorted(draw(st.sets(st.integers(3, 16), max_size=5)))
    cuts = [c for i, c in enumerate(cuts) if c - ([0, *cuts][i]) >= 3]  # groups of three or more, the last two
    bounds = [0, *cuts, 18]
    return draw(written([value[a:b] for a, b in itertools.pairwise(bounds)]))


@st.composite
def cards(draw: st.DrawFn) -> str:
    number = luhn_completed(draw(st.from_regex(r"[2-6][0-9]{14}", fullmatch=True)))
    return draw(written([number[i : i + 4] for i in range(0, 16, 4)], gaps="all or none"))


@st.composite
def emails(draw: st.DrawFn) -> str:
    letters = st.sampled_from("abcxyzéüßçñ用户例子δοκιμήабв")
    local = draw(st.text(letters, min_size=1, max_size=8))
    domain = draw(st.text(letters, min_size=1, max_size=8))
    tld = draw(st.sampled_from(["com", "cn", "de", "广告", "рф", "xn--p1ai"]))
    return f"{local}{draw(st.sampled_from(['@', '＠', '﹫']))}{domain}.{tld}"


@pytest.mark.parametrize(
    ("values", "kind"),
    [(cn_mobiles(), "phone"), (na_phones(), "phone"), (cn_ids(), "cn_id"), (cards(), "bank_card"), (emails(), "email")],
    ids=["cn_mobile", "na_phone", "cn_id", "card", "email"],
)
@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_any_value_in_any_written_form_is_found(values: st.SearchStrategy[str], kind: str, data: st.DataObject) -> None:
    value = data.draw(values)
    context = data.draw(st.sampled_from(["{}", "my detail: {} thanks", "请联系{}谢谢", "({})", "- {}."]))
    assert kind in kinds(context.format(value)), value


@settings(deadline=None, max_examples=150)
@given(value=cn_ids())
def test_a_wrong_check_character_is_never_an_id(value: str) -> None:
    digits = normalise(value)
    wrong = next(c for c in "0123456789X" if c != digits[-1].upper())
    assert "cn_id" not in kinds(value[:-1] + wrong)


@settings(deadline=None, max_examples=150)
@given(groups=st.lists(st.from_regex(r"[0-9]{1,2}", fullmatch=True), min_size=1, max_size=30), data=st.data())
def test_runs_of_short_numbers_are_never_phones_ids_or_cards(groups: list[str], data: st.DataObject) -> None:
    sep = data.draw(st.sampled_from([s for s in SEPARATORS if "." not in s]))  # 12.34.56.78 is an IP address
    assert kinds(sep.join(groups)) & {"phone", "cn_id", "bank_card"} == set()


@settings(deadline=None, max_examples=150)
@given(value=cn_mobiles(), around=st.tuples(*[st.text("我的号码是 ，。：%\u200b\u00a0", max_size=6)] * 2))
def test_a_span_covers_the_value_in_the_original_text(value: str, around: tuple[str, str]) -> None:
    text = around[0] + value + around[1]
    spans = [normalise(text[m.start : m.end]) for m in detect_pii(text) if m.kind == "phone"]
    assert any(re.sub(r"\D", "", span).endswith(re.sub(r"\D", "", normalise(value))[-11:]) for span in spans), text


@settings(deadline=None, max_examples=150)
@given(text=st.text(max_size=200))
def test_any_text_scans_and_every_span_lies_inside_it(text: str) -> None:
    for m in detect_pii(text):
        assert 0 <= m.start < m.end <= len(text)


# --- linear time ---------------------------------------------------------------------------------------------

ADVERSARIAL = {
    "dash-digits": "1-" * 100_000,
    "at-signs": "a@" * 100_000,
    "four-digit groups": "1234 " * 40_000,
    "dotted digits": "1." * 100_000,
    "dotted letters after an @": "x@" + "a." * 100_000,
    "colons": "::" * 100_000,
    "parentheses": "(1) " * 50_000,
    "invisible between digits": "\u200b1" * 100_000,
    "escapes": "%41&#49;\\u0031\\n" * 10_000,
    "digits": "1" * 200_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_input_scans_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    assert pii_kinds_found(text) == set()
    # A linear scan of these 200 KB takes a fraction of a second; a quadratic one would take minutes.
    assert time.perf_counter() - started < 10
