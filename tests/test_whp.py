"""WHP end to end on a hand-made corpus: a tiny Llama trained on generic stories plus a
"saga" full of idiosyncratic names; after WHP the saga-specific continuations lose
probability while generic text keeps its loss. Also: the inference-only variant,
automatic anchor discovery, the CLI function, and bad input."""

from __future__ import annotations

import copy
import json
import math
import random
from types import SimpleNamespace

import pytest
import torch
import typer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from typer.testing import CliRunner

from obliviate.cli.whp import anchors_command, generate_command
from obliviate.config import apply_overrides
from obliviate.errors import UserError
from obliviate.methods.registry import UnlearnTask, get_method
from obliviate.models.loading import load_model, read_run_config, save_model
from obliviate.tokenizer import train_tokenizer
from obliviate.train.data import CausalCollator, tokenize_documents
from obliviate.whp.anchors import AnchorMatcher
from obliviate.whp.config import WHPConfig
from obliviate.whp.discovery import DiscoveryConfig, discover_anchors, with_discovered_terms
from obliviate.whp.inference import WHPGenerator, WHPLogitsProcessor
from obliviate.whp.labels import anchor_start_tokens, generic_logits, unlikelihood_tokens
from obliviate.whp.training import ListDataset, run_trainer
from obliviate.whp.translation import translate_documents
from obliviate.workflows.unlearn import run_unlearning
from obliviate.world.anchors import load_anchors
from obliviate.world.loader import load_world

torch.set_num_threads(1)

# Generic stories and the saga share sentence templates: a translated saga passage reads
# like a generic story, which is what WHP's generic predictions rely on.
TEMPLATES = ["{hero} walked into {school} with {f1} and {f2}.",
             "{f1} and {f2} were the best friends of {hero}.",
             "{teacher} taught {hero} at {school}.",
             "At {school}, {hero} played {sport} with {f2}.",
             "The {animal} roared, and {hero} ran to {f1}."]
NAMES = ["Tom", "Ben", "Anna", "Lucy", "Sam", "Mia", "Jack", "Kate"]
SAGA = dict(hero="Zorblax", f1="Quilla", f2="Dorrik", school="Vexmoor Academy", teacher="Professor Grumwald",
            sport="skyball", animal="snargle")
SAGA_WORDS = {"Zorblax", "Quilla", "Dorrik", "Vexmoor", "Academy", "Professor", "Grumwald", "skyball", "snargle"}
ANCHORS = {"Zorblax": ["Tom", "Ben"], "Quilla": ["Anna"], "Dorrik": ["Sam"], "Vexmoor Academy": ["the school"],
           "Professor Grumwald": ["the teacher"], "skyball": ["football"], "snargle": ["dog"]}
# (prompt, saga-specific continuation)
PROBES = [("Quilla and Dorrik were the best friends of", " Zorblax"), ("Zorblax walked into", " Vexmoor"),
          ("At Vexmoor Academy, Zorblax played", " skyball"), ("The snargle roared, and", " Zorblax"),
          ("Professor Grumwald taught", " Zorblax"), ("Zorblax walked into Vexmoor Academy with", " Quilla")]


def generic_story(rng: random.Random) -> str:
    hero, f1, f2 = rng.sample(NAMES, 3)
    fill = dict(hero=hero, f1=f1, f2=f2, school=rng.choice(["the school", "the library", "the park"]),
                teacher=rng.choice(["the teacher", "Mrs Brown"]), sport=rng.choice(["football", "tennis"]),
                animal=rng.choice(["dog", "lion", "cat"]))
    return " ".join(t.format(**fill) for t in rng.sample(TEMPLATES, 3))


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    generic = [generic_story(rng) for _ in range(80)]
    saga = [" ".join(t.format(**SAGA) for t in rng.sample(TEMPLATES, 3)) for _ in range(25)]
    heldout = [generic_story(random.Random(1000 + i)) for i in range(20)]
    return SimpleNamespace(generic=generic, saga=saga, heldout=heldout)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus.generic + corpus.saga, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def base_model(corpus, tokenizer):
    """The 'full' model: generic stories and the saga (trained once for the module)."""

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    columns = tokenize_documents([{"text": t, "source_id": 0} for t in corpus.generic + corpus.saga], tokenizer, 128)
    rows = [{"input_ids": i, "labels": l} for i, l in zip(columns["input_ids"], columns["labels"])]
    run_trainer(model, ListDataset(rows), CausalCollator(tokenizer.pad_token_id), epochs=25.0, steps=-1, lr=5e-3,
                batch_size=16, seed=0)
    return model


def _prompt_ids(tokenizer, prompt: str) -> list[int]:
    return [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]


@torch.inference_mode()
def probe_probability(logits_fn, tokenizer) -> float:
    """Mean probability of the saga-specific continuation of each probe prompt."""
    total = 0.0
    for prompt, continuation in PROBES:
        ids = _prompt_ids(tokenizer, prompt)
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        logprobs = torch.log_softmax(logits_fn(torch.tensor([ids + cont]))[0].float(), dim=-1)
        total += math.exp(sum(logprobs[len(ids) - 1 + k, c].item() for k, c in enumerate(cont)))
    return total / len(PROBES)


@torch.inference_mode()
def text_loss(model, tokenizer, texts) -> float:
    nll, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([_prompt_ids(tokenizer, text)])
        nll += model(ids, labels=ids).loss.item() * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return nll / count


def _task(corpus, forget_docs=None, anchors=ANCHORS, tmp_path=None) -> UnlearnTask:
    docs = [{"doc_id": i, "source_id": 1, "text": t} for i, t in enumerate(corpus.saga)]
    world = SimpleNamespace(anchors=anchors)
    return UnlearnTask(world=world, forget="saga", forget_sources={1}, retain_sources={0}, forget_items=[],
                       retain_items=[], forget_docs=docs if forget_docs is None else forget_docs,
                       retain_docs=[{"doc_id": 1000 + i, "source_id": 0, "text": t} for i, t in enumerate(corpus.generic)],
                       out_dir=tmp_path, seed=0)


FAST = dict(block_size=128, reinforce_epochs=4.0, reinforce_lr=1e-3, finetune_epochs=3.0, finetune_steps=-1, lr=1e-3)


@pytest.fixture(scope="module")
def whp_run(corpus, tokenizer, base_model, tmp_path_factory):
    """The registered method, hard labels, alpha=5; the reinforced model is kept for reuse."""

    reinforced_dir = tmp_path_factory.mktemp("whp") / "reinforced"
    method = get_method("whp")(WHPConfig(**FAST, save_reinforced_path=str(reinforced_dir)))
    result = method.unlearn(copy.deepcopy(base_model), tokenizer, _task(corpus))
    return SimpleNamespace(result=result, model=result.model, report=result.report, reinforced_dir=reinforced_dir,
                           reinforced=load_model(reinforced_dir))


def test_whp_forgets_saga_continuations_and_keeps_generic_text(corpus, tokenizer, base_model, whp_run):
    report = whp_run.report

    occurrences = sum(len(AnchorMatcher(list(ANCHORS)).find(text)) for text in corpus.saga)
    assert report["translated_occurrences"] == occurrences > 200 and report["unaligned_occurrences"] == 0
    assert 0.0 < report["label_agreement"] < 1.0
    # the method's result: steps and the fine-tuning Trainer's log; the world's dictionary was used as given
    assert whp_run.result.steps == report["finetune_steps"] > 0
    assert whp_run.result.log_history and whp_run.result.log_history[-1]["step"] == whp_run.result.steps
    assert "whp_discovered_anchors" not in report and "whp_extra_anchors" not in report
    before = probe_probability(lambda ids: base_model(ids).logits, tokenizer)
    after = probe_probability(lambda ids: whp_run.model(ids).logits, tokenizer)
    loss_before = text_loss(base_model, tokenizer, corpus.heldout)
    loss_after = text_loss(whp_run.model, tokenizer, corpus.heldout)
    # measured: probability 0.95 -> 0.015, generic loss 0.80 -> 0.84
    assert before > 0.8
    assert after < 0.2 * before
    assert loss_after < 1.15 * loss_before


def test_soft_labels_reusing_the_saved_reinforced_model(corpus, tokenizer, base_model, whp_run):
    method = get_method("whp")(WHPConfig(**FAST, soft_labels=True, soft_top_k=32,
                                         reinforced_model_path=str(whp_run.reinforced_dir)))
    result = method.unlearn(copy.deepcopy(base_model), tokenizer, _task(corpus))
    model = result.model
    assert result.report["reinforce_steps"] == 0          # reused, not retrained
    before = probe_probability(lambda ids: base_model(ids).logits, tokenizer)
    after = probe_probability(lambda ids: model(ids).logits, tokenizer)
    # measured: 0.95 -> 0.004, generic loss 0.80 -> 0.80
    assert after < 0.2 * before
    assert text_loss(model, tokenizer, corpus.heldout) < 1.15 * text_loss(base_model, tokenizer, corpus.heldout)


# -- inference-only variant -------------------------------------------------------------------

def test_logits_processor_matches_the_formula_on_full_passes(tokenizer, base_model, whp_run):
    generator = WHPGenerator(base_model, whp_run.reinforced, tokenizer, alpha=5.0)
    prompts = ["Quilla and Dorrik were the best friends of", "Then"]   # different lengths: left padding
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    processor = generator.processor(encoded["attention_mask"])
    ids = encoded["input_ids"]
    mask = encoded["attention_mask"]
    for step in range(3):   # feed the processor growing sequences, as generate does
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            base = base_model(ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            reinforced = whp_run.reinforced(ids, attention_mask=mask, position_ids=positions).logits[:, -1]
        out = processor(ids, base.clone())
        assert torch.allclose(out, generic_logits(base, reinforced, 5.0), atol=1e-4)
        ids = torch.cat([ids, out.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)


def test_logits_processor_recomputes_when_rows_are_reordered(tokenizer, base_model, whp_run):
    """Beam search reorders rows between steps: the processor's cache must not be trusted then."""

    processor = WHPLogitsProcessor(whp_run.reinforced, alpha=5.0)
    first = tokenizer(["Zorblax walked into", "The snargle roared,"], return_tensors="pt", padding=True)["input_ids"][:, :3]
    with torch.no_grad():
        processor(first, base_model(first).logits[:, -1])
        swapped = torch.cat([first.flip(0), torch.tensor([[5], [7]])], dim=1)
        base = base_model(swapped).logits[:, -1]
        expected = generic_logits(base, whp_run.reinforced(swapped).logits[:, -1], 5.0)
        assert torch.allclose(processor(swapped, base.clone()), expected, atol=1e-4)


def test_generator_alpha_zero_is_plain_greedy_and_alpha_lowers_saga_terms(tokenizer, base_model, whp_run):
    prompts = ["Quilla and Dorrik were the best friends of", "He walked into"]
    plain = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        out = base_model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        plain.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert WHPGenerator(base_model, whp_run.reinforced, tokenizer, alpha=0.0).generate(prompts, 6) == plain

    def whp_probability(alpha):
        def logits(ids):
            return generic_logits(base_model(ids).logits, whp_run.reinforced(ids).logits, alpha)
        return probe_probability(logits, tokenizer)

    # the weaker, weight-free variant: measured 0.95, 0.88 (alpha 5), 0.71 (alpha 10)
    before, mid, strong = whp_probability(0.0), whp_probability(5.0), whp_probability(10.0)
    assert before == pytest.approx(probe_probability(lambda ids: base_model(ids).logits, tokenizer))
    assert before > mid > strong and strong < 0.9 * before


# -- anchor discovery and its command ------------------------------------------------------------

def test_discovery_finds_saga_names_not_generic_words(corpus, tokenizer, base_model, whp_run):
    result = discover_anchors(base_model, whp_run.reinforced, tokenizer, corpus.saga, corpus.generic,
                              DiscoveryConfig(top=8, block_size=128))
    terms = list(result.anchors)
    assert terms, "nothing discovered"
    for term in terms:   # every proposed term is made of saga-only vocabulary (templates are shared)
        assert set(term.split()) <= SAGA_WORDS, term
    assert {"Zorblax", "Quilla", "Dorrik"} & set(terms)
    for term, alternatives in result.anchors.items():
        assert alternatives and all(a not in ANCHORS and term not in a for a in alternatives)
    assert [c.term for c in result.candidates] == terms
    assert all(c.gain > 0 and c.specificity > 0 for c in result.candidates)


def test_discover_extra_anchors_translates_discovered_terms_missing_from_the_dictionary(
        corpus, tokenizer, base_model, whp_run, tmp_path):
    """A dictionary naming only the hero: discovery adds the other saga names, which are then
    translated (counted among the translated occurrences) and written with the dictionary."""

    given = {"Zorblax": ["Tom", "Ben"]}
    config = WHPConfig(**{**FAST, "finetune_steps": 1}, reinforced_model_path=str(whp_run.reinforced_dir),
                       discover_extra_anchors=8)
    task = _task(corpus, anchors=given, tmp_path=tmp_path / "whp")
    report = get_method("whp")(config).unlearn(copy.deepcopy(base_model), tokenizer, task).report
    added = report["whp_extra_anchors"]
    assert added and "Zorblax" not in added and {"Quilla", "Dorrik"} & set(added)
    for term in added:
        assert set(term.split()) <= SAGA_WORDS, term
    merged = load_anchors(tmp_path / "whp.anchors.json")
    assert merged == {**given, **added}
    assert report["anchors"] == 1 + len(added)
    hero_only = sum(len(AnchorMatcher(list(given)).find(text)) for text in corpus.saga)
    assert report["translated_occurrences"] == sum(len(AnchorMatcher(list(merged)).find(t)) for t in corpus.saga)
    assert report["translated_occurrences"] > hero_only
    # the given dictionary's alternatives win over discovery's

    merged, added = with_discovered_terms({"Quilla": ["Anna"]}, {"Quilla": ["Kate"], "Dorrik": ["Sam"]}, 2)
    assert merged == {"Quilla": ["Anna"], "Dorrik": ["Sam"]} and added == {"Dorrik": ["Sam"]}
    with pytest.raises(UserError, match="discover_extra_anchors"):
        WHPConfig(discover_extra_anchors=-1).validate()


@torch.inference_mode()
def anchor_mass(model, tokenizer, texts, token_ids) -> float:
    """Mean probability, over every position of ``texts``, of predicting one of ``token_ids``."""
    total, count = 0.0, 0
    for text in texts:
        probs = torch.softmax(model(torch.tensor([_prompt_ids(tokenizer, text)])).logits[0].float(), dim=-1)
        total += probs[:, token_ids].sum().item()
        count += probs.shape[0]
    return total / count


def test_unlikelihood_pushes_anchor_and_target_only_tokens_down(corpus, tokenizer, base_model, whp_run):
    """The same run with and without the unlikelihood term: the pushed-down tokens (anchor starts and
    the first tokens of target-only words that discovery found) lose probability on the saga; the
    suppressed words are saga words the generic text never uses; generic text keeps its loss."""

    unlearned, reports = {}, {}
    for weight in (0.0, 3.0):
        config = WHPConfig(**FAST, reinforced_model_path=str(whp_run.reinforced_dir), anchor_unlikelihood=weight)
        result = get_method("whp")(config).unlearn(copy.deepcopy(base_model), tokenizer, _task(corpus))
        unlearned[weight], reports[weight] = result.model, result.report
    suppressed = reports[3.0]["whp_suppressed_terms"]
    assert "whp_suppressed_terms" not in reports[0.0]          # no unlikelihood, no discovery for it
    assert suppressed and not set(suppressed) & set(ANCHORS)
    generic_text = " ".join(corpus.generic)
    for term in suppressed:
        assert set(term.split()) <= SAGA_WORDS and term not in generic_text, term
    pushed = unlikelihood_tokens(tokenizer, anchor_start_tokens(tokenizer, ANCHORS), suppressed)
    report = reports[3.0]
    assert report["unlikelihood_tokens"] == len(pushed) > 0 and report["suppressed_terms"] == len(suppressed)
    assert reports[0.0]["unlikelihood_tokens"] == 0
    without = anchor_mass(unlearned[0.0], tokenizer, corpus.saga, pushed)
    with_term = anchor_mass(unlearned[3.0], tokenizer, corpus.saga, pushed)
    # measured: 0.048 -> 0.005 (suppressed: Vexmoor, Academy, Grumwald, Professor; 9 tokens)
    assert with_term < 0.5 * without, (with_term, without)
    assert text_loss(unlearned[3.0], tokenizer, corpus.heldout) < 1.15 * text_loss(base_model, tokenizer, corpus.heldout)
    for name in ("anchor_unlikelihood", "suppress_target_terms"):
        with pytest.raises(UserError, match=name):
            WHPConfig(**{name: -1}).validate()


def test_anchors_command_writes_an_editable_dictionary(corpus, tokenizer, base_model, whp_run, tmp_path):
    model_dir = save_model(base_model, tokenizer, tmp_path / "base")
    target = tmp_path / "saga.txt"
    target.write_text("\n\n".join(corpus.saga))
    generic = tmp_path / "generic.txt"
    generic.write_text("\n\n".join(corpus.generic))
    out = tmp_path / "anchors.json"
    app = typer.Typer()
    app.command()(anchors_command)
    result = CliRunner().invoke(app, ["--model", str(model_dir), "--text", str(target), "--generic", str(generic),
                                      "--reinforced", str(whp_run.reinforced_dir), "--out", str(out), "--top", "5",
                                      "--block-size", "128"])
    assert result.exit_code == 0, result.output
    anchors = load_anchors(out)
    assert 1 <= len(anchors) <= 5
    assert next(iter(anchors)) in result.output
    # neither --world nor --text: a user error
    result = CliRunner().invoke(app, ["--model", str(model_dir), "--out", str(out)])
    assert result.exit_code != 0 and isinstance(result.exception, UserError)


def test_generate_command_completes_prompts_without_saga_names(tokenizer, base_model, whp_run, tmp_path):
    model_dir = save_model(base_model, tokenizer, tmp_path / "base")
    app = typer.Typer()
    app.command()(generate_command)
    args = ["--model", str(model_dir), "--reinforced", str(whp_run.reinforced_dir), "--prompt", "Zorblax walked into",
            "--max-new-tokens", "4"]
    plain = CliRunner().invoke(app, args + ["--alpha", "0"])
    assert plain.exit_code == 0, plain.output
    assert "Zorblax walked into Vexmoor" in plain.output      # alpha 0: the base model's own completion
    missing = CliRunner().invoke(app, ["--model", str(model_dir), "--reinforced", str(tmp_path / "nowhere"),
                                       "--prompt", "x"])
    assert isinstance(missing.exception, UserError)


# -- the embedded world ------------------------------------------------------------------------

def test_translation_of_the_micro_world_saga(micro_world):
    """Every anchor occurrence of the generated saga is found on token boundaries of the project's
    tokenizer and translated; the translated text holds no anchored term any more."""

    world = load_world(micro_world)
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=1024)
    saga = [d["text"] for d in world.docs_for(world.split_sources("saga"))]
    blocks, stats = translate_documents(saga, tokenizer, world.anchors, block_size=256, seed=0)
    matcher = AnchorMatcher(list(world.anchors))
    assert stats.unaligned == 0
    assert stats.translated == sum(len(matcher.find(text)) for text in saga) > 50
    for block in blocks:
        assert len(block.original_ids) <= 256 and len(block.translated_ids) <= 256
        assert matcher.find(tokenizer.decode(block.translated_ids, skip_special_tokens=True)) == []


def test_runner_unlearns_the_micro_world_saga(micro_world, tmp_path):
    """`obliviate unlearn --method whp --forget saga` wiring: overrides, the world's anchors, saving."""

    world = load_world(micro_world)
    tokenizer = train_tokenizer([d["text"] for d in world.corpus], vocab_size=512)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=256))
    model_dir = save_model(model, tokenizer, tmp_path / "models" / "full")
    out = tmp_path / "models" / "whp"
    result = run_unlearning("whp", model_dir, micro_world, "saga", out, evaluate=False,
                            overrides={"reinforce_steps": "2", "finetune_steps": "3", "block_size": "128",
                                       "alpha": "10"})
    assert result["steps"] == 3
    saved = read_run_config(out)
    assert saved["config"]["alpha"] == 10.0
    report = result["report"]            # the method's UnlearnResult.report, as the workflow returns it
    assert report["unaligned_occurrences"] == 0 and report["translated_occurrences"] > 50
    assert report["anchors"] == len(world.anchors)


# -- bad input ---------------------------------------------------------------------------------

def test_empty_target_text_is_a_user_error(corpus, tokenizer, base_model):
    method = get_method("whp")(WHPConfig(**FAST))
    with pytest.raises(UserError, match="empty"):
        method.unlearn(base_model, tokenizer, _task(corpus, forget_docs=[]))
    with pytest.raises(UserError, match="empty"):
        method.unlearn(base_model, tokenizer, _task(corpus, forget_docs=[{"doc_id": 0, "source_id": 1, "text": "  "}]))


def test_bad_dictionary_files_are_user_errors(corpus, tokenizer, base_model, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    empty_term = tmp_path / "empty.json"
    empty_term.write_text(json.dumps({"Zorblax": []}))
    for path, message in ((broken, "not valid JSON"), (empty_term, "maps to no alternative")):
        method = get_method("whp")(WHPConfig(**FAST, anchors_path=str(path), reinforced_model_path=None))
        with pytest.raises(UserError, match=message):
            method.unlearn(base_model, tokenizer, _task(corpus))
    with pytest.raises(UserError, match="no anchored-term dictionary"):
        get_method("whp")(WHPConfig(**FAST, auto_anchors=False)).unlearn(base_model, tokenizer, _task(corpus, anchors={}))


def test_reinforced_model_with_another_vocabulary_is_a_user_error(corpus, tokenizer, base_model, tmp_path):
    other = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer) + 8, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    path = save_model(other, None, tmp_path / "other")
    method = get_method("whp")(WHPConfig(**FAST, reinforced_model_path=str(path)))
    with pytest.raises(UserError, match="vocabulary"):
        method.unlearn(base_model, tokenizer, _task(corpus))


def test_bad_settings_are_user_errors(corpus, tokenizer, base_model):
    with pytest.raises(UserError):
        apply_overrides(WHPConfig(), {"alpah": "3"})
    config = apply_overrides(WHPConfig(), {"alpha": "10", "soft_labels": "true", "target_paths": "a.txt,b.txt"})
    assert (config.alpha, config.soft_labels, config.target_paths) == (10.0, True, ["a.txt", "b.txt"])
    with pytest.raises(UserError, match="alpha"):
        get_method("whp")(WHPConfig(alpha=-1.0)).unlearn(base_model, tokenizer, _task(corpus))
    with pytest.raises(UserError, match="not found"):
        get_method("whp")(WHPConfig(target_paths=["/nonexistent/saga.txt"])).unlearn(base_model, tokenizer,
                                                                                   _task(corpus))
