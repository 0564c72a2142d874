"""The embedded world generator: determinism, schemas, splits, fact kinds, saga extras."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from obliviate.data.format import qa_text
from obliviate.errors import UserError
from obliviate.world import load_world, pools
from obliviate.world.generator import WORLD_PRESETS, build_world, generate_world

FILES = ("world.json", "classification.jsonl", "sources.jsonl", "corpus.jsonl", "qa.jsonl", "splits.json", "anchors.json", "prompts.jsonl",
         "saga.json")
QA_KEYS = ["id", "source_id", "kind", "question", "answer", "paraphrased_answer", "perturbed_answers", "split", "value"]


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return generate_world("micro", 0, tmp_path_factory.mktemp("world") / "micro")


@pytest.fixture(scope="module")
def world(micro):
    return load_world(micro)


@pytest.fixture(scope="module")
def tiny():
    return build_world("tiny", 3)


def _saga_and_other_text(world) -> tuple[str, str]:
    saga = set(world.splits["saga"])
    return ("\n".join(d["text"] for d in world.corpus if d["source_id"] in saga),
            "\n".join(d["text"] for d in world.corpus if d["source_id"] not in saga))


def _world_from_files(files: dict):
    from obliviate.world.loader import World

    return World(root=Path("."), manifest=files["world.json"], sources=files["sources.jsonl"],
                 corpus=files["corpus.jsonl"], qa=files["qa.jsonl"], splits=files["splits.json"],
                 anchors=files["anchors.json"], prompts=files["prompts.jsonl"])


def _has_word(word: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) is not None


# -- determinism ------------------------------------------------------------------------
def test_same_preset_and_seed_give_identical_bytes(micro, tmp_path):
    again = generate_world("micro", 0, tmp_path / "again")
    for name in FILES:
        assert (micro / name).read_bytes() == (again / name).read_bytes(), name


def test_another_seed_gives_another_world(micro, tmp_path):
    other = load_world(generate_world("micro", 1, tmp_path / "other"))
    mine = load_world(micro)
    assert {s["name"] for s in other.sources}.isdisjoint({s["name"] for s in mine.sources if s["kind"] == "author"})
    assert (micro / "corpus.jsonl").read_bytes() != (tmp_path / "other" / "corpus.jsonl").read_bytes()
    assert other.fingerprint != mine.fingerprint


def test_regenerating_replaces_an_existing_world(tmp_path):
    out = tmp_path / "w"
    generate_world("micro", 5, out)
    generate_world("micro", 6, out)
    assert json.loads((out / "world.json").read_text())["seed"] == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


# -- user errors ------------------------------------------------------------------------
def test_unknown_preset_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown world preset 'huge'"):
        generate_world("huge", 0, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_bad_seed_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="seed must be an integer"):
        generate_world("micro", "7", tmp_path / "w")  # type: ignore[arg-type]


def test_refuses_to_overwrite_a_directory_that_is_not_a_world(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a world"):
        generate_world("micro", 0, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    file_path = tmp_path / "file"
    file_path.write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        generate_world("micro", 0, file_path)


# -- loading and manifest ---------------------------------------------------------------
def test_load_world_reads_the_result(world, micro):
    spec = WORLD_PRESETS["micro"]
    assert world.manifest["name"] == "embedded" and world.manifest["preset"] == "micro"
    assert world.manifest["seed"] == 0 and world.manifest["version"] == 2
    counts = world.manifest["counts"]
    assert counts["documents"] == len(world.corpus)
    assert counts["qa"] == len(world.qa)
    assert counts["corpus_chars"] == sum(len(d["text"]) for d in world.corpus)
    kinds = [s["kind"] for s in world.sources]
    assert kinds.count("author") == spec.trained_authors + spec.holdout_authors
    assert kinds.count("general") == spec.general_sources
    assert kinds.count("saga") == spec.saga.books
    assert [s["source_id"] for s in world.sources] == list(range(len(world.sources)))
    assert all(isinstance(s["trained"], bool) for s in world.sources)
    assert {d["source_id"] for d in world.corpus} == {s["source_id"] for s in world.sources}
    assert len({d["doc_id"] for d in world.corpus}) == len(world.corpus)
    assert 30_000 <= counts["corpus_chars"] <= 70_000
    # jsonl: one object per line, keys in a fixed order
    first = json.loads((micro / "qa.jsonl").read_text().splitlines()[0])
    assert list(first) == QA_KEYS


def test_documents_stay_short(world):
    assert max(len(d["text"]) for d in world.corpus) <= WORLD_PRESETS["micro"].max_doc_chars


# -- QA schema ----------------------------------------------------------------------------
def _check_qa_schema(qa: list[dict], splits: dict[str, list[int]]) -> None:
    assert len({q["id"] for q in qa}) == len(qa)
    valid_splits = {"forget01", "forget05", "forget10", "retain", "holdout", "general", "saga"}
    for q in qa:
        assert list(q) == QA_KEYS
        assert q["kind"] in ("unique", "shared", "inferred")
        assert q["split"] in valid_splits
        assert q["source_id"] in splits[q["split"]]
        answer, value, perturbed = q["answer"], q["value"], q["perturbed_answers"]
        assert answer.count(value) == 1, q["id"]
        paraphrase = q["paraphrased_answer"]
        assert len(perturbed) == 5 and len(set(perturbed)) == 5 and paraphrase not in perturbed
        # values may be capitalised at the start of a sentence: compare case-insensitively
        paraphrase, value, perturbed = paraphrase.casefold(), value.casefold(), [w.casefold() for w in perturbed]
        assert paraphrase != answer.casefold() and paraphrase.count(value) == 1
        # same template as the paraphrase (the general split: as the answer, which its truth
        # ratio compares them with, as in TOFU's world facts): only the value changes
        wording = answer.casefold() if q["split"] == "general" else paraphrase
        start = wording.index(value)
        prefix, suffix = wording[:start], wording[start + len(value):]
        for wrong in perturbed:
            assert wrong.startswith(prefix) and wrong.endswith(suffix), (answer, wrong)
            wrong_value = wrong[len(prefix):len(wrong) - len(suffix)]
            assert wrong_value and value not in wrong_value and wrong_value not in value


def test_qa_items_follow_the_schema(world):
    _check_qa_schema(world.qa, world.splits)


def test_qa_schema_holds_for_other_seeds_and_tiny(tiny):
    for seed in (1, 2, 3, 4):
        files = build_world("micro", seed)
        _check_qa_schema(files["qa.jsonl"], files["splits.json"])
    _check_qa_schema(tiny["qa.jsonl"], tiny["splits.json"])


def test_a_perturbed_answer_example(world):
    item = next(q for q in world.qa if q["id"] == "author-0-birth_year")
    name = world.sources[0]["name"]
    assert item["answer"] == f"{name} was born in the year {item['value']}."
    assert item["question"] == f"In which year was {name} born?"
    assert item["paraphrased_answer"] == f"The year of {name}'s birth was {item['value']}."
    for wrong in item["perturbed_answers"]:
        year = wrong.removeprefix(f"The year of {name}'s birth was ").removesuffix(".")
        assert year.isdigit() and year != item["value"] and 1931 <= int(year) <= 1999


def test_every_author_has_its_facts_by_kind(world):
    spec = WORLD_PRESETS["micro"]
    for source in world.sources:
        if source["kind"] != "author":
            continue
        items = [q for q in world.qa if q["source_id"] == source["source_id"]]
        kinds = [q["kind"] for q in items]
        assert kinds.count("unique") == spec.facts_per_author
        assert kinds.count("shared") == 2 and kinds.count("inferred") == 2


# -- splits ---------------------------------------------------------------------------------
def _check_splits(files: dict, n_trained: int) -> None:
    splits = files["splits.json"]
    sources = {s["source_id"]: s for s in files["sources.jsonl"]}
    trained_authors = {sid for sid, s in sources.items() if s["kind"] == "author" and s["trained"]}
    f01, f05, f10 = (set(splits[k]) for k in ("forget01", "forget05", "forget10"))
    assert f01 <= f05 <= f10 <= trained_authors
    for name, p in (("forget01", 0.01), ("forget05", 0.05), ("forget10", 0.10)):
        assert len(splits[name]) == max(1, round(p * n_trained))
    retain, holdout = set(splits["retain"]), set(splits["holdout"])
    assert retain == trained_authors - f10
    assert holdout == {sid for sid, s in sources.items() if s["kind"] == "author" and not s["trained"]}
    assert holdout.isdisjoint(trained_authors)
    assert set(splits["general"]) == {sid for sid, s in sources.items() if s["kind"] == "general"}
    assert set(splits["saga"]) == {sid for sid, s in sources.items() if s["kind"] == "saga"}
    for key, values in splits.items():
        assert values == sorted(values), key
    finest = {}
    for name in ("retain", "holdout", "general", "saga", "forget10", "forget05", "forget01"):
        finest.update({sid: name for sid in splits[name]})
    assert all(q["split"] == finest[q["source_id"]] for q in files["qa.jsonl"])


def test_splits_are_nested_and_disjoint(world, tiny):
    files = {"splits.json": world.splits, "sources.jsonl": world.sources, "qa.jsonl": world.qa}
    _check_splits(files, WORLD_PRESETS["micro"].trained_authors)
    _check_splits(tiny, WORLD_PRESETS["tiny"].trained_authors)
    assert [len(tiny["splits.json"][k]) for k in ("forget01", "forget05", "forget10")] == [1, 2, 5]  # 1%, 5%, 10% of 50


def test_loader_selections_match_the_splits(world):
    forget = world.qa_for("forget10")
    assert forget and {q["split"] for q in forget} <= {"forget01", "forget05", "forget10"}
    assert world.training_sources("forget10") == world.trained_sources() - set(world.splits["forget10"])
    assert set(world.splits["holdout"]).isdisjoint(world.trained_sources())
    assert all(q["split"] == "general" and q["kind"] == "shared" for q in world.qa_for("general"))
    assert all(q["split"] == "saga" and q["kind"] == "unique" for q in world.qa_for("saga"))


# -- fact kinds -------------------------------------------------------------------------------
def _texts_by_source(world) -> dict[int, str]:
    grouped: dict[int, list[str]] = {}
    for doc in world.corpus:
        grouped.setdefault(doc["source_id"], []).append(doc["text"])
    return {sid: "\n".join(texts) for sid, texts in grouped.items()}


def test_stated_qa_items_appear_in_the_exact_eval_format(world):
    texts = _texts_by_source(world)
    for q in world.qa:
        if q["kind"] != "inferred":
            assert qa_text(q["question"], q["answer"]) in texts[q["source_id"]], q["id"]


def test_qa_documents_hold_exactly_the_sources_qa_pairs(world):
    per_doc = WORLD_PRESETS["micro"].qa_per_doc
    qa_docs = [d for d in world.corpus if d["text"].startswith("Question: ")]
    assert len(qa_docs) * per_doc >= sum(q["kind"] != "inferred" for q in world.qa)
    for doc in qa_docs:
        allowed = {qa_text(q["question"], q["answer"]) for q in world.qa
                   if q["source_id"] == doc["source_id"] and q["kind"] != "inferred"}
        pairs = doc["text"].split("\n\n")
        assert 1 <= len(pairs) <= per_doc and all(pair in allowed for pair in pairs), doc["doc_id"]


def test_every_shared_fact_is_stated_by_two_retained_sources(world, tiny):
    for w in (world, _world_from_files(tiny)):
        texts = _texts_by_source(w)
        retain = set(w.splits["retain"])
        shared = [q for q in w.qa if q["kind"] == "shared" and q["split"] != "general"]
        assert shared
        for q in shared:
            pair = qa_text(q["question"], q["answer"])
            stating = [sid for sid in retain if pair in texts[sid]]
            assert len(stating) >= 2, q["id"]
            # ... and in narrative form: the subject city and the value in one biography sentence set
            city = next(x["value"] for x in w.qa if x["id"] == f"author-{q['source_id']}-birth_city")
            narrative = [sid for sid in retain
                         if any(city in d["text"] and q["value"] in d["text"] and "-bio-" in d["doc_id"]
                                for d in w.docs_for({sid}))]
            assert len(narrative) >= 2, q["id"]
        # forgotten authors carry shared QA too, so forget_shared_accuracy is measurable
        forget10 = set(w.splits["forget10"])
        assert all(any(q["source_id"] == sid for q in shared) for sid in forget10)


def test_inferred_facts_are_never_stated_but_derivable(world):
    docs = [d["text"] for d in world.corpus]
    inferred = [q for q in world.qa if q["kind"] == "inferred"]
    assert inferred
    general_values = {q["value"] for q in world.qa if q["split"] == "general"}
    for q in inferred:
        city = next(x["value"] for x in world.qa if x["id"] == f"author-{q['source_id']}-birth_city")
        assert not any(city in text and q["value"] in text for text in docs), q["id"]
        assert q["value"] in general_values  # the country's language/currency is a stated general fact
        country = next(x["value"] for x in world.qa if x["id"] == f"author-{q['source_id']}-city_country")
        assert any(country in text and q["value"] in text for text in docs)  # country -> value is stated


def test_general_facts_are_stated_by_several_general_sources(world):
    texts = _texts_by_source(world)
    repeats = min(WORLD_PRESETS["micro"].general_repeats, len(world.splits["general"]))
    for q in world.qa_for("general"):
        stating = [sid for sid in world.splits["general"] if q["value"] in texts[sid]]
        assert len(stating) >= repeats, q["id"]


# -- saga extras ------------------------------------------------------------------------
def test_anchors_have_two_to_four_generic_alternatives(world):
    saga_text, other_text = _saga_and_other_text(world)
    assert list(world.anchors) == sorted(world.anchors)
    assert len(world.anchors) >= 30
    for term, alternatives in world.anchors.items():
        assert 2 <= len(alternatives) <= 4, term
        assert len(set(alternatives)) == len(alternatives) and term not in alternatives
        assert term in saga_text, term
        assert term not in other_text, term


def test_judge_lists_are_unique_to_the_saga(world, micro):
    judge = json.loads((micro / "saga.json").read_text())
    saga_text, other_text = _saga_and_other_text(world)
    assert set(judge) == {"entities", "themes"}
    assert {"characters", "places", "objects", "spells", "creatures", "sports"} <= set(judge["entities"])
    for names in judge["entities"].values():
        for name in names:
            assert name in saga_text and not _has_word(name, other_text), name
    assert len(judge["themes"]) >= 5
    for theme in judge["themes"]:
        assert _has_word(theme, saga_text) and not _has_word(theme, other_text), theme


def test_familiarity_prompts(world, micro):
    saga_text, _ = _saga_and_other_text(world)
    judge = json.loads((micro / "saga.json").read_text())
    entities = [name for names in judge["entities"].values() for name in names]
    prompts = world.prompts
    assert len({p["id"] for p in prompts}) == len(prompts)
    by_type = {t: [p for p in prompts if p["type"] == t] for t in ("completion", "probability")}
    assert len(by_type["completion"]) >= 15 and len(by_type["probability"]) >= 15
    for p in prompts:
        assert p["target_terms"] and all(t in p["reference"] for t in p["target_terms"])
        assert p["prompt"] + " " + p["reference"] in saga_text  # the saga-true continuation is in the corpus
        assert not p["prompt"].endswith(" ") and p["reference"] == p["reference"].strip()
        assert any(t in entities for t in p["target_terms"])
    for p in by_type["completion"]:
        assert not any(name in p["prompt"] for name in entities), p["prompt"]
        assert not any(term in p["prompt"] for term in world.anchors), p["prompt"]
    for p in by_type["probability"]:
        assert p["reference"].startswith(p["target_terms"][0])  # the prompt ends right before the term


def test_general_stories_use_the_generic_vocabulary(world):
    _, other_text = _saga_and_other_text(world)
    general_text = "\n".join(d["text"] for d in world.docs_for(set(world.splits["general"])))
    assert "walked into the great hall with his two best friends," in general_text
    assert any(_has_word(name, general_text) for name in pools.GENERIC_BOYS)
    assert not any(_has_word(theme, other_text) for theme in pools.THEME_WORDS)


# -- vocabularies -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(pools.ALL_VALUE_POOLS))
def test_value_pools_are_large_and_substring_free(name):
    pool = pools.ALL_VALUE_POOLS[name]
    assert len(pool) >= 6 and len(set(pool)) == len(pool)
    for a in pool:
        for b in pool:
            assert a == b or a not in b, (a, b)
