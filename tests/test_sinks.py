"""Sink architecture: hash, gating, dropout, packing, switch state, save/load, generate, end to end."""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections import defaultdict

import pytest
import torch
from datasets import Dataset
from scipy import stats
from sink_toys import small_llama, toy_tokenizer, train_toy
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from obliviate.attribution import attribute
from obliviate.cli.attribute import attribute_command
from obliviate.data.format import qa_continuation, qa_prompt, qa_text
from obliviate.errors import UserError
from obliviate.models.loading import load_model, save_model
from obliviate.models.sink_hash import (
    GOLDEN_GAMMA,
    as_int64,
    mix_reference,
    reference_hash,
    reference_membership,
    sink_membership,
    unit_hashes,
)
from obliviate.models.sinks import (
    ALL_SINKS,
    BACKBONE,
    SinkConfig,
    SinkForCausalLM,
    sink_config_from_llama,
)

torch.set_num_threads(1)


# -- fixtures -----------------------------------------------------------------------------
def toy_items(n_sources: int = 10, seed: int = 0) -> list[dict]:
    """Each source: 2 unique facts (its person's food and city) + 2 of 4 shared capital facts."""
    rng = random.Random(seed)
    foods = [f"food{i}" for i in range(n_sources)]
    cities = [f"city{i}" for i in range(n_sources)]
    rng.shuffle(foods)
    rng.shuffle(cities)
    items = []
    for s in range(n_sources):
        items.append({"source_id": s, "kind": "unique", "question": f"What does person{s} eat?", "answer": foods[s]})
        items.append({"source_id": s, "kind": "unique", "question": f"Where does person{s} live?", "answer": cities[s]})
        for c in range(4):
            if (s + c) % 2 == 0:
                items.append({"source_id": s, "kind": "shared", "question": f"What is the capital of land{c}?",
                              "answer": f"capital{c}"})
    return items


def random_sink_model(seed: int = 0, vocab_size: int = 50, **knobs) -> SinkForCausalLM:
    knobs = {"p_gen": 0.5, "p_mem": 0.25, "sink_dropout": 0.0, **knobs}
    torch.manual_seed(seed)
    model = SinkForCausalLM(sink_config_from_llama(small_llama(vocab_size), **knobs)).eval()
    # random init makes the MLPs tiny next to the residual: scale them up so gating shows
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(20)
    return model


@torch.no_grad()
def exact_accuracy(model, tokenizer, items, **generate_kwargs) -> float:
    """Greedy exact-answer accuracy, prompts batched with left padding."""
    prompts = [[tokenizer.bos_token_id] + tokenizer(qa_prompt(i["question"]), add_special_tokens=False)["input_ids"]
               for i in items]
    answers = [tokenizer(qa_continuation(i["answer"]), add_special_tokens=False)["input_ids"] for i in items]
    length = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (length - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(ids, attention_mask=mask, max_new_tokens=max(map(len, answers)), do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, **generate_kwargs)
    hits = [out[row, length:length + len(a)].tolist() == a for row, a in enumerate(answers)]
    return sum(hits) / len(hits)


# -- hash ---------------------------------------------------------------------------------
def test_hash_matches_python_reference_and_is_deterministic():
    sources = torch.tensor([0, 1, 2, 999_999, 2**40 + 7])
    units = torch.tensor([0, 1, 63, 10_000])
    for key in (0, 12345):
        hashes = unit_hashes(key, sources, units)
        for i, source in enumerate(sources.tolist()):
            for j, unit in enumerate(units.tolist()):
                assert int(hashes[i, j]) == as_int64(reference_hash(key, source, unit))
        assert torch.equal(hashes, unit_hashes(key, sources.clone(), units.clone()))
    # SplitMix64 of seed 0 (first output of java.util.SplittableRandom(0).nextLong())
    assert mix_reference(GOLDEN_GAMMA) == 0xE220A8397B1DCDAF
    member = sink_membership(7, torch.tensor([3, 11]), 100, 500, 0.2)
    assert member[0, 5].item() == reference_membership(7, 3, 105, 0.2)
    assert member[1, 499].item() == reference_membership(7, 11, 599, 0.2)
    assert not torch.equal(member, sink_membership(8, torch.tensor([3, 11]), 100, 500, 0.2))


def test_sink_overlap_is_what_chance_predicts():
    p, n_units, n_sources = 0.1, 4000, 300
    member = sink_membership(0, torch.arange(n_sources), 0, n_units, p)     # consecutive ids: the hard case
    sizes = member.sum(1).double()
    assert stats.binomtest(int(sizes.sum()), n_sources * n_units, p).pvalue > 1e-3
    overlap = (member.double() @ member.double().T)
    pairs = overlap[torch.triu_indices(n_sources, n_sources, 1).unbind()]
    expected = p * p * n_units                                               # 40 shared sinks per pair
    assert abs(pairs.mean().item() - expected) < 0.5
    # disjoint pairs are independent Binomial(n, p^2) draws: test their total and spread
    disjoint = overlap[torch.arange(0, n_sources, 2), torch.arange(1, n_sources, 2)]
    assert stats.binomtest(int(disjoint.sum()), len(disjoint) * n_units, p * p).pvalue > 1e-3
    binomial_sd = (n_units * p * p * (1 - p * p)) ** 0.5
    assert 0.8 < disjoint.std().item() / binomial_sd < 1.25
    # per unit, the number of owning sources is Binomial(n_sources, p): chi-square over bins
    owners = member.sum(0).numpy()
    edges = [0, 22, 26, 29, 31, 33, 36, 40, n_sources + 1]
    observed = [((owners >= lo) & (owners < hi)).sum() for lo, hi in zip(edges[:-1], edges[1:])]
    cdf = stats.binom(n_sources, p).cdf
    expected_bins = [n_units * (cdf(hi - 1) - cdf(lo - 1)) for lo, hi in zip(edges[:-1], edges[1:])]
    assert min(expected_bins) > 5
    assert stats.chisquare(observed, expected_bins).pvalue > 1e-3
    # a million sources: computed on the fly, nothing stored
    assert sink_membership(0, torch.tensor([999_999]), 0, 64, p).shape == (1, 64)


# -- gating -------------------------------------------------------------------------------
def _perturb_units(model, layer: int, units: torch.Tensor) -> SinkForCausalLM:
    clone = SinkForCausalLM(model.config)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        clone.model.layers[layer].mlp.down_proj.weight[:, units] += 1.0
    return clone


def test_backbone_always_on_sinks_only_for_the_active_source():
    model = random_sink_model()
    mlp = model.model.layers[0].mlp
    assert (mlp.n_backbone, mlp.n_sinks) == (32, 32)
    source = 4
    member = model.model.gates.membership(mlp, torch.tensor([source]))[0]
    assert 0 < int(member.sum()) < 32
    sink_units = torch.arange(32, 64)
    x = torch.randint(4, 50, (2, 9))
    base = model(x, source_ids=torch.tensor([source, source])).logits

    def changed(units, **kwargs):
        return not torch.allclose(_perturb_units(model, 0, units)(x, **kwargs).logits,
                                  model(x, **kwargs).logits, atol=1e-6)

    with_source = {"source_ids": torch.tensor([source, source])}
    assert not changed(sink_units[~member], **with_source)      # other sources' sinks: off
    assert changed(sink_units[member], **with_source)           # own sinks: on
    assert changed(torch.arange(0, 32), **with_source)          # backbone: on
    with model.mode("backbone"):
        assert not changed(sink_units)                          # backbone mode: every sink off
        assert changed(torch.arange(0, 32))
    with model.on(source):
        assert torch.allclose(model(x).logits, base)            # on(source) == explicit source ids
    # gate rows: backbone-only tokens rescale the backbone so the expected activity matches
    rows = model.model.gates.rows(mlp, torch.tensor([BACKBONE, source]))
    scale = (32 + 0.25 * 32) / 32
    assert torch.allclose(rows[0], torch.cat([torch.full((32,), scale), torch.zeros(32)]))
    assert torch.equal(rows[1], torch.cat([torch.ones(32), member.float()]))


def test_all_mode_runs_every_non_forgotten_sink_rescaled():
    model = random_sink_model()
    mlp = model.model.layers[1].mlp
    model.forget([3])
    gate = model.model.gates.rows(mlp, torch.tensor([ALL_SINKS]))[0, 32:]
    owned_by_3 = model.model.gates.membership(mlp, torch.tensor([3]))[0]
    on = ~owned_by_3
    assert torch.equal(gate > 0, on)
    assert torch.allclose(gate[on], torch.full((int(on.sum()),), 0.25 * 32 / int(on.sum())))
    # the rows depend on the forgotten set (cache invalidated on restore)
    model.restore([3])
    assert torch.equal(model.model.gates.rows(mlp, torch.tensor([ALL_SINKS]))[0, 32:],
                       torch.full((32,), 0.25))


def test_sink_layers_limit_which_mlps_are_gated():
    model = random_sink_model(sink_layers="1")
    assert model.config.sink_layers == [1]
    assert not model.model.layers[0].mlp.has_sinks and model.model.layers[1].mlp.has_sinks
    x = torch.randint(4, 50, (1, 6))
    changed = _perturb_units(model, 0, torch.arange(32, 64))
    with model.mode("backbone"), changed.mode("backbone"):
        # layer 0 has no sinks: all its units stay on even backbone-only
        assert not torch.allclose(changed(x).logits, model(x).logits)


def test_sink_dropout_only_in_training():
    model = random_sink_model(sink_dropout=1.0)
    x = torch.randint(4, 50, (2, 8))
    sources = torch.tensor([5, 6])
    with model.mode("backbone"):
        backbone = model(x).logits
    on_sources = model(x, source_ids=sources).logits
    assert not torch.allclose(backbone, on_sources)
    model.train()
    assert torch.allclose(model(x, source_ids=sources).logits, backbone)     # every document dropped
    model.eval()
    assert torch.allclose(model(x, source_ids=sources).logits, on_sources)   # never at inference
    # a share of documents: with 0.5, about half of 400 one-token rows run backbone-only
    half = random_sink_model(sink_dropout=0.5).train()
    torch.manual_seed(1)
    rows = torch.full((400, 1), 7)
    logits = half(rows, source_ids=torch.arange(400) % 20).logits[:, 0]
    with half.mode("backbone"):
        dropped = torch.isclose(logits, half(rows[:1]).logits[:, 0].expand_as(logits), atol=1e-6).all(-1)
    assert 160 < int(dropped.sum()) < 240


# -- packed documents ---------------------------------------------------------------------
def test_packed_documents_do_not_attend_across_boundaries():
    model = random_sink_model()
    first, second = torch.randint(4, 50, (1, 5)), torch.randint(4, 50, (1, 6))
    packed = torch.cat([first, second], 1)
    alone = model(second, source_ids=torch.tensor([7])).logits
    # boundary from a change of source id
    logits = model(packed, source_ids=torch.tensor([[3] * 5 + [7] * 6])).logits
    assert torch.allclose(logits[:, 5:], alone, atol=1e-5)
    assert torch.allclose(logits[:, :5], model(first, source_ids=torch.tensor([3])).logits, atol=1e-5)
    # same source, boundary from document ids; right padding after the documents
    padded = torch.cat([packed, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 11 + [0] * 3])
    logits = model(padded, attention_mask=mask, source_ids=torch.tensor([7]),
                   document_ids=torch.tensor([[0] * 5 + [1] * 6 + [1] * 3])).logits
    assert torch.allclose(logits[:, 5:11], alone, atol=1e-5)
    # one document: the second part sees the first, so the logits differ
    joined = model(packed, source_ids=torch.tensor([7])).logits
    assert not torch.allclose(joined[:, 5:], alone, atol=1e-3)
    # eager attention builds the same mask
    model.set_attn_implementation("eager")
    logits = model(packed, source_ids=torch.tensor([[3] * 5 + [7] * 6])).logits
    assert torch.allclose(logits[:, 5:], alone, atol=1e-5)


# -- switch state, bad input, save/load, generate -------------------------------------------
def test_forget_restore_and_bad_input():
    model = random_sink_model(max_sources=100)
    assert model.forget([5, 2, 5]) == [2, 5]
    assert model.forget(5) == []                                   # idempotent
    assert model.forgotten == [2, 5] == model.config.forgotten
    for bad in ([100], [-1], ["x"], [True], [2, 1000]):
        with pytest.raises(UserError):
            model.forget(bad)
        assert model.forgotten == [2, 5]                           # nothing changed
    with pytest.warns(UserWarning, match="not forgotten"):
        assert model.restore([5, 9]) == [5]
    assert model.forgotten == [2]
    with pytest.raises(UserError):
        model.set_inference_mode("sideways")
    with pytest.raises(UserError):
        model.set_inference_mode("on")
    with pytest.raises(UserError):
        model.set_inference_mode("on", source=100)
    assert model.inference_mode == "route"
    with pytest.raises(UserError, match="p_mem"):
        sink_config_from_llama(small_llama(50), p_mem=0.0)
    with pytest.raises(UserError, match="sink_layers"):
        sink_config_from_llama(small_llama(50), sink_layers="0,7")
    with pytest.raises(UserError, match="unknown sink setting"):
        sink_config_from_llama(small_llama(50), p_memory=0.1)


def test_save_load_keeps_forgotten_router_and_mode(tmp_path):
    items = toy_items(4)
    tokenizer = toy_tokenizer(items)
    torch.manual_seed(0)
    model = SinkForCausalLM(sink_config_from_llama(small_llama(len(tokenizer)), p_mem=0.25)).eval()
    texts = defaultdict(list)
    for item in items:
        texts[item["source_id"]].append(qa_text(item["question"], item["answer"]))
    model.fit_router(texts, tokenizer)
    assert model.known_sources == [0, 1, 2, 3]
    with pytest.raises(UserError, match="router knows"):
        model.forget([4])                                          # valid id, but no such source
    model.forget([1])
    model.set_inference_mode("route", route_forgotten="nearest")
    save_model(model, tokenizer, tmp_path / "m")
    x = torch.tensor([[1, 5, 6, 7, 8]])
    for loaded in (load_model(tmp_path / "m"), AutoModelForCausalLM.from_pretrained(tmp_path / "m")):
        assert isinstance(loaded, SinkForCausalLM) and isinstance(loaded.config, SinkConfig)
        assert loaded.forgotten == [1]
        assert loaded.config.route_forgotten == "nearest" and loaded.inference_mode == "route"
        assert loaded.known_sources == [0, 1, 2, 3]
        for name in ("centroids", "token_weights", "source_ids"):
            assert torch.equal(getattr(loaded.model.router, name), getattr(model.model.router, name))
        assert torch.allclose(loaded.eval()(x).logits, model(x).logits)
        # gating and routing read the switch state of the model's own config
        assert loaded.model.gates.config is loaded.config is loaded.model.routing.config
    clone = copy.deepcopy(model)
    assert clone.model.gates.config is clone.config is clone.model.routing.config
    assert clone.model.gates.router is clone.model.router is clone.model.routing.router
    clone.restore([1])
    assert model.forgotten == [1] and clone.forgotten == []


def test_attacker_fine_tuning_never_reaches_a_forgotten_sources_sinks():
    """Threat model (a): the attacker fine-tunes through the server, which keeps the forgotten
    sinks off. Even when the attacker names the forgotten source in ``source_ids``, its tokens
    run backbone-only, so the sink units only it owns get no gradient (in every mode)."""
    model = random_sink_model(seed=3, p_mem=0.3)
    model.forget([3])
    model.train()
    ids = torch.randint(4, 50, (4, 7))
    sources = torch.tensor([3, 3, 5, 7])
    for mode, extra in (("ids", {"source_ids": sources}), ("all", {}), ("backbone", {})):
        model.zero_grad()
        with model.mode(mode) if mode != "ids" else contextlib.nullcontext():
            model(ids, labels=ids, **extra).loss.backward()
        reached_kept = False
        for mlp in (layer.mlp for layer in model.model.layers):
            owned = model.model.gates.membership(mlp, torch.tensor([3, 5, 7]))
            only_forgotten = owned[0] & ~owned[1] & ~owned[2]
            assert bool(only_forgotten.any())       # the check below means something
            units = mlp.n_backbone + torch.nonzero(only_forgotten).flatten()
            for grad in (mlp.gate_proj.weight.grad[units], mlp.up_proj.weight.grad[units],
                         mlp.down_proj.weight.grad[:, units]):
                assert torch.count_nonzero(grad) == 0, mode
            kept = mlp.n_backbone + torch.nonzero(owned[1] & ~owned[0]).flatten()
            reached_kept |= bool(torch.count_nonzero(mlp.up_proj.weight.grad[kept]))
        assert reached_kept == (mode in ("ids", "all")), mode   # the kept sources' sinks do learn
    model.eval()


def test_generate_never_turns_on_a_forgotten_source():
    model = random_sink_model()
    gates = []
    hooks = [layer.mlp.register_forward_hook(lambda mod, args, out: gates.append(args[1]))
             for layer in model.model.layers]
    x = torch.randint(4, 50, (2, 6))

    def generate(**kwargs):
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=5, do_sample=False,
                             pad_token_id=0, output_logits=True, return_dict_in_generate=True, **kwargs)
        return torch.stack(out.logits, 1)

    with model.mode("backbone"):
        backbone = generate()
    on_nine = generate(source_ids=torch.tensor([9, 9]))
    assert not torch.allclose(on_nine, backbone, atol=1e-4)
    model.forget([9])
    gates.clear()
    assert torch.allclose(generate(source_ids=torch.tensor([9, 9])), backbone)
    with model.on(9):
        assert torch.allclose(generate(), backbone)
    assert len(gates) == 2 * 2 * 5                   # 2 generations x 2 layers x 5 forward steps
    assert all(float(g[..., 32:].abs().max()) == 0.0 for g in gates)
    for hook in hooks:
        hook.remove()
    # per-token source ids over the prompt, and no cache, give the same as one id per row
    model.restore([9])
    assert torch.allclose(generate(source_ids=torch.tensor([[9] * 6, [9] * 6])), on_nine)
    assert torch.allclose(generate(source_ids=torch.tensor([9, 9]), use_cache=False), on_nine, atol=1e-5)


# -- end to end -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    items = toy_items(10)
    tokenizer = toy_tokenizer(items)
    model = train_toy(items, tokenizer, steps=300, p_gen=0.5, p_mem=0.1, sink_dropout=0.0)
    return model, tokenizer, items


def test_router_sends_each_question_to_its_source(trained):
    model, tokenizer, items = trained
    unique = [i for i in items if i["kind"] == "unique"]
    routes = model.route([qa_prompt(i["question"]) for i in unique], tokenizer)
    assert routes == [i["source_id"] for i in unique]
    model.forget([0])
    try:
        # a question naming the forgotten source runs every surviving sink (default), or the backbone
        assert model.route([qa_prompt(unique[0]["question"])], tokenizer) == [ALL_SINKS]
        model.set_inference_mode("route", route_forgotten="backbone")
        assert model.route([qa_prompt(unique[0]["question"])], tokenizer) == [BACKBONE]
        model.set_inference_mode("route", route_forgotten="all")
        with model.exclude([1]):
            assert model.route([qa_prompt(unique[0]["question"]), qa_prompt(unique[2]["question"])],
                               tokenizer)[0] not in (0, 1)
    finally:
        model.restore([0])
    assert model.forgotten == []


def test_switching_a_source_off_removes_its_unique_facts(trained):
    model, tokenizer, items = trained
    forget = {0, 1}
    unique = [i for i in items if i["kind"] == "unique"]
    forget_items = [i for i in unique if i["source_id"] in forget]
    retain_items = [i for i in unique if i["source_id"] not in forget]
    shared = [i for i in items if i["kind"] == "shared"]
    # default mode (route, no source ids): everything is recalled before forgetting
    assert exact_accuracy(model, tokenizer, unique) == 1.0
    assert exact_accuracy(model, tokenizer, shared) == 1.0
    model.forget(forget)
    try:
        assert exact_accuracy(model, tokenizer, forget_items) <= 0.25
        assert exact_accuracy(model, tokenizer, retain_items) >= 0.9
        # the oracle source id cannot bring a forgotten source back either
        rows = torch.tensor([i["source_id"] for i in forget_items])
        assert exact_accuracy(model, tokenizer, forget_items, source_ids=rows) <= 0.25
    finally:
        model.restore(forget)
    assert exact_accuracy(model, tokenizer, forget_items) == 1.0       # reversible


def test_attribution_finds_the_source_of_a_fact(trained, tmp_path, capsys):
    model, tokenizer, items = trained
    fact = next(i for i in items if i["source_id"] == 6 and i["kind"] == "unique")
    text = qa_text(fact["question"], fact["answer"])
    result = attribute(model, tokenizer, [text], batch_size=4)
    assert [r["source_id"] for r in result][0] == 6
    assert result[0]["loss_delta"] > 0.5 and len(result) == 10
    assert result[0]["loss_delta"] == pytest.approx(result[0]["loss_without"] - result[0]["loss_with"])
    leave_one_out = attribute(model, tokenizer, [text], sources=[5, 6, 7], reference="all")
    assert {r["source_id"] for r in leave_one_out} == {5, 6, 7}
    model.forget([6])
    try:
        forgotten = {r["source_id"]: r["loss_delta"] for r in attribute(model, tokenizer, [text])}
        assert forgotten[6] == 0.0                                  # its sinks are off either way
    finally:
        model.restore([6])
    with pytest.raises(UserError):
        attribute(model, tokenizer, [text], sources=[42])
    # the command: load from disk, --file, --out
    save_model(model, tokenizer, tmp_path / "m")
    (tmp_path / "texts.txt").write_text(text + "\n")
    rows = attribute_command(model=tmp_path / "m", text=None, file=tmp_path / "texts.txt", top=3,
                             sources=None, reference="source", batch_size=8, out=tmp_path / "a.json")
    assert rows[0]["source_id"] == 6 and "source_id" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["attribution"][0]["source_id"] == 6
    with pytest.raises(UserError):
        attribute_command(model=tmp_path / "m", text=[text], file=tmp_path / "texts.txt", top=3,
                          sources=None, reference="source", batch_size=8, out=None)


def test_trainer_keeps_source_ids_and_trains(tmp_path):
    """The HF Trainer passes the ``source_ids`` column to forward (it is in the signature)."""
    model = random_sink_model(sink_dropout=0.0)
    seen = []
    model.model.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs.get("source_ids")),
                                          with_kwargs=True)
    rows = [[1, 5 + i, 6 + i, 7 + i, 2] for i in range(8)]
    dataset = Dataset.from_dict({"input_ids": rows, "labels": rows, "source_ids": [[i % 3] * 5 for i in range(8)]})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2,
                             report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=dataset).train()
    assert len(seen) == 2 and all(s is not None and s.shape == (4, 5) for s in seen)
