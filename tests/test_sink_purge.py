"""Purge (models/sink_purge.py, ``obliviate purge``): forgotten sinks cut out of the weights.

The export is a stock Llama that runs exactly like the switched sink model in ``all`` mode,
loads where obliviate is not even imported, holds no weight of a removed unit, and (unlike
the switched model, whose forgetting is one config line) has nothing an attacker can edit
back. Threat model: docs/native-threat-model.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest
import torch
from safetensors.torch import load_file
from sink_toys import small_llama, toy_tokenizer, train_toy
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from obliviate.data.format import qa_continuation, qa_prompt, qa_text
from obliviate.errors import UserError
from obliviate.models.loading import load_model, save_model
from obliviate.models.sink_purge import (
    PURGE_FIELD,
    all_mode_unit_gates,
    check_saved_purge,
    owned_unit_masks,
    purge_sinks,
    purge_sinks_routed,
)
from obliviate.models.sinks import SinkForCausalLM, sink_config_from_llama

torch.set_num_threads(1)

N_SOURCES = 6
FORGET = [1, 3]


# -- helpers ------------------------------------------------------------------------------------
def toy_items(n_sources: int = N_SOURCES) -> list[dict]:
    """Each source: 2 unique facts (its person's food and city) + 1 of 2 shared capital facts."""
    items = []
    for s in range(n_sources):
        items.append({"source_id": s, "kind": "unique", "question": f"What does person{s} eat?",
                      "answer": f"food{(7 * s + 3) % n_sources}"})
        items.append({"source_id": s, "kind": "unique", "question": f"Where does person{s} live?",
                      "answer": f"city{(5 * s + 1) % n_sources}"})
        items.append({"source_id": s, "kind": "shared", "question": f"What is the capital of land{s % 2}?",
                      "answer": f"capital{s % 2}"})
    return items


def source_texts(items: list[dict], sources=None) -> dict[int, list[str]]:
    texts = defaultdict(list)
    for item in items:
        texts[item["source_id"]].append(qa_text(item["question"], item["answer"]))
    if sources is not None:   # more sources than items: each borrows an item source's texts
        texts = {s: texts[s % N_SOURCES] for s in sources}
    return dict(texts)


def random_sink_model(items, tokenizer, seed: int = 0, router_sources=None, router: bool = True,
                      **knobs) -> SinkForCausalLM:
    """Random weights (MLPs scaled up so gating shows in the logits), router fitted on the toy texts."""
    knobs = {"p_gen": 0.5, "p_mem": 0.25, "sink_dropout": 0.0, **knobs}
    torch.manual_seed(seed)
    model = SinkForCausalLM(sink_config_from_llama(small_llama(len(tokenizer), layers=3), **knobs)).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(20)
    if router:
        model.fit_router(source_texts(items, router_sources), tokenizer)
    return model


def prompt_batch(tokenizer, items):
    """Left-padded prompts of ``items`` (ids, attention mask)."""
    prompts = [[tokenizer.bos_token_id] + tokenizer(qa_prompt(i["question"]), add_special_tokens=False)["input_ids"]
               for i in items]
    length = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (length - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (length - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@torch.no_grad()
def exact_accuracy(model, tokenizer, items) -> float:
    """Greedy exact-answer accuracy (the model's own inference mode)."""
    ids, mask = prompt_batch(tokenizer, items)
    answers = [tokenizer(qa_continuation(i["answer"]), add_special_tokens=False)["input_ids"] for i in items]
    out = model.generate(ids, attention_mask=mask, max_new_tokens=max(map(len, answers)), do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    length = ids.shape[1]
    return sum(out[row, length:length + len(a)].tolist() == a for row, a in enumerate(answers)) / len(answers)


@pytest.fixture(scope="module")
def toy():
    items = toy_items()
    return items, toy_tokenizer(items)


# -- the export ---------------------------------------------------------------------------------
@pytest.mark.parametrize("knobs", [{}, {"sink_layers": "1"}, {"backbone_scale": "none", "hash_key": 7}],
                         ids=["all-layers", "one-sink-layer", "no-rescale"])
def test_purged_export_runs_like_all_mode(toy, knobs):
    items, tokenizer = toy
    # the router knows sources 0..5 of 0..max_sources: units owned by none of them go too
    model = random_sink_model(items, tokenizer, **knobs)
    model.forget(FORGET)
    dense = purge_sinks(model)
    assert type(dense) is LlamaForCausalLM and dense.config.model_type == "llama"
    assert not any("obliviate" in type(m).__module__ for m in dense.modules())
    record = getattr(dense.config, PURGE_FIELD)
    kept = record["units_kept"]
    assert record["purged_sources"] == FORGET and record["intermediate_size_before"] == 64
    assert len(set(kept)) > 1, "layers keep different unit counts: the padding path runs"
    assert dense.config.intermediate_size == max(kept) <= 64
    assert record["padded_layers"] == [i for i, n in enumerate(kept) if n < max(kept)]
    if knobs.get("sink_layers") == "1":
        assert kept[0] == kept[2] == 64 and kept[1] < 64
    assert dense.lm_head.weight is dense.model.embed_tokens.weight        # the tie is kept
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight",
                 "model.layers.2.post_attention_layernorm.weight"):
        assert torch.equal(dense.get_parameter(name), model.get_parameter(name))

    ids, mask = prompt_batch(tokenizer, items)
    with torch.no_grad(), model.mode("all"):
        expected = model(ids, attention_mask=mask).logits
    with torch.no_grad():
        got = dense(ids, attention_mask=mask).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(got, model(ids, attention_mask=mask, source_ids=torch.full((len(items),), -1)).logits,
                                  atol=1e-3), "the sinks matter in these logits (else the check says nothing)"

    # sources given to purge_sinks are purged too; the model itself keeps its switch state
    more = purge_sinks(model, [4])
    assert getattr(more.config, PURGE_FIELD)["purged_sources"] == sorted(FORGET + [4])
    assert model.forgotten == FORGET and model.inference_mode == "route"
    with torch.no_grad(), model.exclude([4]), model.mode("all"):
        expected = model(ids, attention_mask=mask).logits
    with torch.no_grad():
        assert torch.allclose(more(ids, attention_mask=mask).logits, expected, atol=1e-5, rtol=1e-5)


def test_without_a_router_only_forgotten_units_go(toy):
    items, tokenizer = toy
    model = random_sink_model(items, tokenizer, router=False)
    model.forget([40, 41])                     # no router: any id in 0..max_sources is a source
    dense = purge_sinks(model)
    for layer, kept in zip(model.model.layers, getattr(dense.config, PURGE_FIELD)["units_kept"]):
        owned = model.model.gates.membership(layer.mlp, torch.tensor([40, 41])).any(0)
        assert kept == layer.mlp.n_backbone + int((~owned).sum())
    ids, mask = prompt_batch(tokenizer, items)
    with torch.no_grad(), model.mode("all"):
        assert torch.allclose(dense(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits,
                              atol=1e-5, rtol=1e-5)


def test_purge_refuses_bad_input(toy, tmp_path):
    items, tokenizer = toy
    model = random_sink_model(items, tokenizer)
    with pytest.raises(UserError, match="nothing to purge"):
        purge_sinks(model)
    with pytest.raises(UserError, match="unknown source id"):
        purge_sinks(model, [9])
    dense = purge_sinks(model, [2])
    with pytest.raises(UserError, match="already purged"):
        purge_sinks(dense)
    torch.manual_seed(0)
    with pytest.raises(UserError, match="needs a sink model"):
        purge_sinks(LlamaForCausalLM(small_llama(len(tokenizer), layers=3)))
    assert model.forgotten == []
    # the command line's check before loading: config.json and the router ids alone, sharded too
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    assert check_saved_purge(tmp_path / "sharded", [4, 2]) == [2, 4]
    with pytest.raises(UserError, match="unknown source id"):
        check_saved_purge(tmp_path / "sharded", [9])
    with pytest.raises(UserError, match="nothing to purge"):
        check_saved_purge(tmp_path / "sharded", None)


_SUBPROCESS = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
batch = json.load(open(sys.argv[2]))
with torch.no_grad():
    logits = model(torch.tensor(batch["ids"]), attention_mask=torch.tensor(batch["mask"])).logits
torch.save(logits, sys.argv[3])
leaked = sorted(m for m in sys.modules if m == "obliviate" or m.startswith("obliviate."))
assert "obliviate" not in sys.modules and not leaked, leaked
print(type(model).__name__, model.config.model_type, model.config.intermediate_size)
"""


def test_export_loads_without_obliviate_and_holds_no_removed_unit(toy, tmp_path):
    items, tokenizer = toy
    model = random_sink_model(items, tokenizer, sink_layers="0,2")
    model.forget(FORGET)
    dense = purge_sinks(model)
    dense.save_pretrained(tmp_path / "purged")
    ids, mask = prompt_batch(tokenizer, items)
    (tmp_path / "batch.json").write_text(json.dumps({"ids": ids.tolist(), "mask": mask.tolist()}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    done = subprocess.run([sys.executable, "-c", _SUBPROCESS, str(tmp_path / "purged"), str(tmp_path / "batch.json"),
                           str(tmp_path / "logits.pt")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["LlamaForCausalLM", "llama", str(dense.config.intermediate_size)]
    with torch.no_grad(), model.mode("all"):
        expected = model(ids, attention_mask=mask).logits
    assert torch.allclose(torch.load(tmp_path / "logits.pt"), expected, atol=1e-5, rtol=1e-5)

    config = json.loads((tmp_path / "purged" / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert not {"forgotten", "hash_key", "p_mem", "p_gen", "router_size", "auto_map"} & set(config)
    assert config[PURGE_FIELD]["purged_sources"] == FORGET
    tensors = load_file(str(tmp_path / "purged" / "model.safetensors"))
    assert not [name for name in tensors if "router" in name]
    width = config["intermediate_size"]
    assert width <= model.config.intermediate_size
    for index, (layer, gate) in enumerate(zip(model.model.layers, all_mode_unit_gates(model, FORGET))):
        mlp, prefix = layer.mlp, f"model.layers.{index}.mlp."
        kept, removed = gate != 0, gate == 0
        n_kept = int(kept.sum())
        assert n_kept == config[PURGE_FIELD]["units_kept"][index]
        assert bool(removed.any()) == mlp.has_sinks      # sink layers lose units, the others none
        for name in ("gate_proj", "up_proj"):
            exported, original = tensors[prefix + name + ".weight"], getattr(mlp, name).weight.detach()
            assert exported.shape == (width, original.shape[1])
            assert torch.equal(exported[:n_kept], original[kept])
            assert not exported[n_kept:].any()                            # padding: all-zero units
            # no removed unit's row among the exported rows (exact comparison)
            assert not (exported[:, None, :] == original[removed][None]).all(-1).any()
        exported, original = tensors[prefix + "down_proj.weight"], mlp.down_proj.weight.detach()
        assert exported.shape == (original.shape[0], width)
        assert torch.equal(exported[:, :n_kept], original[:, kept] * gate[kept])
        assert not exported[:, n_kept:].any()
        assert not (exported.T[:, None, :] == original.T[removed][None]).all(-1).any()


def test_config_edit_undoes_the_switch_but_not_the_purge(toy, tmp_path):
    """The attack on released switched weights: the forgotten sources are one line of
    config.json (``"forgotten": [...]``). Delete it, reload, and the switched model recalls
    the forgotten facts exactly as the full model did: the switch is access control while
    serving, not deletion. The purged export has no such line (no ``forgotten``, no sink
    weights left to switch back on); deleting its only obliviate field (the purge record)
    changes nothing."""
    items, tokenizer = toy
    model = train_toy(items, tokenizer, p_gen=0.5, p_mem=0.1, sink_dropout=0.0)
    forget_items = [i for i in items if i["kind"] == "unique" and i["source_id"] in FORGET]
    full_accuracy = exact_accuracy(model, tokenizer, forget_items)
    assert full_accuracy == 1.0
    model.forget(FORGET)
    assert exact_accuracy(model, tokenizer, forget_items) <= 0.25
    save_model(model, tokenizer, tmp_path / "switched")
    save_model(purge_sinks(model), tokenizer, tmp_path / "purged")

    # the attack on the switched files: delete one config line
    path = tmp_path / "switched" / "config.json"
    config = json.loads(path.read_text())
    assert config["forgotten"] == FORGET
    del config["forgotten"]
    path.write_text(json.dumps(config))
    attacked = load_model(tmp_path / "switched")
    assert attacked.forgotten == []
    assert exact_accuracy(attacked, tokenizer, forget_items) == full_accuracy

    # the purged files: nothing to delete
    purged_config_path = tmp_path / "purged" / "config.json"
    purged_config = json.loads(purged_config_path.read_text())
    assert purged_config["model_type"] == "llama" and "forgotten" not in purged_config
    purged = AutoModelForCausalLM.from_pretrained(tmp_path / "purged").eval()
    assert exact_accuracy(purged, tokenizer, forget_items) <= 0.25
    ids, mask = prompt_batch(tokenizer, items)
    with torch.no_grad():
        before = purged(ids, attention_mask=mask).logits
    del purged_config[PURGE_FIELD]
    purged_config_path.write_text(json.dumps(purged_config))
    edited = AutoModelForCausalLM.from_pretrained(tmp_path / "purged").eval()
    with torch.no_grad():
        assert torch.equal(edited(ids, attention_mask=mask).logits, before)
    assert exact_accuracy(edited, tokenizer, forget_items) <= 0.25


# -- the command line ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sink_dir(toy, tmp_path_factory):
    """A saved sink model (nothing forgotten) whose router knows sources 0..26 (the micro world's)."""
    items, tokenizer = toy
    model = random_sink_model(items, tokenizer, router_sources=range(27))
    path = tmp_path_factory.mktemp("purge_cli") / "sinks"
    save_model(model, tokenizer, path, run_config={"kind": "test"})
    return path


def _one_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_purge_command(cli, capsys, sink_dir, micro_world, tmp_path):
    from obliviate.world.loader import load_world

    code, out, err = cli("purge", "--model", sink_dir, "--out", tmp_path / "p1", "--forget-sources", "1, 3")
    assert code == 0, err
    assert "purged 2 source(s) [1, 3]" in out
    run_config = json.loads((tmp_path / "p1" / "obliviate_config.json").read_text())
    assert run_config["kind"] == "purged" and run_config["purged_sources"] == [1, 3]
    assert run_config["source_run_config"] == {"kind": "test"}
    assert (tmp_path / "p1" / "tokenizer.json").is_file()
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "p1")
    assert type(exported) is LlamaForCausalLM
    assert getattr(exported.config, PURGE_FIELD)["units_kept"] == run_config["units_kept"]
    assert load_model(sink_dir).forgotten == []                  # the source model is untouched

    split = sorted(load_world(micro_world).split_sources("forget10"))
    code, out, err = cli("purge", "--model", sink_dir, "--out", tmp_path / "p2", "--forget", "forget10",
                         "--world", micro_world)
    assert code == 0, err
    run_config = json.loads((tmp_path / "p2" / "obliviate_config.json").read_text())
    assert run_config["purged_sources"] == split and run_config["forget"] == "forget10"

    dense = tmp_path / "dense"
    tokenizer = toy_tokenizer(toy_items())
    torch.manual_seed(0)
    save_model(LlamaForCausalLM(small_llama(len(tokenizer), layers=3)), tokenizer, dense)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a model")
    capsys.readouterr()            # the progress bar of saving the dense model above
    bad = [
        (("--model", dense, "--forget-sources", "1"), ("needs a sink model", "'llama'")),
        (("--model", tmp_path / "p1", "--forget-sources", "1"), ("already purged",)),
        (("--model", sink_dir, "--forget-sources", "1,99"), ("unknown source id", "99")),
        (("--model", sink_dir), ("nothing to purge",)),
        (("--model", sink_dir, "--forget-sources", "1,x"), ("comma-separated",)),
        (("--model", sink_dir, "--forget", "forget10"), ("--world",)),
        (("--model", sink_dir, "--forget-sources", "1", "--world", micro_world), ("not both",)),
        (("--model", sink_dir, "--forget", "nope", "--world", micro_world), ("unknown split",)),
        (("--model", tmp_path / "missing", "--forget-sources", "1"), ("does not exist",)),
    ]
    for args, needles in bad:
        target = tmp_path / "never"
        code, out, err = cli("purge", *args, "--out", target)
        _one_error(code, err, *needles)
        assert not target.exists(), args
    code, _, err = cli("purge", "--model", sink_dir, "--forget-sources", "1", "--out", tmp_path / "mine")
    _one_error(code, err, "refusing to overwrite")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    code, _, err = cli("purge", "--model", sink_dir, "--forget-sources", "1", "--out", sink_dir)
    _one_error(code, err, "is the --model directory")
    assert load_model(sink_dir).config.model_type == "obliviate_sinks"


# -- the routed export (purge_sinks_routed, obliviate purge --keep-routing) ---------------------
@pytest.fixture(scope="module")
def routed(toy):
    """A trained toy sink model switched on FORGET, and its routed purge."""
    items, tokenizer = toy
    model = train_toy(items, tokenizer, p_gen=0.5, p_mem=0.1, sink_dropout=0.0)
    model.forget(FORGET)
    return model, purge_sinks_routed(model)


def _unique(items, forgotten: bool) -> list[dict]:
    return [i for i in items if i["kind"] == "unique" and (i["source_id"] in FORGET) == forgotten]


def test_routed_purge_keeps_routing_and_the_kept_facts(toy, routed):
    items, tokenizer = toy
    model, purged = routed
    assert type(purged) is SinkForCausalLM and purged is not model
    forget_items, retain_items = _unique(items, True), _unique(items, False)
    switched_retain = exact_accuracy(model, tokenizer, retain_items)
    assert switched_retain == 1.0 and exact_accuracy(model, tokenizer, forget_items) <= 0.25
    assert purged.inference_mode == "route"
    assert exact_accuracy(purged, tokenizer, forget_items) <= 0.25
    # collateral of zeroing units a kept source shares with 1 or 3: measured 1.0 on this toy
    # (kept sources lose 0..4 of their 9..16 sink units per layer), bound at 0.75 of the switch
    assert exact_accuracy(purged, tokenizer, retain_items) >= 0.75 * switched_retain
    # the router no longer knows the purged sources; the switch state and the record say so
    assert purged.known_sources == [0, 2, 4, 5] and purged.config.router_size == 4
    assert purged.forgotten == FORGET
    assert not set(purged.route([qa_prompt(i["question"]) for i in items], tokenizer)) & set(FORGET)
    record = getattr(purged.config, PURGE_FIELD)
    assert record["purged_sources"] == FORGET and record["mode"] == "route" and record["router_size_before"] == 6
    # the source model is untouched
    assert model.known_sources == list(range(N_SOURCES)) and not hasattr(model.config, PURGE_FIELD)
    # restore is refused (the router does not know the ids); a second purge of them too; more is fine
    with pytest.raises(UserError, match="unknown source id"):
        purged.restore(FORGET)
    with pytest.raises(UserError, match="already purged"):
        purge_sinks_routed(purged, [3])
    with pytest.raises(UserError, match="nothing to purge"):
        purge_sinks_routed(purged)
    with pytest.raises(UserError, match="at least one source"):
        purge_sinks_routed(purged, [0, 2, 4, 5])
    more = purge_sinks_routed(purged, [4])
    assert getattr(more.config, PURGE_FIELD)["purged_sources"] == [1, 3, 4] and more.known_sources == [0, 2, 5]
    with pytest.raises(UserError, match="already purged"):
        purge_sinks_routed(more, [1, 4])
    # the stock-Llama export still works from a routed export
    assert getattr(purge_sinks(purged).config, PURGE_FIELD)["purged_sources"] == FORGET


def test_routed_files_hold_no_forgotten_unit_and_survive_the_config_edit(toy, routed, tmp_path):
    """Released routed files: every unit 1 or 3 owns is exactly zero in the safetensors, the
    router has no entry for them, and deleting ``forgotten`` and the purge record from
    config.json brings nothing back (unlike the switched files: the test above)."""
    items, tokenizer = toy
    model, purged = routed
    save_model(purged, tokenizer, tmp_path / "routed")
    tensors = load_file(str(tmp_path / "routed" / "model.safetensors"))
    assert tensors["model.router.source_ids"].tolist() == [0, 2, 4, 5]
    assert tensors["model.router.centroids"].shape[0] == 4
    masks = owned_unit_masks(model, FORGET)
    for index, (layer, mask) in enumerate(zip(model.model.layers, masks)):
        prefix = f"model.layers.{index}.mlp."
        assert bool(mask.any()) == layer.mlp.has_sinks
        for name in ("gate_proj", "up_proj"):
            exported, original = tensors[prefix + name + ".weight"], getattr(layer.mlp, name).weight.detach()
            assert not exported[mask].any()
            assert torch.equal(exported[~mask], original[~mask])
        exported, original = tensors[prefix + "down_proj.weight"], layer.mlp.down_proj.weight.detach()
        assert not exported[:, mask].any()
        assert torch.equal(exported[:, ~mask], original[:, ~mask])

    forget_items = _unique(items, True)
    path = tmp_path / "routed" / "config.json"
    config = json.loads(path.read_text())
    assert config["forgotten"] == FORGET and config[PURGE_FIELD]["purged_sources"] == FORGET
    del config["forgotten"], config[PURGE_FIELD]
    path.write_text(json.dumps(config))
    attacked = load_model(tmp_path / "routed")
    assert attacked.forgotten == [] and attacked.known_sources == [0, 2, 4, 5]
    assert exact_accuracy(attacked, tokenizer, forget_items) <= 0.25
    for mode in ("all", "backbone"):
        with attacked.mode(mode):
            assert exact_accuracy(attacked, tokenizer, forget_items) <= 0.25
    # explicit source ids of the purged sources run their (zero) units: nothing comes back
    ids, mask = prompt_batch(tokenizer, forget_items)
    answers = [tokenizer(qa_continuation(i["answer"]), add_special_tokens=False)["input_ids"] for i in forget_items]
    with torch.no_grad():
        out = attacked.generate(ids, attention_mask=mask, max_new_tokens=max(map(len, answers)), do_sample=False,
                                pad_token_id=tokenizer.pad_token_id,
                                source_ids=torch.tensor([i["source_id"] for i in forget_items]))
    hits = sum(out[row, ids.shape[1]:ids.shape[1] + len(a)].tolist() == a for row, a in enumerate(answers))
    assert hits / len(answers) <= 0.25


def test_purge_command_keep_routing(cli, capsys, sink_dir, tmp_path):
    code, out, err = cli("purge", "--model", sink_dir, "--out", tmp_path / "r1", "--forget-sources", "1,3",
                         "--keep-routing")
    assert code == 0, err
    assert "purged 2 source(s) [1, 3]" in out and "routing kept" in out
    run_config = json.loads((tmp_path / "r1" / "obliviate_config.json").read_text())
    assert run_config["kind"] == "purged-routed" and run_config["purged_sources"] == [1, 3]
    routed_model = load_model(tmp_path / "r1")
    assert type(routed_model) is SinkForCausalLM and routed_model.inference_mode == "route"
    assert routed_model.forgotten == [1, 3] and 1 not in routed_model.known_sources
    assert len(routed_model.known_sources) == 25
    tokenizer = toy_tokenizer(toy_items())
    items = toy_items()
    routes = routed_model.route([qa_prompt(i["question"]) for i in items], tokenizer)
    assert routes and not set(routes) & {1, 3} and all(r >= 0 for r in routes)
    ids, mask = prompt_batch(tokenizer, items[:3])
    with torch.no_grad():
        assert routed_model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id).shape == (3, ids.shape[1] + 2)
    capsys.readouterr()            # the progress bar of loading the model above
    # a second routed purge of the same source: refused before loading; more sources: fine
    code, _, err = cli("purge", "--model", tmp_path / "r1", "--out", tmp_path / "never", "--forget-sources", "3",
                       "--keep-routing")
    _one_error(code, err, "already purged")
    assert not (tmp_path / "never").exists()
    code, out, err = cli("purge", "--model", tmp_path / "r1", "--out", tmp_path / "r2", "--forget-sources", "4",
                         "--keep-routing")
    assert code == 0, err
    assert load_model(tmp_path / "r2").forgotten == [1, 3, 4]
