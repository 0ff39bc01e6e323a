"""Fail unless the assistant understands the held-out topic questions well enough.

    python3.10 bot/scripts/quality_gate.py var/nlu-results/intent_report.json [TOPICS.md]

Reads the intent report written by `rasa test nlu` and exits 1 unless the macro-F1 over the
topic intents (the ids of TOPICS.md) reaches MIN_MACRO_F1. `rasa test nlu` undoes the
FallbackClassifier's predictions before scoring, so this gates the classifier itself; what the
fallback costs is measured by scripts/fallback_table.py. Prints per-intent F1 and every
confusion pair.

Standard library only, so it runs under the bot's Python 3.10 or any other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_MACRO_F1 = 0.90

# The ids of TOPICS.md, in its order. TOPICS.md is the source of truth; when a path to it is
# given (or found at the shared location) the script checks this list still matches.
TOPICS = [
    "regular_pathways",
    "labour_migration",
    "status_regularization",
    "asylum_protection",
    "documents_ids",
    "irregular_route_risks",
    "scams_fraud",
    "human_trafficking",
    "violence_gbv",
    "children_families",
    "missing_family_links",
    "health_services",
    "shelter_basic_needs",
    "legal_aid_rights",
    "return_reintegration",
    "emergencies_disasters",
    "remittances_money",
    "rumour_check",
    "info_hubs",
    "about_service",
]
SHARED_TOPICS_MD = Path("/work/shared/TOPICS.md")


def topics_in(markdown: Path) -> list[str]:
    """Topic ids from the taxonomy table of TOPICS.md (rows that start with an id in backticks)."""
    ids = []
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            ids.append(line.split("`")[1])
    return ids


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    topics_md = Path(argv[2]) if len(argv) > 2 else SHARED_TOPICS_MD
    if topics_md.exists() and topics_in(topics_md) != TOPICS:
        print(f"FAIL: the topic list here differs from {topics_md}; update TOPICS in {__file__}")
        return 1

    missing = [t for t in TOPICS if t not in report]
    if missing:
        print(f"FAIL: no held-out results for {', '.join(missing)}")
        return 1

    print(f"{'intent':<24} {'F1':>6} {'prec':>6} {'recall':>6} {'n':>4}")
    for name in sorted(k for k, v in report.items() if isinstance(v, dict) and "support" in v):
        if name.endswith(" avg"):
            continue
        row = report[name]
        mark = "" if name in TOPICS else "   (not a topic)"
        print(
            f"{name:<24} {row['f1-score']:6.3f} {row['precision']:6.3f} {row['recall']:6.3f} "
            f"{row['support']:4d}{mark}"
        )

    pairs = []
    for name, row in report.items():
        if isinstance(row, dict):
            for other, count in (row.get("confused_with") or {}).items():
                pairs.append((count, name, other))
    print("\nConfusions (true -> predicted: count):")
    for count, name, other in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        print(f"  {name} -> {other}: {count}")
    if not pairs:
        print("  none")

    macro = sum(report[t]["f1-score"] for t in TOPICS) / len(TOPICS)
    verdict = "PASS" if macro >= MIN_MACRO_F1 else "FAIL"
    print(
        f"\n{verdict}: macro-F1 over the {len(TOPICS)} topic intents = {macro:.3f} "
        f"(gate {MIN_MACRO_F1:.2f})"
    )
    return 0 if macro >= MIN_MACRO_F1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
