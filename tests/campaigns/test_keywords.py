"""Consent and control keywords: what a contact types, and what they read back."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.languages import LANGUAGES
from campaigns.messaging.keywords import (
    KEYWORDS,
    KeywordKind,
    classify,
    confirmation,
    kind_from_opt_out_type,
)
from campaigns.messaging.segments import MAX_BODY_CHARACTERS, measure

LISTED = [
    (word, kind, language)
    for kind, by_language in KEYWORDS.items()
    for language, words in by_language.items()
    for word in words
]


def _without_accents(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn"
    )


@pytest.mark.parametrize(("word", "kind", "language"), LISTED)
def test_every_listed_word_is_recognised_however_it_is_typed(
    word: str, kind: KeywordKind, language: str | None
) -> None:
    for typed in (word, word.lower(), word.capitalize(), _without_accents(word), f"  {word}! "):
        match = classify(typed)
        assert match is not None, typed
        assert (match.kind, match.language, match.reported_by_twilio) == (kind, language, False)
        assert match.keyword == _without_accents(word).lower()


@pytest.mark.parametrize(
    ("text", "kind", "language"),
    [
        ("Stop!", KeywordKind.stop, None),
        (" baja. ", KeywordKind.stop, "es"),
        ("STOP 🙏", KeywordKind.stop, None),
        ("🛑 stop 🛑", KeywordKind.stop, None),
        ("¡¡BAJA!!", KeywordKind.stop, "es"),
        ("ARRÊT", KeywordKind.stop, "fr"),
        ("arret", KeywordKind.stop, "fr"),
        ("Arrêt.", KeywordKind.stop, "fr"),
        ("«Désabonner»", KeywordKind.stop, "fr"),
        ("opt-out", KeywordKind.stop, "en"),
        ("Kanpe", KeywordKind.stop, "ht"),
        ("sispann\n", KeywordKind.stop, "ht"),
        ("\uff33\uff34\uff2f\uff30", KeywordKind.stop, None),  # full-width STOP
        ("KÒMANSE", KeywordKind.start, "ht"),
        ("komanse", KeywordKind.start, "ht"),
        ('"Kòmanse".', KeywordKind.start, "ht"),
        ("Alta", KeywordKind.start, "es"),
        ("Commencer !", KeywordKind.start, "fr"),
        ("START", KeywordKind.start, "en"),
        ("¿Ayuda?", KeywordKind.help, "es"),
        ("Èd", KeywordKind.help, "ht"),
        ("ed", KeywordKind.help, "ht"),
        ("aide", KeywordKind.help, "fr"),
        ("info", KeywordKind.help, None),
        ("Borrar", KeywordKind.erase, "es"),
        ("EFASE", KeywordKind.erase, "ht"),
        ("effacer", KeywordKind.erase, "fr"),
        ("Delete.", KeywordKind.erase, "en"),
    ],
)
def test_real_replies(text: str, kind: KeywordKind, language: str | None) -> None:
    match = classify(text)
    assert match is not None
    assert (match.kind, match.language) == (kind, language)


@pytest.mark.parametrize(
    "text",
    [
        "no quiero parar de aprender",
        "stop please",
        "please stop",
        "STOP STOP",
        "quiero darme de baja",
        "ayuda por favor",
        "borrar mis datos",
        "st op",
        "stop1",
        "stop \u037a",  # a letter that folds to nothing is still a second word
        "",
        "   ",
        "🙏🙏",
        "!!!",
    ],
)
def test_sentences_and_non_words_are_ordinary_messages(text: str) -> None:
    assert classify(text) is None


@pytest.mark.parametrize(
    "text",
    ["yes", "Sí", "si", "wi", "oui", "no", "non", "ok", "inicio", "menu", "fin", "para", "SOS"],
)
def test_poll_answers_menu_words_and_emergencies_are_not_keywords(text: str) -> None:
    assert classify(text) is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("STOP", KeywordKind.stop),
        ("stop", KeywordKind.stop),
        (" START ", KeywordKind.start),
        ("HELP", KeywordKind.help),
        ("", None),
        (None, None),
        ("UNKNOWN", None),
    ],
)
def test_twilio_opt_out_type_maps_to_the_same_kinds(
    value: str | None, kind: KeywordKind | None
) -> None:
    assert kind_from_opt_out_type(value) == kind


def test_twilio_opt_out_type_wins_because_twilio_has_already_acted() -> None:
    # Twilio's default list counts YES as START and has unblocked the number: follow it.
    match = classify("Yes", opt_out_type="START")
    assert match is not None
    assert (match.kind, match.keyword, match.language) == (KeywordKind.start, "yes", None)
    assert match.reported_by_twilio

    match = classify("Baja", opt_out_type="STOP")
    assert match is not None
    assert (match.kind, match.language, match.reported_by_twilio) == (KeywordKind.stop, "es", True)


def test_an_erase_word_twilio_reports_as_stop_still_erases() -> None:
    match = classify("BORRAR", opt_out_type="STOP")
    assert match is not None
    assert (match.kind, match.language, match.reported_by_twilio) == (
        KeywordKind.erase,
        "es",
        True,
    )


def test_no_opt_out_type_and_no_keyword_is_nothing() -> None:
    assert classify("hola", opt_out_type=None) is None
    assert classify("hola", opt_out_type="") is None


@pytest.mark.parametrize("kind", list(KeywordKind))
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_confirmation_exists_and_fits_one_gsm7_segment(
    kind: KeywordKind, language: str
) -> None:
    text = confirmation(kind, language)
    assert text.strip()
    assert len(text) <= MAX_BODY_CHARACTERS
    length = measure(text)
    # None of them needs UCS-2 or a second segment today; a reword that does shows up here.
    assert (length.encoding, length.ucs2_characters, length.segments) == ("GSM-7", (), 1)


# The word each confirmation tells the contact to send next, in their own language.
ADVERTISED = {
    (KeywordKind.stop, "es"): [("ALTA", KeywordKind.start)],
    (KeywordKind.stop, "en"): [("START", KeywordKind.start)],
    (KeywordKind.stop, "ht"): [("Kòmanse", KeywordKind.start)],
    (KeywordKind.stop, "fr"): [("COMMENCER", KeywordKind.start)],
    (KeywordKind.start, "es"): [("BAJA", KeywordKind.stop)],
    (KeywordKind.start, "en"): [("STOP", KeywordKind.stop)],
    (KeywordKind.start, "ht"): [("KANPE", KeywordKind.stop)],
    (KeywordKind.start, "fr"): [("STOP", KeywordKind.stop)],
    (KeywordKind.help, "es"): [("BAJA", KeywordKind.stop), ("BORRAR", KeywordKind.erase)],
    (KeywordKind.help, "en"): [("STOP", KeywordKind.stop), ("DELETE", KeywordKind.erase)],
    (KeywordKind.help, "ht"): [("KANPE", KeywordKind.stop), ("EFASE", KeywordKind.erase)],
    (KeywordKind.help, "fr"): [("STOP", KeywordKind.stop), ("EFFACER", KeywordKind.erase)],
}


@pytest.mark.parametrize(("key", "words"), ADVERTISED.items())
def test_confirmations_advertise_words_we_understand_in_the_contacts_language(
    key: tuple[KeywordKind, str], words: list[tuple[str, KeywordKind]]
) -> None:
    kind, language = key
    text = confirmation(kind, language)
    for word, expected in words:
        assert word in text
        match = classify(word)
        assert match is not None
        assert match.kind == expected
        assert match.language in (language, None)
    if kind == KeywordKind.help:
        assert "MENU" in text


def test_confirmations_say_what_happened_in_the_right_language() -> None:
    assert "ankò" in confirmation(KeywordKind.stop, "ht")
    assert "no longer receive" in confirmation(KeywordKind.stop, "en")
    assert "ya no te enviaremos" in confirmation(KeywordKind.stop, "es")
    assert "ne recevrez plus" in confirmation(KeywordKind.stop, "fr")
    assert "deleted" in confirmation(KeywordKind.erase, "en")
    assert "efase" in confirmation(KeywordKind.erase, "ht")


def test_an_unknown_language_gets_spanish_and_an_unknown_kind_is_refused() -> None:
    assert confirmation("stop", "pt") == confirmation(KeywordKind.stop, "es")
    with pytest.raises(ValueError, match="unsubscribe"):
        confirmation("unsubscribe", "es")


ALL_WORDS = [word for word, _, _ in LISTED]

a_word = st.one_of(
    st.sampled_from(ALL_WORDS),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
        lambda w: any(c.isalnum() for c in w) and not any(c.isspace() for c in w)
    ),
)
a_separator = st.text(st.sampled_from(" \t\n\u00a0\u3000"), min_size=1, max_size=3)
decoration = st.text(
    st.one_of(
        st.characters(categories=["P", "S", "Zs"]),
        st.sampled_from(["🙏", "😡", "\u200d", "\ufe0f", "\U0001f3fd", "\n"]),
    ),
    max_size=5,
)


@given(st.lists(st.tuples(a_word, a_separator), min_size=2, max_size=6))
def test_a_message_of_two_words_or_more_is_never_a_keyword(
    words: list[tuple[str, str]],
) -> None:
    text = "".join(word + separator for word, separator in words)
    assert classify(text) is None


@given(st.sampled_from(LISTED), decoration, decoration, st.lists(st.booleans(), min_size=20))
def test_a_keyword_alone_is_recognised_whatever_surrounds_it(
    listed: tuple[str, KeywordKind, str | None],
    before: str,
    after: str,
    upper: list[bool],
) -> None:
    word, kind, language = listed
    typed = "".join(c.upper() if up else c.lower() for c, up in zip(word, upper, strict=False))
    match = classify(before + typed + after)
    assert match is not None
    assert (match.kind, match.language) == (kind, language)
