"""Measure what the FallbackClassifier thresholds cost and save on the held-out set.

Run with the bot's interpreter from the repository root:

    bot/.venv/bin/python bot/scripts/fallback_table.py bot/models/current.tar.gz \
        bot/tests/nlu_heldout.yml

The model is parsed as trained, and the classifier's own ranking (nlu_fallback removed) is
replayed against each threshold, so one pass over the held-out set gives the whole table:

- correct lost: the classifier was right, but the fallback would have caught it (the person
  gets "I'm not sure, did you mean…" instead of the answer);
- wrong avoided: the classifier was wrong and the fallback catches it (no wrong answer sent);
- wrong sent: the classifier was wrong and confident enough to answer.

Prints Markdown tables for docs/assistant.md. Reads no training data.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from quality_gate import TOPICS

THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
AMBIGUITY = [0.0, 0.05, 0.1, 0.15, 0.2]


def load_heldout(path: Path) -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples]


async def predict(model: Path, examples: list[tuple[str, str]]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    rows = []
    for text, gold in examples:
        parsed = await agent.parse_message(text)
        ranking = [r for r in parsed.get("intent_ranking", []) if r["name"] != "nlu_fallback"]
        top1 = ranking[0]
        top2 = ranking[1]["confidence"] if len(ranking) > 1 else 0.0
        rows.append(
            {
                "gold": gold,
                "pred": top1["name"],
                "conf": top1["confidence"],
                "margin": top1["confidence"] - top2,
            }
        )
    return rows


def table(rows: list[dict[str, Any]], ambiguity: float, title: str) -> str:
    n = len(rows)
    right = sum(r["pred"] == r["gold"] for r in rows)
    out = [
        f"**{title}** ({n} examples; classifier alone: {right} right, {n - right} wrong; "
        f"ambiguity_threshold {ambiguity})",
        "",
        "| threshold | answered right | correct lost | wrong avoided | wrong sent | "
        "fallback rate |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for t in THRESHOLDS:
        caught = [r["conf"] < t or r["margin"] < ambiguity for r in rows]
        lost = sum(c and r["pred"] == r["gold"] for c, r in zip(caught, rows, strict=True))
        avoided = sum(c and r["pred"] != r["gold"] for c, r in zip(caught, rows, strict=True))
        sent = (n - right) - avoided
        out.append(
            f"| {t:.1f} | {right - lost} ({(right - lost) / n:.1%}) | {lost} | "
            f"{avoided} / {n - right} | {sent} | {sum(caught) / n:.1%} |"
        )
    return "\n".join(out)


def main() -> None:
    from rasa.utils.log_utils import configure_structlog

    logging.disable(logging.WARNING)
    configure_structlog(logging.WARNING)  # Rasa's structlog would print every parsed text
    model, heldout = Path(sys.argv[1]), Path(sys.argv[2])
    rows = asyncio.run(predict(model, load_heldout(heldout)))
    topics = set(TOPICS)
    for amb in AMBIGUITY:
        print(table(rows, amb, "All intents"))
        print()
    print(table([r for r in rows if r["gold"] in topics], 0.1, "Topic intents only"))
    print()
    print("Wrong predictions (gold -> predicted, confidence, margin):")
    for r in sorted(rows, key=lambda r: -r["conf"]):
        if r["pred"] != r["gold"]:
            print(f"  {r['gold']} -> {r['pred']}  {r['conf']:.3f}  {r['margin']:.3f}")


if __name__ == "__main__":
    main()
