"""SMS encoding, segment counts and cost, as a campaign author and the carrier's bill see them."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.errors import InvalidInput
from campaigns.messaging.segments import (
    MAX_BODY_CHARACTERS,
    estimate_cost,
    is_gsm7,
    measure,
    non_gsm7_characters,
    split_segments,
    within_twilio_limit,
)

# GSM 03.38 default alphabet, written independently of the module: code points by GSM code,
# 0x00-0x7F, without 0x1B (the escape).
GSM7_BASIC = frozenset(
    map(
        chr,
        [
            *(0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D),
            *(0xC5, 0xE5, 0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398),
            *(0x39E, 0xC6, 0xE6, 0xDF, 0xC9, 0x20, 0x21, 0x22, 0x23, 0xA4, *range(0x25, 0x40)),
            *(0xA1, *range(0x41, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7),
            *(0xBF, *range(0x61, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0),
        ],
    )
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
EMOJI = "🙂"
LEFT_QUOTE, RIGHT_QUOTE = "\u2018", "\u2019"  # smart quotes, from word processors


def test_the_gsm7_alphabet_is_exactly_gsm_03_38() -> None:
    assert len(GSM7_BASIC) == 127
    wrong = [
        chr(code)
        for code in range(0x10000)
        if not 0xD800 <= code <= 0xDFFF
        and is_gsm7(chr(code)) != (chr(code) in GSM7_BASIC | GSM7_EXTENSION)
    ]
    assert wrong == []


@pytest.mark.parametrize("char", list("éèùìòÇØøÅåÄÖÑÜäöñüàÉÆæß¿¡£¥§¤@_$"))
def test_accented_letters_and_symbols_of_the_default_alphabet_stay_gsm7(char: str) -> None:
    assert measure(f"Hola {char}").encoding == "GSM-7"


@pytest.mark.parametrize(
    "char", [*"áíóúÁÍÓÚêâîôûçÈÒÙëïœ`\t", RIGHT_QUOTE, "\u201c", "\u2014", "\u2026", EMOJI]
)
def test_characters_outside_the_default_alphabet_force_ucs2_and_are_named(char: str) -> None:
    length = measure(f"Hola {char} adiós")
    assert length.encoding == "UCS-2"
    assert char in length.ucs2_characters


def test_the_characters_forcing_ucs2_are_listed_once_in_order_of_appearance() -> None:
    length = measure(
        f"é is fine but {EMOJI} and {LEFT_QUOTE}smart quotes{RIGHT_QUOTE} and {EMOJI} force UCS-2"
    )
    assert length.ucs2_characters == (EMOJI, LEFT_QUOTE, RIGHT_QUOTE)
    assert non_gsm7_characters("é, ñ, ü, à") == ()


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 153 * 2, 306, 2),
        ("a" * (153 * 2 + 1), 307, 3),
        ("a" * 158 + "€", 160, 1),
        ("a" * 159 + "€", 161, 2),
        ("{" * 80, 160, 1),
        ("{" * 81, 162, 2),
    ],
)
def test_gsm7_boundaries(text: str, units: int, segments: int) -> None:
    length = measure(text)
    assert (length.encoding, length.units, length.segments) == ("GSM-7", units, segments)


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("á" * 70, 70, 1),
        ("á" * 71, 71, 2),
        ("á" * 67 * 2, 134, 2),
        ("á" * (67 * 2 + 1), 135, 3),
        ("á" * 68 + EMOJI, 70, 1),
        ("á" * 69 + EMOJI, 71, 2),
        (EMOJI * 35, 70, 1),
    ],
)
def test_ucs2_boundaries(text: str, units: int, segments: int) -> None:
    length = measure(text)
    assert (length.encoding, length.units, length.segments) == ("UCS-2", units, segments)


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets would fit 2 x 153, but the € cannot start in the last septet of part one.
    text = "a" * 152 + "€" + "a" * 152
    assert measure(text).units == 306
    assert split_segments(text) == ["a" * 152, "€" + "a" * 151, "a"]
    assert measure(text).segments == 3


def test_an_emoji_is_never_split_across_segments() -> None:
    text = "á" * 66 + EMOJI + "á" * 66
    assert measure(text).units == 134
    assert split_segments(text) == ["á" * 66, EMOJI + "á" * 65, "á"]
    assert measure(text).segments == 3


def test_an_empty_text_costs_nothing() -> None:
    assert (measure("").segments, split_segments("")) == (0, [])
    assert estimate_cost("", price_per_segment=Decimal("0.05"), recipients=10) == 0


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        # Spanish: é and ñ are GSM-7, but one ó (atención, migración) makes the whole SMS UCS-2.
        ("Hola, mañana la oficina abre a las 9. ¿Tienes dudas? Escribe MENU.", "GSM-7", 1),
        (
            "Hola, mañana la oficina de atención a migrantes abre a las 9. Trae tu CURP y "
            "tu pasaporte. ¿Tienes dudas sobre tu trámite? Escribe MENU.",
            "UCS-2",
            3,
        ),
        # Haitian Creole: è and ò are in the default alphabet.
        (
            "Bonjou! Gen nouvo enfòmasyon sou dokiman pou travay nan Meksik. "
            "Ekri MENU pou wè plis. Sèvis la gratis.",
            "GSM-7",
            1,
        ),
        # French: é, è, à are GSM-7; ç and ê are not.
        ("Bonjour, la préfecture a changé ses horaires. Répondez MENU.", "GSM-7", 1),
        ("Votre dossier a été reçu. Vous devez être présent lundi.", "UCS-2", 1),
        ("Your appointment is confirmed 🙂 Reply MENU for more.", "UCS-2", 1),
    ],
)
def test_real_messages(text: str, encoding: str, segments: int) -> None:
    length = measure(text)
    assert (length.encoding, length.segments) == (encoding, segments)
    assert length.characters == len(text)


def test_twilio_body_limit() -> None:
    assert MAX_BODY_CHARACTERS == 1600
    assert within_twilio_limit("a" * 1600)
    assert not within_twilio_limit("a" * 1601)
    # Twilio does not say how it counts an emoji: count it as 2, never as more lenient.
    assert within_twilio_limit(EMOJI * 800)
    assert not within_twilio_limit(EMOJI * 801)
    assert measure("a" * 1600).within_twilio_limit
    assert not measure("a" * 1599 + EMOJI).within_twilio_limit


def test_cost_is_segments_times_price_times_recipients() -> None:
    price = Decimal("0.0079")
    assert estimate_cost("a" * 160, price_per_segment=price) == Decimal("0.0079")
    assert estimate_cost("a" * 161, price_per_segment=price, recipients=1000) == Decimal("15.8")
    assert estimate_cost("á" * 71, price_per_segment=price, recipients=0) == 0


@pytest.mark.parametrize(
    ("price", "recipients", "field"),
    [(Decimal("-0.01"), 1, "price_per_segment"), (Decimal("0.01"), -1, "recipients")],
)
def test_cost_refuses_negative_figures(price: Decimal, recipients: int, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        estimate_cost("hola", price_per_segment=price, recipients=recipients)
    assert caught.value.field == field


gsm7_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=500)
any_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)),
        st.sampled_from(["á", "ç", RIGHT_QUOTE, EMOJI, "👍", "\U0001f3fd", "\u200d"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=500,
)


@given(any_text, any_text)
def test_appending_text_never_lowers_the_segment_count(text: str, more: str) -> None:
    assert measure(text + more).segments >= measure(text).segments


@given(gsm7_text)
def test_gsm7_text_within_160_septets_is_one_segment(text: str) -> None:
    length = measure(text)
    assert length.encoding == "GSM-7"
    assert length.units == len(text) + sum(c in GSM7_EXTENSION for c in text)
    if text and length.units <= 160:
        assert length.segments == 1


@given(any_text)
def test_ucs2_units_are_utf16_code_units(text: str) -> None:
    length = measure(text)
    if length.encoding == "UCS-2":
        assert length.units == _utf16(text)


@given(any_text)
def test_segments_reassemble_the_text_and_each_fits_its_part(text: str) -> None:
    parts = split_segments(text)
    length = measure(text)
    assert "".join(parts) == text
    assert len(parts) == length.segments
    if len(parts) > 1:
        limit = 153 if length.encoding == "GSM-7" else 67
        for part in parts:
            assert (_septets(part) if length.encoding == "GSM-7" else _utf16(part)) <= limit
        # Greedy: a part ends early only when the next character would not fit.
        for part, following in itertools.pairwise(parts):
            grown = part + following[0]
            assert (_septets(grown) if length.encoding == "GSM-7" else _utf16(grown)) > limit


def _septets(text: str) -> int:
    return len(text) + sum(c in GSM7_EXTENSION for c in text)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
