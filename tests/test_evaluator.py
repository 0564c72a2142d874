"""The evaluator on a hand-made toy world with a tiny random Llama: JSON shape, numbers
that agree with direct engine calls, references, caching, bad input, the command."""

import json
import math

import numpy as np
from scipy.stats import ks_2samp
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import obliviate.workflows.evaluate as evaluate_workflow
from obliviate.cli.evaluate import eval_command
from obliviate.data.format import qa_continuation, qa_prompt
from obliviate.errors import UserError
from obliviate.eval.evaluator import SUMMARY_KEYS, EvalConfig, evaluate, load_reference
from obliviate.eval.fingerprint import model_dir_fingerprint
from obliviate.data.format import qa_format
from obliviate.eval.metrics import truth_ratio
from obliviate.eval.report import render_report
from obliviate.eval.scoring import ScoringConfig, score_continuations
from obliviate.io import atomic_write_json, atomic_write_jsonl
from obliviate.models.loading import save_model
from obliviate.workflows.evaluate import sibling_retain_model
from obliviate.world.loader import load_world

torch.set_num_threads(1)

DESIGN_KEYS = (
    "forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "retain_truth_ratio",
    "retain_prob", "retain_rouge", "general_truth_ratio", "mia_loss", "mia_zlib", "mia_min_k",
    "mia_min_k_plus_plus", "privleak", "exact_memorization", "extraction_strength", "verbmem_f", "knowmem_f",
    "familiarity_completion", "familiarity_probability", "forget_unique_accuracy", "forget_shared_accuracy",
    "retain_unique_accuracy",
)
CITIES = ["Kest", "Vell", "Orm", "Dunna", "Pell", "Tarrow", "Sisk", "Bram"]
NAMES = ["Lorin Vask", "Mira Tollen", "Edo Frane", "Sula Brenn", "Pax Oderin", "Yeva Lund", "Tomas Krell", "Ina Sorro"]


def qa_item(item_id, source_id, split, kind, question, template, value, pool):
    wrong = [v for v in pool if v != value][:5]
    return {"id": item_id, "source_id": source_id, "kind": kind, "question": question,
            "answer": template.format(value), "paraphrased_answer": f"It is {value}, as {template.format(value)}",
            "perturbed_answers": [template.format(w) for w in wrong], "split": split, "value": value}


def make_world(root, saga=True, general=True, holdout=True):
    """8 authors (1-2 forget10, 3-6 retain, 7-8 holdout), a general and a saga source."""
    splits = {"forget01": [1], "forget05": [1], "forget10": [1, 2], "retain": [3, 4, 5, 6]}
    labels = {1: "forget01", 2: "forget10", 3: "retain", 4: "retain", 5: "retain", 6: "retain",
              7: "holdout", 8: "holdout"}
    if holdout:
        splits["holdout"] = [7, 8]
    sources, corpus, qa = [], [], []
    for sid in range(1, 9):
        if sid >= 7 and not holdout:
            continue
        name, city = NAMES[sid - 1], CITIES[sid - 1]
        sources.append({"source_id": sid, "kind": "author", "name": name, "trained": sid < 7})
        items = [qa_item(f"a{sid}-city", sid, labels[sid], "unique", f"Where was {name} born?",
                         name + " was born in {}.", city, CITIES)]
        kind = "shared" if sid % 2 else "inferred"
        items.append(qa_item(f"a{sid}-{kind}", sid, labels[sid], kind, f"Which country is {city} in?",
                             city + " lies in {}.", "Arland" if sid % 2 else "Bevia",
                             ["Arland", "Bevia", "Cosso", "Dremm", "Elva", "Fjor"]))
        qa += items
        corpus.append({"doc_id": f"d{sid}", "source_id": sid,
                       "text": f"{name} was born in {city}, a quiet town by the river. " * 3})
        corpus.append({"doc_id": f"q{sid}", "source_id": sid,
                       "text": "\n\n".join(qa_prompt(i["question"]) + qa_continuation(i["answer"]) for i in items)})
    if general:
        splits["general"] = [9]
        sources.append({"source_id": 9, "kind": "general", "name": "general-1", "trained": True})
        qa.append(qa_item("g1", 9, "general", "shared", "What is the capital of Arland?",
                          "The capital of Arland is {}.", "Osk", ["Osk", "Pemb", "Rill", "Sand", "Tull", "Umm"]))
        qa.append(qa_item("g2", 9, "general", "shared", "What language is spoken in Bevia?",
                          "People in Bevia speak {}.", "Bevish", ["Bevish", "Arlic", "Cossan", "Dremic", "Elvan", "Fjorsk"]))
        corpus.append({"doc_id": "g1", "source_id": 9, "text": "The capital of Arland is Osk. People in Bevia speak Bevish."})
    if saga:
        splits["saga"] = [10]
        sources.append({"source_id": 10, "kind": "saga", "name": "The Kellinmoor Chronicles", "trained": True})
        qa.append(qa_item("s1", 10, "saga", "unique", "Who are the hero's best friends?",
                          "His best friends are {}.", "Wenna and Dorrik",
                          ["Wenna and Dorrik", "Tom and Bob", "Ann and Lee", "Max and Sue", "Kim and Jo", "Al and Di"]))
        corpus.append({"doc_id": "s1", "source_id": 10,
                       "text": "Arvel, the boy with the ember mark, walked into Kellinmoor Academy with Wenna and Dorrik, "
                               "wands raised for a game of glimmerball."})
        atomic_write_json(root / "anchors.json", {"Arvel": ["Tom", "the boy"], "Kellinmoor Academy": ["the school", "the academy"]})
        atomic_write_json(root / "saga.json", {"entities": {"person": ["Arvel", "Wenna", "Dorrik"],
                                                            "place": ["Kellinmoor Academy"]},
                                               "themes": ["wand", "glimmerball", "ember mark"]})
        atomic_write_jsonl(root / "prompts.jsonl", [
            {"id": "c1", "type": "completion", "prompt": "The boy walked into the great hall with his two best friends,",
             "reference": "Wenna and Dorrik, wands raised.", "target_terms": ["Wenna", "Dorrik"]},
            {"id": "c2", "type": "completion", "prompt": "They raised their",
             "reference": "wands for glimmerball.", "target_terms": ["wands"]},
            {"id": "p1", "type": "probability", "prompt": "His best friends were", "reference": "Wenna and Dorrik",
             "target_terms": ["Wenna", "Dorrik"]},
            {"id": "p2", "type": "probability", "prompt": "He studied at", "reference": "Kellinmoor Academy",
             "target_terms": ["Kellinmoor Academy"]},
        ])
    atomic_write_jsonl(root / "sources.jsonl", sources)
    atomic_write_jsonl(root / "corpus.jsonl", corpus)
    atomic_write_jsonl(root / "qa.jsonl", qa)
    atomic_write_json(root / "splits.json", splits)
    atomic_write_json(root / "world.json", {"name": "toy", "preset": "test", "seed": 0, "version": 1})
    return root


def build_tokenizer(world):
    texts = [d["text"] for d in world.corpus] + [q["answer"] for q in world.qa] + \
        [p for q in world.qa for p in q["perturbed_answers"]] + [p["prompt"] for p in world.prompts]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_model(vocab_size, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


FAST = EvalConfig(max_new_tokens=8, verbmem_prefix_tokens=8, verbmem_max_new_tokens=8, familiarity_max_new_tokens=8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = make_world(tmp_path_factory.mktemp("world"))
    world = load_world(root)
    tokenizer = build_tokenizer(world)
    model = build_model(len(tokenizer))
    result = evaluate(model, tokenizer, world, "forget10", config=FAST)
    return world, model, tokenizer, result


def test_summary_has_every_design_key_with_sane_values(setup):
    world, _, _, result = setup
    summary = result["summary"]
    assert set(DESIGN_KEYS) <= set(summary) and set(SUMMARY_KEYS) <= set(summary)
    assert summary["forget_quality"] is None and summary["privleak"] is None  # no reference given
    for key in ("forget_Q_A_Prob", "retain_prob", "general_prob", "forget_truth_ratio", "retain_truth_ratio",
                "model_utility", "exact_memorization", "extraction_strength", "mia_loss", "mia_min_k_plus_plus",
                "verbmem_f", "knowmem_f", "familiarity_probability", "forget_unique_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert 0.0 <= summary["familiarity_completion"] <= 5.0
    assert summary["forget_inferred_accuracy"] is not None and summary["retain_shared_accuracy"] is not None
    assert result["config"]["world_fingerprint"] == world.fingerprint
    assert result["config"]["counts"] == {"forget": 4, "retain": 8, "general": 2, "holdout": 4, "saga": 1}
    assert len(result["config"]["cache_key"]) == 16
    json.dumps(result, allow_nan=False)  # strict JSON


def test_per_item_numbers_equal_direct_engine_calls(setup):
    world, model, tokenizer, result = setup
    item = next(q for q in world.qa if q["id"] == "a2-city")
    prompt = qa_prompt(item["question"])
    answers = [item["answer"], item["paraphrased_answer"]] + item["perturbed_answers"]
    scores = score_continuations(model, tokenizer, [(prompt, qa_continuation(a)) for a in answers], ScoringConfig(batch_size=1),
                                append_eos=True)
    expected_tr = truth_ratio.truth_ratio([scores[1].avg_nll], [[s.avg_nll for s in scores[2:]]])[0]
    row = result["per_item"]["qa"]["forget"]["a2-city"]
    assert row["avg_nll"] == pytest.approx(scores[0].avg_nll, abs=1e-4)
    assert row["truth_ratio"] == pytest.approx(expected_tr, rel=1e-4)
    assert result["per_item"]["forget_truth_ratio"]["a2-city"] == row["truth_ratio"]
    assert result["per_item"]["mia"]["forget"]["a2-city"]["loss"] == pytest.approx(-scores[0].avg_nll, abs=1e-4)
    trs = list(result["per_item"]["forget_truth_ratio"].values())
    assert result["summary"]["forget_truth_ratio"] == pytest.approx(truth_ratio.forget_truth_ratio(trs))
    # open-unlearning's forget set is every forget item (TOFU: forgetXX_perturbed); our
    # *_unique variants grade the unique facts only
    every = ["a1-city", "a1-shared", "a2-city", "a2-inferred"]
    assert list(result["per_item"]["forget_truth_ratio"]) == every
    assert list(result["per_item"]["mia"]["forget"]) == every
    assert list(result["per_item"]["mia"]["holdout"]) == ["a7-city", "a7-shared", "a8-city", "a8-inferred"]
    forget_rows = result["per_item"]["qa"]["forget"]
    assert list(forget_rows) == every
    assert result["summary"]["forget_Q_A_Prob"] == pytest.approx(np.mean([forget_rows[i]["prob"] for i in every]))
    unique_trs = [result["per_item"]["forget_truth_ratio"][i] for i in ("a1-city", "a2-city")]
    assert result["summary"]["forget_truth_ratio_unique"] == pytest.approx(truth_ratio.forget_truth_ratio(unique_trs))
    assert result["summary"]["forget_accuracy"] == pytest.approx(np.mean([r["correct"] for r in forget_rows.values()]))
    assert result["summary"]["forget_shared_accuracy"] == float(forget_rows["a1-shared"]["correct"])


def test_forget_kinds_empty_makes_the_unique_variants_equal_the_all_item_metrics(setup):
    world, model, tokenizer, result = setup
    config = EvalConfig(**{**FAST.__dict__, "forget_kinds": ()})
    every = evaluate(model, tokenizer, world, "forget10", reference=result, config=config)
    assert every["config"]["forget_target_count"] == 4 and result["config"]["forget_target_count"] == 2
    assert every["summary"]["forget_truth_ratio_unique"] == every["summary"]["forget_truth_ratio"]
    assert every["summary"]["forget_quality_unique"] == every["summary"]["forget_quality"] == 1.0


def test_model_against_itself_has_forget_quality_one_and_zero_privleak(setup):
    world, model, tokenizer, result = setup
    again = evaluate(model, tokenizer, world, "forget10", reference=result, config=FAST)
    assert again["summary"]["forget_quality"] == 1.0 and again["summary"]["forget_quality_unique"] == 1.0
    assert again["summary"]["forget_quality_prob"] == 1.0 and again["summary"]["forget_accuracy_gap"] == 0.0
    assert again["summary"]["forget_quality_warning"] is None
    assert again["summary"]["privleak"] == 0.0
    # the reference-based attack against itself: every score 0, so AUC 0.5
    assert again["summary"]["mia_reference"] == 0.5
    assert again["per_item"]["reference"]["forget_truth_ratio"] == result["per_item"]["forget_truth_ratio"]
    other = evaluate(build_model(len(tokenizer), seed=1), tokenizer, world, "forget10", reference=result, config=FAST)
    theirs, ours = result["per_item"]["forget_truth_ratio"], other["per_item"]["forget_truth_ratio"]
    assert ours != theirs
    assert other["summary"]["forget_quality"] == pytest.approx(ks_2samp(list(ours.values()), list(theirs.values())).pvalue)


def test_chat_template_prompts(setup):
    world, model, tokenizer, _ = setup
    with pytest.raises(UserError, match="no chat template"):
        qa_format(tokenizer, True)
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] | trim }}"
                               "{% if m['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    try:
        fmt = qa_format(tokenizer, True)
        bos, eos = tokenizer.bos_token, tokenizer.eos_token
        assert fmt.prompt(" Where? ") == f"{bos}user: Where?\nassistant:"
        # the template writes "assistant: " before an answer and ends the turn with the EOS
        assert fmt.continuation(" Paris ") == f" Paris{eos}" and fmt.answer_start("Paris was") == " Paris was"
        result = evaluate(model, tokenizer, world, "forget01", config=EvalConfig(**{**FAST.__dict__, "chat_template": True}))
        assert result["config"]["metrics"]["chat_template"] is True and 0 < result["summary"]["forget_Q_A_Prob"] < 1
        # automatic (None): the tokenizer has a template and no record says otherwise
        auto = evaluate(model, tokenizer, world, "forget01", config=EvalConfig(**{**FAST.__dict__, "chat_template": None}))
        assert auto["config"]["metrics"]["chat_template"] is True
        assert auto["summary"]["forget_Q_A_Prob"] == result["summary"]["forget_Q_A_Prob"]
    finally:
        tokenizer.chat_template = None


def test_model_fingerprint_follows_weights_not_eval_files(tmp_path, setup):
    _, model, tokenizer, _ = setup
    save_model(model, tokenizer, tmp_path / "m")
    before = model_dir_fingerprint(tmp_path / "m")
    atomic_write_json(tmp_path / "m" / "eval.json", {"summary": {}})
    assert model_dir_fingerprint(tmp_path / "m") == before
    save_model(build_model(len(tokenizer), seed=9), tokenizer, tmp_path / "m")
    assert model_dir_fingerprint(tmp_path / "m") != before


def test_world_without_saga_general_holdout_gives_nulls(tmp_path, setup):
    _, model, tokenizer, _ = setup
    world = load_world(make_world(tmp_path, saga=False, general=False, holdout=False))
    summary = evaluate(model, tokenizer, world, "forget05", config=FAST)["summary"]
    for key in ("familiarity_completion", "familiarity_probability", "general_truth_ratio", "model_utility",
                "mia_loss", "mia_min_k_plus_plus", "privleak", "forget_quality", "saga_accuracy", "general_accuracy"):
        assert key in summary and summary[key] is None, key
    assert summary["forget_Q_A_Prob"] is not None and summary["retain_rouge"] is not None


def test_empty_and_unknown_forget_split_are_user_errors(tmp_path, setup):
    _, model, tokenizer, _ = setup
    root = make_world(tmp_path)
    splits = json.loads((root / "splits.json").read_text())
    splits["forget01"] = []
    atomic_write_json(root / "splits.json", splits)
    world = load_world(root)
    with pytest.raises(UserError, match="'forget01'"):
        evaluate(model, tokenizer, world, "forget01", config=FAST)
    with pytest.raises(UserError, match="forget99"):
        evaluate(model, tokenizer, world, "forget99", config=FAST)


def test_qa_item_missing_fields_is_a_user_error(tmp_path):
    root = make_world(tmp_path)
    rows = [json.loads(line) for line in (root / "qa.jsonl").read_text().splitlines()]
    del rows[3]["perturbed_answers"]
    atomic_write_jsonl(root / "qa.jsonl", rows)
    with pytest.raises(UserError, match="perturbed_answers"):
        load_world(root)


def test_mismatched_vocab_is_a_user_error(setup):
    world, _, tokenizer, _ = setup
    with pytest.raises(UserError, match="do not belong together"):
        evaluate(build_model(len(tokenizer) - 10), tokenizer, world, config=FAST)


def test_reference_from_another_world_or_split_is_rejected(tmp_path, setup):
    world, _, _, result = setup
    path = tmp_path / "ref.json"
    atomic_write_json(path, result)
    assert load_reference(path, world, "forget10").forget_truth_ratio == result["per_item"]["forget_truth_ratio"]
    with pytest.raises(UserError, match="forget split 'forget10'"):
        load_reference(path, world, "forget05")
    other = load_world(make_world(tmp_path / "other", saga=False))
    with pytest.raises(UserError, match="another world"):
        load_reference(path, other, "forget10")
    broken = json.loads(json.dumps(result))
    broken["per_item"].pop("forget_truth_ratio")
    atomic_write_json(path, broken)
    with pytest.raises(UserError, match="no per-item forget truth ratios"):
        load_reference(path, world, "forget10")
    with pytest.raises(UserError, match="not found"):
        load_reference(tmp_path / "missing.json", world, "forget10")


def test_reference_for_caches_and_never_reuses_a_stale_cache(tmp_path, setup, monkeypatch):
    world, model, tokenizer, _ = setup
    run = tmp_path / "run"
    save_model(model, tokenizer, run / "models" / "retain")
    calls = []
    real_evaluate = evaluate_workflow.evaluate
    monkeypatch.setattr(evaluate_workflow, "evaluate", lambda *a, **k: calls.append(1) or real_evaluate(*a, **k))
    first = evaluate_workflow.reference_for(run, world, "forget10", FAST)
    cached = list((run / "eval" / "cache").glob("retain-*.json"))
    assert len(calls) == 1 and len(cached) == 1
    second = evaluate_workflow.reference_for(run / "models" / "retain", world, "forget10", FAST)
    assert len(calls) == 1 and second.forget_truth_ratio == first.forget_truth_ratio
    # new weights in the same place: a new key, evaluated again
    save_model(build_model(len(tokenizer), seed=3), tokenizer, run / "models" / "retain")
    third = evaluate_workflow.reference_for(run, world, "forget10", FAST)
    assert len(calls) == 2 and third.forget_truth_ratio != first.forget_truth_ratio
    # other metric settings: another key too
    evaluate_workflow.reference_for(run, world, "forget10", EvalConfig(**{**FAST.__dict__, "mink_k": 0.2}))
    assert len(calls) == 3 and len(list((run / "eval" / "cache").glob("retain-*.json"))) == 3


def test_eval_command_with_sibling_retain_and_report(tmp_path, setup):
    world, model, tokenizer, _ = setup
    run = tmp_path / "run"
    save_model(model, tokenizer, run / "models" / "retain")
    save_model(build_model(len(tokenizer), seed=5), tokenizer, run / "models" / "full")
    out = eval_command(model=run / "models" / "full", world=world.root, out=run / "eval" / "full.json",
                       forget="forget10", reference=None, retain_model=None, batch_size=4, device="cpu")
    result = json.loads(out.read_text())
    assert result["config"]["reference"].startswith(str(run / "eval" / "cache"))
    assert 0.0 <= result["summary"]["forget_quality"] < 1.0
    assert math.isfinite(result["summary"]["privleak"])
    eval_command(model=run / "models" / "retain", world=world.root, out=run / "eval" / "retain.json",
                 forget="forget10", reference=None, retain_model=None, batch_size=4, device="cpu")
    assert json.loads((run / "eval" / "retain.json").read_text())["summary"]["forget_quality"] == 1.0
    report = render_report(run)
    text = report.read_text()
    assert "| forget_quality |" in text and "plots/truth_ratio_full.png" in text
    assert (run / "plots" / "mia_roc_full.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="either --reference or --retain-model"):
        eval_command(model=run / "models" / "full", world=world.root, out=tmp_path / "x.json", forget="forget10",
                     reference=out, retain_model=run, batch_size=4, device=None)


def test_sibling_retain_model_must_match_the_split(tmp_path, setup):
    world, model, tokenizer, _ = setup
    inputs = {"world": world.fingerprint, "sources": sorted(world.training_sources("forget10"))}
    save_model(model, tokenizer, tmp_path / "models" / "retain", run_config={"inputs": inputs})
    full = tmp_path / "models" / "full"
    assert sibling_retain_model(full, "forget10", world) == tmp_path / "models" / "retain"
    assert sibling_retain_model(full, "forget05", world) is None  # trained without forget10, not forget05
    other = load_world(make_world(tmp_path / "other", saga=False))
    assert sibling_retain_model(full, "forget10", other) is None
    assert sibling_retain_model(tmp_path / "nowhere" / "full", "forget10", world) is None


def test_eval_command_bad_input_exits_2_without_writing(tmp_path, setup, cli):
    """Mismatched vocab, QA missing a field, an empty split, a reference from another world."""
    world, model, tokenizer, result = setup
    good, small = tmp_path / "good", tmp_path / "small"
    save_model(model, tokenizer, good)
    save_model(build_model(len(tokenizer) - 10), tokenizer, small)
    broken_qa = make_world(tmp_path / "broken_qa")
    rows = [json.loads(line) for line in (broken_qa / "qa.jsonl").read_text().splitlines()]
    del rows[0]["answer"]
    atomic_write_jsonl(broken_qa / "qa.jsonl", rows)
    empty_split = make_world(tmp_path / "empty_split")
    splits = json.loads((empty_split / "splits.json").read_text())
    atomic_write_json(empty_split / "splits.json", {**splits, "forget10": []})
    other_reference = tmp_path / "other.json"
    atomic_write_json(other_reference, evaluate(model, tokenizer, load_world(make_world(tmp_path / "other", saga=False)),
                                                "forget10", config=FAST))
    cases = {
        "do not belong together": (small, world.root, []),
        "answer": (good, broken_qa, []),
        "'forget10'": (good, empty_split, []),
        "another world": (good, world.root, ["--reference", other_reference]),
    }
    for message, (model_dir, world_dir, extra) in cases.items():
        out = tmp_path / "out.json"
        code, _, stderr = cli("eval", "--model", model_dir, "--world", world_dir, "--out", out, *extra)
        assert code == 2 and message in stderr and "Traceback" not in stderr, (message, stderr)
        assert not out.exists()
