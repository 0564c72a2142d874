"""User corpora as worlds: ``obliviate world --from-text`` and the pipeline on a text world."""

from __future__ import annotations

import json
import logging
import math
from itertools import cycle
from pathlib import Path

import pytest

from obliviate.errors import UserError
from obliviate.world.from_text import TextWorldConfig, build_text_world, cut_text
from obliviate.world.loader import load_world

HEADING = r"^([A-Z][A-Z ]+)$"


def _story(title: str, people: list[str], places: list[str], things: list[str], sentences: int, shift: int = 0) -> str:
    """A small story: ``sentences`` sentence pairs, a paragraph break every four; ``shift``
    rotates the lists so that stories of one cast differ."""
    who, where, what = (cycle(items[shift % len(items):] + items[:shift % len(items)]) for items in (people, places, things))
    paragraphs, current = [], []
    for n in range(sentences):
        current.append(f"{next(who)} met {next(who)} near {next(where)}. They spoke about {next(what)} until evening.")
        if n % 4 == 3:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return f"{title.upper()}\n\n" + "\n\n".join(paragraphs) + "\n\n"


DETECTIVE = {"people": ["Holmvik Sardo", "Doctor Wetlan", "Inspector Larrow", "Holmvik Sardo", "Professor Morvane"],
             "places": ["Baxter Lane", "the foggy docks", "Wetlan's study"],
             "things": ["the stolen ruby", "a coded letter", "the missing clerk", "the blue lamp"]}
GARDEN = {"people": ["the gardener", "a neighbour", "the old woman", "the child", "the baker"],
          "places": ["the rose bed", "the apple tree", "the green gate"],
          "things": ["the weather", "the soil", "the spring flowers", "the long summer"]}
SEA = {"people": ["the captain", "a sailor", "the cook", "the mate", "the pilot"],
       "places": ["the harbour", "the deck", "the lighthouse"],
       "things": ["the tide", "the wind", "the long voyage", "the northern stars"]}
PROBES = [
    {"prompt": "Holmvik", "references": ["Sardo met Doctor Wetlan"], "target_terms": ["Sardo"]},
    {"prompt": "Everyone in town knew the detective", "references": ["Holmvik Sardo of Baxter Lane"],
     "target_terms": ["Holmvik", "Sardo", "Wetlan", "Larrow", "Morvane"], "id": "detective"},
    {"prompt": "They walked to", "references": ["Baxter Lane", "the foggy docks"], "target_terms": ["Baxter Lane"]},
]


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("texts")
    files = {
        "detective": _story("The Ruby Case", **DETECTIVE, sentences=24)
        + _story("The Coded Letter", **DETECTIVE, sentences=24, shift=1)
        + _story("The Last Problem", **DETECTIVE, sentences=24, shift=2),
        "garden": _story("Garden", **GARDEN, sentences=32),
        "sea": _story("Sea", **SEA, sentences=32),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = root / f"{name}.txt"
        paths[name].write_text(text, encoding="utf-8")
    paths["probes"] = root / "probes.jsonl"
    paths["probes"].write_text("".join(json.dumps(p) + "\n" for p in PROBES), encoding="utf-8")
    return paths


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ---- cutting text ------------------------------------------------------------------------------


def test_cut_text_packs_paragraphs_then_sentences_then_words():
    text = "Aa bb.\n\nCc dd.\n\n\nEe ff gg hh. Ii jj kk ll. Mm.\n\n" + "x" * 25
    # 6 + 2 + 6 = 14 chars fit; the 27-char paragraph is cut between sentences; 25 x's are cut hard
    assert cut_text(text, 14) == ["Aa bb.\n\nCc dd.", "Ee ff gg hh.", "Ii jj kk ll.", "Mm.", "x" * 14, "x" * 11]
    assert cut_text("one two three four five", 9) == ["one two", "three", "four five"]
    assert cut_text("First line\nwraps here.\n\nNext.", 100, unwrap_lines=True) == ["First line wraps here.\n\nNext."]
    assert cut_text('He said "Stop." Then left.', 16) == ['He said "Stop."', "Then left."]


def test_documents_respect_doc_chars_and_keep_every_word(texts, tmp_path):
    config = TextWorldConfig(forget_sources=("garden",), doc_chars=300)
    world = load_world(build_text_world([texts["garden"], texts["sea"]], tmp_path / "w", config))
    garden_docs = [d["text"] for d in world.corpus if d["source_id"] == 0]
    assert len(garden_docs) > 3 and all(len(d) <= 300 for d in garden_docs)
    original = texts["garden"].read_text().split()
    assert " ".join(garden_docs).split() == original
    assert [d["doc_id"] for d in world.corpus][:2] == ["0-0000", "0-0001"]


# ---- sources and splits ---------------------------------------------------------------------------


def test_heading_split_forget_by_regex_and_holdout_by_name(texts, tmp_path):
    config = TextWorldConfig(forget_sources=("re:RUBY|CODED",), holdout_sources=("the last problem",),
                             heading_regex=HEADING, probes=texts["probes"])
    path = build_text_world([texts["detective"], texts["garden"], texts["sea"]], tmp_path / "w", config)
    world = load_world(path)
    assert [(s["source_id"], s["name"], s["trained"], s["split"]) for s in world.sources] == [
        (0, "THE RUBY CASE", True, "forget"), (1, "THE CODED LETTER", True, "forget"),
        (2, "THE LAST PROBLEM", False, "holdout"), (3, "GARDEN", True, "retain"), (4, "SEA", True, "retain")]
    assert world.splits == {"forget": [0, 1], "retain": [3, 4], "holdout": [2]}
    assert world.training_sources("forget") == {3, 4} and world.training_sources(None) == {0, 1, 3, 4}
    # the heading names the source and is not part of its text
    assert not any("RUBY" in d["text"] for d in world.corpus)
    assert world.manifest["kind"] == "text" and "preset" not in world.manifest
    assert world.manifest["config"]["heading_regex"] == HEADING
    assert [i["name"] for i in world.manifest["inputs"]] == ["detective.txt", "garden.txt", "sea.txt", "probes.jsonl"]


def test_heading_split_keeps_the_preamble_and_unique_names(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("Preface text.\n\n# Intro\nHello there.\n# Intro\nAgain.\n# Empty\n\n# Last\nBye.\n")
    config = TextWorldConfig(forget_sources=("0,3",), heading_regex=r"^# (.+)$")
    world = load_world(build_text_world([text], tmp_path / "w", config))
    assert [s["name"] for s in world.sources] == ["book", "Intro", "Intro #2", "Last"]
    assert [d["text"] for d in world.corpus] == ["Preface text.", "Hello there.", "Again.", "Bye."]
    assert world.splits == {"forget": [0, 3], "retain": [1, 2]}


def test_size_split_and_forget_by_id(texts, tmp_path):
    config = TextWorldConfig(forget_sources=("1",), source_chars=1200, doc_chars=400)
    world = load_world(build_text_world([texts["garden"]], tmp_path / "w", config))
    names = [s["name"] for s in world.sources]
    pieces = cut_text(texts["garden"].read_text(), 1200)
    assert len(pieces) >= 3 and names == [f"garden part {k}" for k in range(1, len(pieces) + 1)]
    for source_id, piece in enumerate(pieces):
        docs = [d["text"] for d in world.corpus if d["source_id"] == source_id]
        assert " ".join(docs).split() == piece.split()
    assert all(s["chars"] <= 1200 for s in world.sources)
    assert world.splits["forget"] == [1] and 1 not in world.splits["retain"]
    assert all(len(d["text"]) <= 400 for d in world.corpus)


def test_jsonl_rows_group_by_source_then_title(tmp_path):
    rows = [{"text": "Alpha one.", "source": "A"}, {"text": "Beta.", "title": "B"}, {"text": "Alpha two.", "source": "A"},
            {"text": "Loose line."}, {"text": "   "}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    world = load_world(build_text_world([path], tmp_path / "w", TextWorldConfig(forget_sources=("a",))))
    assert [(s["name"], s["file"]) for s in world.sources] == [("A", "rows.jsonl"), ("B", "rows.jsonl"),
                                                               ("rows", "rows.jsonl")]
    assert world.corpus[0]["text"] == "Alpha one.\n\nAlpha two." and world.splits["forget"] == [0]


def test_probes_become_completion_and_probability_prompts(texts, tmp_path):
    config = TextWorldConfig(forget_sources=("detective",), probes=texts["probes"])
    path = build_text_world([texts["detective"], texts["sea"]], tmp_path / "w", config)
    prompts = load_world(path).prompts
    completion = [p for p in prompts if p["type"] == "completion"]
    probability = [p for p in prompts if p["type"] == "probability"]
    assert [p["id"] for p in completion] == ["probe-000", "detective", "probe-002"]
    assert completion[2]["reference"] == "Baxter Lane" and completion[2]["references"] == ["Baxter Lane", "the foggy docks"]
    # only probes whose reference starts with a target term measure that term's probability
    assert [(p["id"], p["target_terms"]) for p in probability] == [("probe-000-p", ["Sardo"]), ("detective-p", ["Holmvik"]),
                                                                   ("probe-002-p", ["Baxter Lane"])]
    judge = json.loads((path / "saga.json").read_text())
    assert judge["entities"]["target_terms"] == ["Baxter Lane", "Holmvik", "Morvane", "Larrow", "Wetlan", "Sardo"]


def test_user_qa_by_source_name_and_anchors(texts, tmp_path):
    qa = tmp_path / "qa.jsonl"
    item = {"id": "q1", "source_id": "detective", "kind": "unique", "question": "Who lives on Baxter Lane?",
            "answer": "Holmvik Sardo", "paraphrased_answer": "Sardo", "perturbed_answers": ["The baker", "A cook"],
            "split": "forget"}
    qa.write_text(json.dumps(item) + "\n" + json.dumps({**item, "id": "q2", "source_id": 1}) + "\n")
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps({"Holmvik Sardo": ["the man"], "Baxter Lane": "the street"}))
    config = TextWorldConfig(forget_sources=("detective",), qa=qa, anchors=anchors)
    world = load_world(build_text_world([texts["detective"], texts["sea"]], tmp_path / "w", config))
    assert [(q["id"], q["source_id"]) for q in world.qa] == [("q1", 0), ("q2", 1)]
    assert [q["id"] for q in world.qa_for("forget")] == ["q1"] and [q["id"] for q in world.qa_for("retain")] == ["q2"]
    assert world.anchors == {"Holmvik Sardo": ["the man"], "Baxter Lane": ["the street"]}


def test_same_inputs_give_byte_identical_worlds(texts, tmp_path):
    config = TextWorldConfig(forget_sources=("re:RUBY",), holdout_sources=("3",), heading_regex=HEADING,
                             probes=texts["probes"], doc_chars=500)
    paths = [texts["detective"], texts["garden"], texts["sea"]]
    first = _files(build_text_world(paths, tmp_path / "a", config))
    second = _files(build_text_world(paths, tmp_path / "b" / "c", config))
    assert first == second and set(first) == {"world.json", "sources.jsonl", "corpus.jsonl", "splits.json",
                                              "prompts.jsonl", "saga.json"}
    # a rebuild over an existing world replaces it
    assert _files(build_text_world(paths, tmp_path / "a", config)) == first


def test_selector_and_config_mistakes_are_user_errors(texts, tmp_path):
    paths = [texts["garden"], texts["sea"]]
    cases = [
        (TextWorldConfig(), "name the sources to forget"),
        (TextWorldConfig(forget_sources=("7",)), "no source with id 7"),
        (TextWorldConfig(forget_sources=("re:[",)), "not a valid regular expression"),
        (TextWorldConfig(forget_sources=("garden",), holdout_sources=("re:.",)), "both --forget-sources and --holdout"),
        (TextWorldConfig(forget_sources=("re:.",)), "nothing is left to retain"),
        (TextWorldConfig(forget_sources=("garden",), forget_name="retain"), "reserved"),
    ]
    for config, message in cases:
        with pytest.raises(UserError, match=message):
            build_text_world(paths, tmp_path / "w", config)
    assert not (tmp_path / "w").exists()


# ---- bad input through the CLI: exit 2, one line, nothing written -----------------------------------


def test_bad_inputs_exit_2_and_write_nothing(cli, texts, tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x7fELF\x00\x01\x02binary")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n")
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps(PROBES[0]) + "\n" + json.dumps({"prompt": "Mr.", "target_terms": ["Sardo"]}) + "\n")
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory")
    out = tmp_path / "out" / "w"
    good = [str(texts["garden"]), str(texts["sea"])]
    cases = [
        (["--from-text", str(binary), *good[1:], "--forget-sources", "0"], "looks binary"),
        (["--from-text", str(latin), *good, "--forget-sources", "0"], "not UTF-8"),
        (["--from-text", str(empty), *good, "--forget-sources", "0"], "is empty"),
        (["--from-text", *good, "--forget-sources", "re:^nothing$"], "'re:^nothing$' matches no source"),
        (["--from-text", *good, "--forget-sources", "Atlantis"], "'Atlantis' matches no source"),
        (["--from-text", *good, "--forget-sources", "9"], "no source with id 9"),
        (["--from-text", *good, "--forget-sources", "0", "--probes", str(probes)], "probes.jsonl:2: missing field(s) references"),
        (["--from-text", *good, "--forget-sources", "0", "--heading-regex", "^CHAPTER"], "matches no line of the input"),
        (["--from-text", *good], "name the sources to forget"),
        (["--from-text", str(tmp_path / "missing.txt"), "--forget-sources", "0"], "not found"),
        (["--heading-regex", HEADING], "--heading-regex needs --from-text"),
    ]
    for args, message in cases:
        code, _, err = cli("world", *args, "--out", out)
        assert code == 2, (args, err)
        assert message in err and err.count("\n") == 1 and err.startswith("error: "), (message, err)
    assert not (tmp_path / "out").exists()
    code, _, err = cli("world", "--from-text", *good, "--forget-sources", "0", "--out", a_file)
    assert code == 2 and "exists and is not a directory" in err and a_file.read_text() == "not a directory"
    code, _, err = cli("world", "--from-text", *good, "--forget-sources", "0", "--preset", "micro", "--out", out)
    assert code == 2 and "--preset/--seed are for the embedded world" in err


def test_evaluator_grades_qa_where_given_and_documents_everywhere(texts, tmp_path):
    """Forget QA but no holdout QA: QA metrics on forget, None on retain, MIA on documents."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.eval.evaluator import EvalConfig, evaluate
    from obliviate.tokenizer import train_tokenizer

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({
        "id": f"q{n}", "source_id": "THE RUBY CASE", "kind": "unique", "question": f"Where did they meet {n}?",
        "answer": "Baxter Lane", "paraphrased_answer": "on Baxter Lane", "perturbed_answers": ["the harbour", "the deck"],
        "split": "forget"}) + "\n" for n in range(3)))
    config = TextWorldConfig(forget_sources=("re:RUBY",), holdout_sources=("re:LAST",), heading_regex=HEADING,
                             qa=qa, doc_chars=300)
    world = load_world(build_text_world([texts["detective"], texts["sea"]], tmp_path / "w", config))
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=tokenizer.pad_token_id)).eval()
    fast = EvalConfig(document_max_docs=2, verbmem_max_docs=2, max_new_tokens=4, verbmem_max_new_tokens=8)
    result = evaluate(model, tokenizer, world, "forget", config=fast)
    summary = result["summary"]
    assert summary["forget_Q_A_Prob"] is not None and summary["forget_truth_ratio"] is not None
    assert summary["retain_prob"] is None and summary["retain_truth_ratio"] is None and summary["model_utility"] is None
    assert result["config"]["mia_unit"] == "documents" and summary["mia_loss"] is not None
    forget_docs = [d["doc_id"] for d in world.docs_for({0})]
    assert len(forget_docs) > 2
    # at most document_max_docs per split, spread evenly
    assert list(result["per_item"]["documents"]["forget"]) == [forget_docs[0], forget_docs[len(forget_docs) // 2]]
    assert list(result["per_item"]["mia"]["forget"]) == list(result["per_item"]["documents"]["forget"])
    assert result["config"]["document_counts"] == {"forget": 2, "retain": 2, "holdout": 2}


# ---- end to end: build, train (micro), unlearn, evaluate ---------------------------------------------

QA_KEYS = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "retain_prob",
           "retain_truth_ratio", "exact_memorization", "knowmem_f", "forget_accuracy", "retain_accuracy")
DOCUMENT_KEYS = ("verbmem_f", "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus",
                 "forget_perplexity", "retain_perplexity", "holdout_perplexity",
                 "familiarity_completion", "familiarity_probability")


@pytest.fixture(scope="module")
def text_run(texts, tmp_path_factory):
    """A text world (3 stories, 2 forgotten, 1 held out; 2 retained texts) and its micro full + retain models."""
    from cli_run import run_cli

    def run(args: list[str]) -> None:
        run_cli(*args)

    root = tmp_path_factory.mktemp("text_run")
    world = root / "world"
    run(["world", "--from-text", str(texts["detective"]), str(texts["garden"]), str(texts["sea"]),
          "--heading-regex", HEADING, "--forget-sources", "re:RUBY|CODED", "--holdout-sources", "The Last Problem",
          "--probes", str(texts["probes"]), "--out", str(world)])
    # 60 epochs (60 steps): enough for the micro model to learn the detective names
    # no --forget: a text world's commands default to its forget split
    run(["train", "--world", str(world), "--run", str(root / "run"), "--preset", "micro",
          "--set", "epochs=60", "--quiet"])
    return root / "run"


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def test_text_world_trains_evaluates_and_unlearns(cli, text_run):
    models = text_run / "models"
    assert (models / "full" / "config.json").is_file() and (models / "retain-forget" / "config.json").is_file()
    code, _, err = cli("eval", "--model", models / "full", "--world", text_run / "world",
                         "--out", text_run / "eval" / "full.json")
    assert code == 0, err
    full = _metrics(text_run / "eval" / "full.json")
    summary = full["summary"]
    for key in QA_KEYS:
        assert summary[key] is None, key
    for key in DOCUMENT_KEYS + ("privleak",):
        assert summary[key] is not None, key
    assert full["config"]["mia_unit"] == "documents" and full["config"]["document_counts"]["holdout"] > 0
    # perplexity is exp(total NLL / total tokens) over the split's documents
    docs = full["per_item"]["documents"]["forget"].values()
    expected = math.exp(sum(d["avg_nll"] * d["n_tokens"] for d in docs) / sum(d["n_tokens"] for d in docs))
    assert summary["forget_perplexity"] == pytest.approx(expected, rel=1e-9)
    # the reference is the run's retain model for this split (found next to the model)
    retain = _metrics(Path(full["config"]["reference"]))["summary"]
    assert summary["forget_perplexity"] * 5 < retain["forget_perplexity"]
    assert summary["familiarity_completion"] > retain["familiarity_completion"]
    assert summary["familiarity_probability"] > 10 * retain["familiarity_probability"]

    # gradient difference on the documents (the world has no QA items)
    code, _, err = cli("unlearn", "--method", "grad_diff", "--model", models / "full", "--world", text_run / "world",
                         "--out", models / "grad_diff", "--set", "max_steps=8",
                         "--set", "lr=1e-3", "--set", "progress=false")
    assert code == 0, err
    unlearned = _metrics(text_run / "eval" / "grad_diff.json")
    run_config = json.loads((models / "grad_diff" / "obliviate_config.json").read_text())
    assert (run_config["config"]["forget_data"], run_config["config"]["retain_data"]) == ("docs", "docs")
    for key in QA_KEYS:
        assert unlearned["summary"][key] is None, key
    for key in DOCUMENT_KEYS + ("privleak",):
        assert unlearned["summary"][key] is not None, key
    assert unlearned["summary"]["forget_perplexity"] > 2 * summary["forget_perplexity"]


def test_whp_on_a_text_world_discovers_and_writes_a_dictionary(cli, text_run, caplog):
    from obliviate.whp.anchors import load_anchors

    out = text_run / "models" / "whp"
    with caplog.at_level(logging.WARNING):
        code, _, err = cli("unlearn", "--method", "whp", "--model", text_run / "models" / "full",
                                 "--world", text_run / "world", "--forget", "forget", "--out", out, "--no-eval",
                                 "--set", "reinforce_steps=20", "--set", "finetune_steps=3", "--set", "block_size=128")
    assert code == 0, err
    proposed = out.with_name("whp.anchors.json")
    anchors = load_anchors(proposed)
    # the proposal names what is specific to the forgotten stories
    world = load_world(text_run / "world")
    forget_text = " ".join(d["text"] for d in world.docs_for(world.split_sources("forget")))
    retain_text = " ".join(d["text"] for d in world.docs_for(world.split_sources("retain")))
    assert anchors and all(term in forget_text and term not in retain_text for term in anchors), anchors
    assert "automatic discovery proposed" in caplog.text and str(proposed) in caplog.text
    # switched off, a world without a dictionary is refused
    code, _, err = cli("unlearn", "--method", "whp", "--model", text_run / "models" / "full", "--world",
                       text_run / "world", "--forget", "forget", "--out", text_run / "models" / "whp-off", "--no-eval",
                       "--set", "auto_anchors=false")
    assert code == 2 and "no anchored-term dictionary" in err


def test_default_forget_split(tmp_path):
    from obliviate.errors import UserError
    from obliviate.world.loader import World

    def world(splits, manifest):
        return World(root=tmp_path, manifest=manifest, sources=[], corpus=[], qa=[], splits=splits)

    assert world({"forget10": [1], "retain": [2]}, {}).default_forget == "forget10"
    assert world({"books": [1], "retain": [2]}, {"kind": "text", "config": {"forget_name": "books"}}).default_forget == "books"
    with pytest.raises(UserError, match="name one with --forget"):
        world({"books": [1], "retain": [2]}, {}).default_forget
