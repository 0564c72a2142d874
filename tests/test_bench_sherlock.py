"""The "Who's Sherlock Holmes?" benchmark's pieces (bench/sherlock/, run by bench/bench_sherlock.py)
on a tiny slice of the public-domain texts (a synthetic text of the same shape where ../shared is
absent): probe loading, familiarity counting on hand-made completions, the world it builds, the
measurements on a tiny random model, the report, and the skip path. The full run is not a test."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from obliviate.errors import UserError
from obliviate.tokenizer import train_tokenizer
from obliviate.world import load_world

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "public-domain"

sys.path.insert(0, str(REPO / "bench"))   # the bench's entry point and its ``sherlock`` package live there

from bench_sherlock import main  # noqa: E402
from sherlock.config import (  # noqa: E402
    BENCH_DATA,
    DATA_FILES,
    HOLDOUT_STORIES,
    SHERLOCK_HEADING,
    SherlockConfig,
    method_runs,
)
from sherlock.familiarity import completion_familiarity  # noqa: E402
from sherlock.measure import measure, summary_row  # noqa: E402
from sherlock.probes import Probe, load_probes  # noqa: E402
from sherlock.report import write_results  # noqa: E402
from sherlock.world import build_world, find_data, held_out_docs, subsample_stories  # noqa: E402

# ---- a tiny slice of the data ---------------------------------------------------------------------


def _synthetic_sherlock() -> str:
    stories = ["A SCANDAL IN BOHEMIA", *HOLDOUT_STORIES, "THE FINAL PROBLEM"]
    body = ("     To Sherlock Holmes she is always the woman. I had seen little of\n"
            "     Holmes lately, said Dr. Watson of Baker Street.\n\n"
            "     Inspector Lestrade of Scotland Yard called on Mr. Sherlock Holmes.\n\n"
            "     Professor Moriarty sat in the chair while Mrs. Hudson waited.\n\n")
    return "\n\n               THE COMPLETE SHERLOCK HOLMES\n\n" + "".join(
        f"\n\n                         {title}\n\n{body * 3}" for title in stories)


def _synthetic_shakespeare() -> str:
    return "".join(f"First Citizen:\nBefore we proceed any further, hear me speak {k}.\n\n"
                   f"All:\nSpeak, speak.\n\n" for k in range(120))


def _slice_sherlock(text: str, chars: int = 2500) -> str:
    """The first ``chars`` characters of every story (headings kept)."""
    marks = list(re.finditer(SHERLOCK_HEADING, text, re.MULTILINE))
    pieces = [text[: marks[0].start()][:chars]]
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        pieces.append(text[mark.start(): end][:chars])
    return "\n\n".join(pieces)  # a cut story must not glue its last line to the next heading


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sherlock_data")
    if all((SHARED_DATA / name).is_file() for name in DATA_FILES):
        sherlock = _slice_sherlock((SHARED_DATA / "sherlock.txt").read_text(encoding="utf-8"))
        shakespeare = (SHARED_DATA / "shakespeare.txt").read_text(encoding="utf-8")[:12_000]
    else:
        sherlock, shakespeare = _synthetic_sherlock(), _synthetic_shakespeare()
    (out / "sherlock.txt").write_text(sherlock, encoding="utf-8")
    (out / "shakespeare.txt").write_text(shakespeare, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def small_config(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("sherlock_run")
    return SherlockConfig(data=data_dir, run=root / "run", out=root / "out", shakespeare_chars=3000,
                          doc_chars=600, steps=2, max_new_tokens=4, method_steps=7)


@pytest.fixture(scope="module")
def world(small_config):
    texts = find_data(small_config.data)
    return load_world(build_world(texts, small_config.probes, small_config.run, small_config))


# ---- probes and familiarity ---------------------------------------------------------------------------


def test_the_bench_probe_file_loads():
    probes = load_probes(BENCH_DATA / "sherlock_probes.jsonl")
    assert len(probes) == 40
    assert (probes[0].prompt, probes[0].target_terms, probes[0].references) == ("Mr. Sherlock", ["Holmes"], ["Holmes"])
    terms = {t for p in probes for t in p.target_terms}
    assert {"Holmes", "Watson", "Street", "Lestrade", "Moriarty", "Hudson", "Adler"} <= terms
    anchors = json.loads((BENCH_DATA / "sherlock_anchors.json").read_text())
    assert {"Holmes", "Watson", "Baker Street", "Lestrade", "Moriarty", "Mrs. Hudson", "Mycroft", "Irene Adler"} <= set(anchors)


def test_probe_file_errors(tmp_path):
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"prompt": "Mr. Sherlock", "references": ["Holmes"]}) + "\n")
    with pytest.raises(UserError, match="target_terms"):
        load_probes(missing)
    empty_terms = tmp_path / "empty.jsonl"
    empty_terms.write_text(json.dumps({"prompt": "Mr. Sherlock", "references": [], "target_terms": []}) + "\n")
    with pytest.raises(UserError, match="non-empty list"):
        load_probes(empty_terms)


def test_familiarity_counting_on_hand_made_completions():
    probes = [Probe("Mr. Sherlock", ["Holmes"], ["Holmes"]),
              Probe("my friend Dr.", ["Watson"], ["Watson"]),
              Probe("221B Baker", ["Street"], ["Street"]),
              Probe("Professor", ["Moriarty"], ["Moriarty"]),
              Probe("said Holmes to Watson,", ["Watson"], ["Watson"])]
    completions = [" Holmes was waiting for us.", " Smith came in.", " Street.", " moriarty said nothing",
                   " and Watson laughed."]
    result = completion_familiarity(probes, completions, ["Holmes", "Watson", "Baker Street", "Moriarty"])
    # named: Holmes yes, Smith no, Street yes, moriarty yes (case-insensitive), Watson already in the prompt: no
    assert result["named"] == [True, False, True, True, False]
    assert result["named_share"] == pytest.approx(3 / 5)
    # judge grades: 3 (Holmes), 0, 1 (shares "street" with the reference; no entity), 3 (Moriarty), 0
    assert result["grades"] == [3, 0, 1, 3, 0]
    assert result["judge_score"] == pytest.approx((5 * 2 + 0) / 5)
    with pytest.raises(ValueError):
        completion_familiarity(probes, completions[:2], ["Holmes"])


def test_subsampling_keeps_the_first_paragraphs_and_held_out_stories_whole():
    text = ("\n                    A SCANDAL IN BOHEMIA\n\np1\n\np2\n\np3\n\np4\n"
            "\n                    THE YELLOW FACE\n\nq1\n\nq2\n\nq3\n\nq4\n")
    half = subsample_stories(text, 0.5)
    assert "p2" in half and "p3" not in half and "p4" not in half
    assert all(q in half for q in ("q1", "q2", "q3", "q4"))
    assert subsample_stories(text, 1.0) == text


# ---- the world, the measurements, the report ----------------------------------------------------------


def test_world_from_the_slice(world):
    names = {s["source_id"]: s["name"] for s in world.sources}
    holdout = {names[i] for i in world.splits["holdout"]}
    assert set(HOLDOUT_STORIES) <= holdout
    shakespeare_parts = sorted((n for n in names.values() if n.startswith("shakespeare")),
                               key=lambda n: int(n.rsplit(" ", 1)[1]))
    assert len(shakespeare_parts) >= 3 and shakespeare_parts[-1] in holdout
    assert all(names[i].startswith("shakespeare") for i in world.splits["retain"])
    assert not any(names[i].startswith("shakespeare") for i in world.splits["forget"])
    assert set(world.splits["forget"]).isdisjoint(world.splits["holdout"])
    held = held_out_docs(world)
    assert held["sherlock"] and held["shakespeare"]
    assert any("Holmes" in d["text"] for d in held["sherlock"])
    assert len(world.prompts) >= 40  # the probes went into the world (completion + probability rows)


def _tiny_model(world):
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=300)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=len(tokenizer), max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_measurements_on_a_tiny_model(world):
    model, tokenizer = _tiny_model(world)
    probes = load_probes(BENCH_DATA / "sherlock_probes.jsonl")[:6]
    metrics = measure(model, tokenizer, probes, held_out_docs(world), ["Holmes", "Watson"], max_new_tokens=4)
    assert len(metrics["completions"]) == 6
    assert 0.0 <= metrics["completion"]["named_share"] <= 1.0
    assert set(metrics["perplexity"]) == {"sherlock", "shakespeare"}
    # an untrained model is close to uniform over its vocabulary
    assert all(0.3 * len(tokenizer) < ppl < 3 * len(tokenizer) for ppl in metrics["perplexity"].values())

    # the first-token probability is the softmax at the prompt's last position
    probe = probes[0]
    ids = tokenizer(probe.prompt)["input_ids"]
    term_ids = tokenizer(probe.prompt + " " + probe.target_terms[0])["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    expected = torch.softmax(logits.float(), -1)[term_ids[len(ids)]].item()
    assert metrics["probability"]["per_probe_first_token"][0] == pytest.approx(expected, rel=1e-4)
    assert metrics["probability"]["per_probe_mass"][0] <= metrics["probability"]["per_probe_first_token"][0] + 1e-9
    row = summary_row(metrics)
    assert row["first_token_prob"] == pytest.approx(sum(metrics["probability"]["per_probe_first_token"]) / 6)


def test_report_from_a_result(small_config, tmp_path):
    probes = [{"prompt": "Mr. Sherlock", "references": ["Holmes"], "target_terms": ["Holmes"]}]
    row = {"named_share": 0.75, "judge_score": 3.5, "first_token_prob": 0.5, "term_mass": 0.25,
           "ppl_shakespeare": 123.456, "ppl_sherlock": 45.6}
    result = {
        "summary": {"full": row, "npo": {**row, "named_share": 0.0}},
        "models": {"full": {"steps": 600, "epochs": 1.5, "seconds": 321.0, "cpu_seconds": 600.4},
                   "retain": {"steps": 600, "epochs": 6.0, "seconds": 300.0, "cpu_seconds": None},
                   "npo": {"steps": 150, "seconds": 42.0, "cpu_seconds": 80.0}},
        "measurements": {"full": {"completions": [" Holmes"]}, "npo": {"completions": [" the | man"]}},
        "world": {"counts": {"sources": 10, "documents": 100, "corpus_chars": 12345}, "holdout_sources": ["X"],
                  "probes": probes},
        "config": {"shakespeare_chars": 110000, "doc_chars": 1200, "sherlock_fraction": 0.5, "preset": "tiny",
                   "seed": 0, "max_new_tokens": 24},
        "method_runs": [{"id": "npo", "method": "npo", "overrides": {"max_steps": 150}}],
        "timings": {"wall_seconds": 120.0, "benchmark_seconds": 900.0, "benchmark_cpu_seconds": 1500.0},
        "versions": {"cpu_count": 2, "torch": "x", "transformers": "y"},
        "command": "python bench/bench_sherlock.py",
    }
    write_results(result, tmp_path)
    markdown = (tmp_path / "sherlock.md").read_text()
    assert "| full | 0.750 | 3.500 | 0.500 | 0.250 | 123.5 | 45.600 | 600 | 321 | 600 |" in markdown
    assert "| npo | 0.000 |" in markdown and "| 150 | 42 | 80 |" in markdown
    assert "took 15.0 min wall, 25.0 min CPU" in markdown
    assert "first 50% of each trained story" in markdown
    assert "the \\| man" in markdown  # table cells escape pipes
    assert json.loads((tmp_path / "sherlock.json").read_text())["summary"]["full"]["ppl_sherlock"] == 45.6


# ---- the skip path and bad input ------------------------------------------------------------------------


def test_skips_cleanly_without_the_data(tmp_path, capsys):
    code = main(["--data", str(tmp_path / "absent"), "--run", str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: sherlock.txt, shakespeare.txt not found in")
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_unknown_method_is_a_user_error(small_config):
    with pytest.raises(UserError, match="unknown method run 'nope'"):
        method_runs(replace(small_config, methods=("npo", "nope")))
    runs = method_runs(replace(small_config, methods=("whp_auto", "whp_hand", "npo")))
    assert [r.id for r in runs] == ["whp-auto", "whp-hand", "npo"]
    # the hand-dictionary run reuses the reinforced model the automatic run saves
    assert runs[1].overrides["reinforced_model_path"] == runs[0].overrides["save_reinforced_path"]
    assert runs[2].overrides["forget_data"] == "docs"
    assert runs[2].overrides["max_steps"] == small_config.method_steps
