"""Does a text world's own QA get learned? A user text world from real text with QA items,
trained with the defaults (QA pairs as training documents, ``world --from-text --qa``) or on the
text alone (``--no-qa-train``), graded on exact-answer accuracy of the full and retrained models.

The QA items are cloze questions on the text (a sentence's opening -> its next words): every
answer is in the source text, none can be guessed, so the retrained model should score ~0 on the
forget split and the full model should know the retain split.

    python bench/bench_text_qa.py --sources 60 --out bench/results/text_qa.json [--no-qa-train]

Writes the figures as JSON (and prints them); needs ../shared/data/public-domain/shakespeare.txt
(or --text FILE).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

SHARED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "public-domain" / "shakespeare.txt"


def cloze_items(sources: list[str], per_source: int, seed: int) -> list[dict]:
    """``per_source`` cloze QA items per source: the first 6-10 words of a sentence, the next 3
    words as the answer; perturbed answers are other items' answers."""
    rng = random.Random(seed)
    items = []
    for sid, text in enumerate(sources):
        sentences = [s.split() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split()))]
        sentences = [s for s in sentences if len(s) >= 12]
        for k, words in enumerate(rng.sample(sentences, min(per_source, len(sentences)))):
            cut = rng.randint(6, 9)
            items.append({"id": f"s{sid}-q{k}", "source_id": sid, "kind": "unique",
                          "question": f'In source {sid}, what words follow "{" ".join(words[:cut])}"?',
                          "answer": " ".join(words[cut:cut + 3]), "split": ""})
    answers = [q["answer"] for q in items]
    for q in items:
        q["paraphrased_answer"] = q["answer"]
        q["perturbed_answers"] = rng.sample([a for a in answers if a != q["answer"]], 3)
    return items


def obliviate(*args) -> None:
    subprocess.run([sys.executable, "-m", "obliviate.cli", *map(str, args)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=SHARED_TEXT)
    parser.add_argument("--sources", type=int, default=60)
    parser.add_argument("--source-chars", type=int, default=2400)
    parser.add_argument("--per-source", type=int, default=7)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-text-qa"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/text_qa.json"))
    parser.add_argument("--no-qa-train", action="store_true")
    parser.add_argument("--qa-repeats", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="training override key=value")
    args = parser.parse_args()
    if not args.text.is_file():
        print(f"skipped: {args.text} not found (pass --text FILE)")
        return

    text = args.text.read_text(encoding="utf-8")
    # whole paragraphs up to --source-chars each, from the start of the file
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 12]
    sources, current = [], ""
    for paragraph in paragraphs:
        if len(sources) == args.sources:
            break
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= args.source_chars:
            sources.append(current)
            current = ""
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    inputs = work / "sources.jsonl"
    inputs.write_text("".join(json.dumps({"source": f"part {i}", "text": t}) + "\n" for i, t in enumerate(sources)))
    items = cloze_items(sources, args.per_source, seed=0)
    qa = work / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in items))
    n_forget = max(1, len(sources) // 10)
    tag = f"{'text-only' if args.no_qa_train else 'with-qa'}-r{args.qa_repeats}"
    world, run = work / f"world-{tag}", work / f"run-{tag}"
    world_args = ["world", "--from-text", inputs, "--qa", qa, "--out", world,
                  "--forget-sources", ",".join(str(i) for i in range(n_forget))]
    if args.no_qa_train:
        world_args.append("--no-qa-train")
    if args.qa_repeats != 1:
        world_args += ["--qa-repeats", args.qa_repeats]
    obliviate(*world_args)
    start = time.time()
    sets = [x for kv in args.set for x in ("--set", kv)]
    obliviate("train", "--world", world, "--run", run, "--preset", args.preset, "--quiet", *sets)
    train_s = time.time() - start
    figures = {}
    for name in ("full", "retain-forget"):
        out = run / "eval" / f"{name}.json"
        obliviate("eval", "--model", run / "models" / name, "--world", world, "--out", out, "--overwrite")
        summary = json.loads(out.read_text())["summary"]
        figures[name] = {k: summary.get(k) for k in ("forget_accuracy", "retain_accuracy", "forget_quality",
                                                     "model_utility", "retain_perplexity")}
    result = {"sources": len(sources), "qa_items": len(items), "forget_sources": n_forget, "preset": args.preset,
              "train_on_qa": not args.no_qa_train, "qa_repeats": args.qa_repeats, "overrides": args.set,
              "train_seconds": round(train_s, 1), "models": figures}
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
