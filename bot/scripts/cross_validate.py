"""k-fold cross-validation of the NLU pipeline, with the rankings the fallback table needs.

Run with the bot's interpreter from the repository root (about 2 to 3 minutes a fold on 2 cores):

    bot/.venv/bin/python bot/scripts/cross_validate.py [--folds 5] [--json out.json]

The same procedure as `rasa test nlu --cross-validation` (stratified folds over data/nlu, one
model trained per fold with config.yml, its held-back fold parsed), with a fixed seed so runs
are comparable, and keeping each prediction's whole ranking: the classifier's own ranking
(nlu_fallback removed) replayed against each FallbackClassifier threshold gives what every
threshold costs on phrasings the model never saw. Prints Markdown for docs/assistant.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fallback_table import AMBIGUITY, table
from quality_gate import TOPICS

BOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("es", "en", "ht", "fr")


def load_examples() -> list[dict[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    rows = []
    for lang in LANGUAGES:
        for m in load_data(str(BOT / "data" / "nlu" / f"{lang}.yml")).intent_examples:
            rows.append({"text": m.get("text"), "intent": m.get("intent"), "lang": lang})
    return rows


def write_nlu(rows: list[dict[str, str]], path: Path) -> None:
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    data = TrainingData([Message(data={"text": r["text"], "intent": r["intent"]}) for r in rows])
    path.write_text(data.nlu_as_yaml(), encoding="utf-8")


async def parse_all(model: str, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    out = []
    for r in rows:
        parsed = await agent.parse_message(r["text"])
        ranking = [x for x in parsed["intent_ranking"] if x["name"] != "nlu_fallback"]
        top2 = ranking[1]["confidence"] if len(ranking) > 1 else 0.0
        out.append(
            {
                **r,
                "gold": r["intent"],
                "pred": ranking[0]["name"],
                "conf": ranking[0]["confidence"],
                "margin": ranking[0]["confidence"] - top2,
            }
        )
    return out


def f1_by_intent(rows: list[dict[str, Any]]) -> dict[str, float]:
    intents = sorted({r["gold"] for r in rows})
    scores = {}
    for i in intents:
        tp = sum(r["gold"] == i and r["pred"] == i for r in rows)
        fp = sum(r["gold"] != i and r["pred"] == i for r in rows)
        fn = sum(r["gold"] == i and r["pred"] != i for r in rows)
        scores[i] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", help="write every out-of-fold prediction here")
    args = parser.parse_args()

    from rasa.model_training import train_nlu
    from rasa.utils.log_utils import configure_structlog
    from sklearn.model_selection import StratifiedKFold

    logging.disable(logging.WARNING)
    configure_structlog(logging.WARNING)  # Rasa's structlog would print every parsed text

    examples = load_examples()
    topics = set(TOPICS)
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    predictions: list[dict[str, Any]] = []
    per_fold = []
    with tempfile.TemporaryDirectory(prefix="faro-cv-") as tmp:
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")
        split = folds.split(examples, [r["intent"] for r in examples])
        for k, (train_idx, test_idx) in enumerate(split):
            nlu = Path(tmp) / f"train{k}.yml"
            write_nlu([examples[i] for i in train_idx], nlu)
            t0 = time.perf_counter()
            model = train_nlu(str(BOT / "config.yml"), str(nlu), tmp, fixed_model_name=f"f{k}")
            seconds = time.perf_counter() - t0
            assert model is not None
            rows = asyncio.run(parse_all(model, [examples[i] for i in test_idx]))
            predictions += rows
            f1 = f1_by_intent(rows)
            fold = {
                "accuracy": sum(r["pred"] == r["gold"] for r in rows) / len(rows),
                "macro_f1": statistics.fmean(f1.values()),
                "topic_macro_f1": statistics.fmean(f1[t] for t in topics),
                "train_s": round(seconds),
            }
            per_fold.append(fold)
            print(f"fold {k}: {json.dumps(fold)}", flush=True)

    def mean_sd(key: str) -> str:
        values = [f[key] for f in per_fold]
        return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"

    print(f"\n{args.folds}-fold cross-validation over {len(examples)} examples")
    print("\n| measure | mean ± sd over folds |\n|---|---:|")
    print(f"| accuracy | {mean_sd('accuracy')} |")
    print(f"| macro-F1, all 30 intents | {mean_sd('macro_f1')} |")
    print(f"| macro-F1, 20 topic intents | {mean_sd('topic_macro_f1')} |")

    print("\n| language | examples | accuracy |\n|---|---:|---:|")
    for lang in LANGUAGES:
        rows = [r for r in predictions if r["lang"] == lang]
        right = sum(r["pred"] == r["gold"] for r in rows)
        print(f"| {lang} | {len(rows)} | {right / len(rows):.3f} |")

    print("\n| intent | F1 (pooled out-of-fold) | most often taken for |\n|---|---:|---|")
    for intent, score in sorted(f1_by_intent(predictions).items(), key=lambda kv: kv[1]):
        wrong = [r["pred"] for r in predictions if r["gold"] == intent and r["pred"] != intent]
        common = max(set(wrong), key=wrong.count) if wrong else ""
        mark = "" if intent in topics else " *"
        print(f"| {intent}{mark} | {score:.3f} | {common} |")

    print()
    for amb in AMBIGUITY:
        print(table(predictions, amb, "Out-of-fold, all intents"))
        print()
    print(table([r for r in predictions if r["gold"] in topics], 0.1, "Out-of-fold, topics"))
    if args.json:
        Path(args.json).write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
