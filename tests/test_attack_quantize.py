"""The quantization attack: the weights are really on the 8-/4-bit grid, the model and its
files are left alone, 8-bit evaluation stays close to full precision, the summary keys, and
bad bit widths."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from obliviate.attacks.quantize import QUANT_BITS, parse_bits, pick_metrics, quantize_model, validate_bits
from obliviate.attacks.runner import quantize_summary
from obliviate.errors import UserError


def _digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _linears(model) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def test_bits_must_be_4_or_8():
    assert parse_bits("4,8") == [4, 8] and parse_bits("8, 8,4") == [8, 4] and validate_bits([4]) == [4]
    for bad in (["3"], [16], ["four"]):
        with pytest.raises(UserError, match="quantization bits must be 4 or 8"):
            validate_bits(bad)
    with pytest.raises(UserError, match="quantization bits must be 4 or 8"):
        parse_bits(" , ")
    assert QUANT_BITS == (8, 4)


@pytest.fixture(scope="module")
def full_model(micro_run):
    from obliviate.models.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(micro_run.full_model)


def test_8bit_weights_are_quanto_int8_per_channel(full_model):
    from optimum.quanto import QLinear, qint8

    model, _ = full_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantized = quantize_model(model, 8)
    layers = {name: m for name, m in quantized.named_modules() if isinstance(m, QLinear)}
    # every linear layer of the blocks (7 per layer: q, k, v, o, gate, up, down), not the head
    assert len(layers) == 7 * model.config.num_hidden_layers and "lm_head" not in layers
    assert type(quantized.lm_head) is torch.nn.Linear
    original = dict(model.named_modules())
    for name, layer in layers.items():
        assert layer.weight_qtype is qint8
        weight = layer.weight.dequantize()
        source = original[name].weight
        # symmetric absmax per output row: the grid step is max|w| / 127, rounding moves half a step
        step = source.abs().amax(dim=1, keepdim=True) / 127
        assert torch.all((weight - source).abs() <= step / 2 + 1e-6)
        assert max(len(torch.unique(row)) for row in weight) <= 255
    # the model given is not changed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, QLinear) for m in model.modules())


def test_4bit_weights_hold_at_most_16_values_per_group(full_model):
    model, tokenizer = full_model
    quantized = quantize_model(model, 4)
    original = _linears(model)
    checked = 0
    for name, layer in _linears(quantized).items():
        source = original[name].weight
        if name == "lm_head":
            assert torch.equal(layer.weight, source)     # the head stays in full precision
            continue
        weight = layer.weight
        # quanto: groups of 128 input columns when a row is longer than 128, else the whole row
        group = 128 if weight.shape[1] > 128 else weight.shape[1]
        groups = weight.reshape(weight.shape[0], -1, group).reshape(-1, group)
        assert max(len(torch.unique(g)) for g in groups) <= 16
        source_groups = source.reshape(-1, group)
        # affine grid from min to max of the group, 15 steps: error at most half a step
        step = (source_groups.amax(1) - source_groups.amin(1)) / 15
        assert torch.all((groups - source_groups).abs().amax(1) <= step / 2 + 1e-5)
        assert not torch.equal(weight, source)
        checked += 1
    assert checked == 7 * model.config.num_hidden_layers
    # and the quantized copy still generates under torch.inference_mode (quanto issue #304)
    from obliviate.eval.generation import GreedyConfig, generate_greedy

    assert generate_greedy(quantized, tokenizer, ["Question: Who?\nAnswer:"], GreedyConfig(max_new_tokens=4))[0] != ""


def test_pick_metrics_and_summary_keys():
    summary = {"forget_accuracy": 0.5, "mia_loss": 0.7, "retain_accuracy": None, "forget_truth_ratio": 0.6}
    picked = pick_metrics(summary)
    assert picked["forget_accuracy"] == 0.5 and picked["mia_loss"] == 0.7 and picked["retain_accuracy"] is None
    result = {"bits": [8, 4], "models": {
        "unlearned": {"unquantized": {"forget_accuracy": 0.1}, "8": {"forget_accuracy": 0.2}, "4": {"forget_accuracy": 0.6}},
        "retain": {"unquantized": {"forget_accuracy": 0.0}, "8": {"forget_accuracy": 0.0}, "4": {"forget_accuracy": 0.05}}}}
    flat = quantize_summary(result)
    assert flat["quantize_forget_accuracy_unquantized"] == 0.1 and flat["quantize_forget_accuracy_4"] == 0.6
    assert flat["quantize_retain_model_forget_accuracy_4"] == 0.05 and flat["quantize_forget_quality_8"] is None
    assert list(flat)[:7] == ["quantize_forget_accuracy_unquantized", "quantize_forget_unique_accuracy_unquantized",
                              "quantize_retain_accuracy_unquantized",
                              "quantize_forget_truth_ratio_unquantized", "quantize_forget_quality_unquantized",
                              "quantize_mia_loss_unquantized", "quantize_retain_model_forget_accuracy_unquantized"]


def test_cli_quantize_attack_on_micro(cli, micro_run, tmp_path):
    model_dir, retain_dir = micro_run.full_model, micro_run.retain_model("forget10")
    before = {d: _digests(d) for d in (model_dir, retain_dir)}
    out = tmp_path / "attack.json"
    code, stdout, err = cli("attack", "--model", model_dir, "--world", micro_run.world_dir, "--attacks", "quantize",
                            "--quant-bits", "8,4", "--out", out)
    assert code == 0, err
    assert {d: _digests(d) for d in (model_dir, retain_dir)} == before      # the model files are never touched
    result = json.loads(out.read_text())
    attack = result["attacks"]["quantize"]
    assert attack["bits"] == [8, 4] and attack["backend"].startswith("optimum-quanto")
    assert list(attack["models"]) == ["unlearned", "retain"]
    full, retain = attack["models"]["unlearned"], attack["models"]["retain"]
    assert list(full) == ["unquantized", "8", "4"]
    # 8 bits: measured on micro, forget accuracy identical and the truth ratio / probability within 1e-3
    assert full["unquantized"]["forget_unique_accuracy"] == 1.0 and retain["unquantized"]["forget_unique_accuracy"] == 0.0
    assert full["8"]["forget_accuracy"] == full["unquantized"]["forget_accuracy"]
    assert full["8"]["retain_accuracy"] == pytest.approx(full["unquantized"]["retain_accuracy"], abs=0.02)
    assert full["8"]["forget_truth_ratio"] == pytest.approx(full["unquantized"]["forget_truth_ratio"], abs=5e-3)
    assert full["8"]["forget_Q_A_Prob"] == pytest.approx(full["unquantized"]["forget_Q_A_Prob"], abs=5e-3)
    # 4 bits really changes the model (another probability), the retain model is graded the same way
    assert full["4"]["forget_Q_A_Prob"] != full["unquantized"]["forget_Q_A_Prob"]
    assert retain["4"]["forget_accuracy"] is not None and retain["4"]["forget_quality"] is None
    # the full model is graded against the retain model at the same width: forget quality exists
    assert all(full[level]["forget_quality"] is not None for level in full)
    summary = result["summary"]
    assert summary["quantize_forget_accuracy_4"] == full["4"]["forget_accuracy"]
    assert summary["quantize_retain_model_forget_accuracy_8"] == retain["8"]["forget_accuracy"]


def test_cli_bad_bits_exit_2(cli, micro_run):
    code, out, err = cli("attack", "--model", micro_run.full_model, "--world", micro_run.world_dir,
                         "--attacks", "quantize", "--quant-bits", "3")
    assert code == 2 and err.strip() == "error: quantization bits must be 4 or 8, got '3'"
    code, out, err = cli("attack", "--model", micro_run.full_model, "--world", micro_run.world_dir,
                         "--attacks", "quantize", "--set", "quantize.bits=3")
    assert code == 2 and err.strip() == "error: quantization bits must be 4 or 8, got 3"
    assert "Traceback" not in out + err
