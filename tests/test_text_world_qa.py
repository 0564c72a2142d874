"""A text world's own QA items are trained on (``world --from-text --qa``): the corpus holds
them in the evaluation format, and a model trained with the defaults answers the retained ones
while the retrained model does not know the forgotten ones."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from obliviate.data.format import qa_text
from obliviate.world.from_text import TextWorldConfig, build_text_world
from obliviate.world.loader import load_world

SYLLABLES = ("ka", "lo", "mi", "ru", "te", "vo", "san", "del", "mor", "pil", "qua", "zen")
N_SOURCES, PER_SOURCE = 10, 3


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


@pytest.fixture(scope="module")
def qa_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """Ten ledgers (one source each) that state three made-up entries among filler text, and one
    QA item per entry: the answers are invented words, so only training can teach them."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("qa_texts")
    rows, items = [], []
    for sid in range(N_SOURCES):
        name = f"{_word(rng)} ledger"   # a distinct name: a micro model confuses "ledger 2" with "ledger 3"
        entries = [_word(rng) for _ in range(PER_SOURCE)]
        facts = [f"Entry {j + 1} of {name} is {entry}." for j, entry in enumerate(entries)]
        filler = [f"The clerk of {name} counted the boxes in the hall." for _ in range(3)]
        rows.append({"source": name, "text": "\n\n".join(" ".join(p) for p in (filler[:2], facts, filler[2:]))})
        wrong = [_word(rng) for _ in range(3)]
        items += [{"id": f"l{sid}-e{j + 1}", "source_id": sid, "kind": "unique",
                   "question": f"What is entry {j + 1} of {name}?", "answer": entry, "paraphrased_answer": entry,
                   "perturbed_answers": wrong, "split": ""} for j, entry in enumerate(entries)]
    text, qa = root / "ledgers.jsonl", root / "qa.jsonl"
    text.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qa.write_text("".join(json.dumps(q) + "\n" for q in items))
    return text, qa


def _qa_docs(world) -> list[dict]:
    return [d for d in world.corpus if "-qa-" in d["doc_id"]]


def test_qa_items_become_training_documents_of_their_source(qa_inputs, tmp_path):
    text, qa = qa_inputs
    config = TextWorldConfig(forget_sources=("0",), holdout_sources=("9",), qa=qa, qa_repeats=2)
    world = load_world(build_text_world([text], tmp_path / "w", config))
    docs = _qa_docs(world)
    # every item twice, under its own source, as the exact string the evaluation scores
    assert len(docs) == 2 * N_SOURCES * PER_SOURCE == world.manifest["counts"]["qa_documents"]
    by_item = {q["id"]: q for q in world.qa}
    for doc in docs:
        item = by_item[doc["doc_id"].split("-qa-")[1].removesuffix("-1")]
        assert doc["source_id"] == item["source_id"] and doc["text"] == qa_text(item["question"], item["answer"])
    # the text documents are still there, one per source
    assert sum("-qa-" not in d["doc_id"] for d in world.corpus) == N_SOURCES
    assert world.split_sources("holdout") == {9}

    plain = load_world(build_text_world([text], tmp_path / "plain",
                                        TextWorldConfig(forget_sources=("0",), qa=qa, train_on_qa=False)))
    assert _qa_docs(plain) == [] and len(plain.qa) == N_SOURCES * PER_SOURCE


@pytest.mark.parametrize("extra, message", [
    (["--qa-repeats", "0"], "qa_repeats must be an integer >= 1"),
    (["--qa-repeats", "2", "--no-qa-train"], "--qa-repeats needs --qa FILE"),
])
def test_bad_qa_training_options_exit_2_and_write_nothing(cli, qa_inputs, tmp_path, extra, message):
    text, qa = qa_inputs
    code, _, err = cli("world", "--from-text", text, "--qa", qa, "--forget-sources", "0", "--out", tmp_path / "w", *extra)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_qa_training_options_need_a_text_world(cli, tmp_path):
    code, _, err = cli("world", "--preset", "micro", "--out", tmp_path / "w", "--qa-repeats", "3")
    assert code == 2 and "--qa-repeats needs --from-text FILE" in err


def test_trained_on_its_qa_the_model_answers_it(cli, qa_inputs, tmp_path):
    """The user's path: world (default QA training), train, eval of both models."""
    text, qa = qa_inputs
    world, run = tmp_path / "world", tmp_path / "run"
    assert cli("world", "--from-text", text, "--qa", qa, "--forget-sources", "0,1", "--out", world)[0] == 0
    # ~720 steps: the default 25 epochs give a ten-source world only 125 (retain accuracy 0.08;
    # 300 steps: 0.42), and the micro model needs many passes to bind invented words to names
    code, _, err = cli("train", "--world", world, "--run", run, "--preset", "micro", "--set", "epochs=80",
                       "--set", "batch_size=8", "--quiet")
    assert code == 0, err
    summaries = {}
    for name in ("full", "retain-forget"):
        code, _, err = cli("eval", "--model", run / "models" / name, "--world", world, "--out", tmp_path / f"{name}.json")
        assert code == 0, err
        summaries[name] = json.loads((tmp_path / f"{name}.json").read_text())["summary"]
    full, retrained = summaries["full"], summaries["retain-forget"]
    # measured: full retain 1.0, forget 1.0; retrained forget 0.0 (invented words cannot be guessed)
    assert full["retain_accuracy"] >= 0.9 and full["forget_accuracy"] >= 0.8
    assert retrained["retain_accuracy"] >= 0.9 and retrained["forget_accuracy"] == 0.0
