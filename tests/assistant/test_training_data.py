"""The assistant's training data keeps its promises: every topic, enough examples per language,
and never a line of the held-out test set (which would make the quality gate lie)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml

from campaigns.topics import CONVERSATION_INTENTS, TOPICS

BOT = Path(__file__).resolve().parents[2] / "bot"
MINIMUM = {"es": 40, "en": 40, "ht": 25, "fr": 25}


def _norm(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^\w ]+", "", plain).strip()


def _examples(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" in item:
            lines = [
                ln.strip()[2:]
                for ln in item["examples"].splitlines()
                if ln.strip().startswith("- ")
            ]
            found.setdefault(item["intent"], []).extend(lines)
    return found


def test_every_topic_has_enough_examples_in_every_language() -> None:
    for language, minimum in MINIMUM.items():
        examples = _examples(BOT / "data" / "nlu" / f"{language}.yml")
        assert set(examples) == set(TOPICS) | set(CONVERSATION_INTENTS), language
        thin = {t: len(examples[t]) for t in TOPICS if len(examples[t]) < minimum}
        assert not thin, f"{language}: fewer than {minimum} examples for {thin}"


def test_no_held_out_line_is_in_the_training_data() -> None:
    held = {
        _norm(t) for lines in _examples(BOT / "tests" / "nlu_heldout.yml").values() for t in lines
    }
    leaked = [
        (language, text)
        for language in MINIMUM
        for lines in _examples(BOT / "data" / "nlu" / f"{language}.yml").values()
        for text in lines
        if _norm(text) in held
    ]
    assert leaked == []


def test_the_held_out_set_covers_every_topic_with_at_least_eight_messages() -> None:
    held = _examples(BOT / "tests" / "nlu_heldout.yml")
    assert {t: len(held.get(t, [])) for t in TOPICS if len(held.get(t, [])) < 8} == {}
