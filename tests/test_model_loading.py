"""Loading a model directory: user mistakes are one-line UserErrors; models/ stands on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from obliviate.errors import UserError
from obliviate.models.loading import check_device, check_device_map, load_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=40, max_position_embeddings=32)
    path = tmp_path_factory.mktemp("tiny") / "model"
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture
def copy_of(model_dir, tmp_path):
    shutil.copytree(model_dir, tmp_path / "copy")
    return tmp_path / "copy"


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without a GPU, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    if getattr(torch, "accelerator", None) is not None:
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("damage", ["truncated", "last byte cut", "header cut", "empty", "not safetensors"])
def test_corrupt_weights_name_the_file(copy_of, damage):
    weights = copy_of / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "last byte cut": data[:-1], "header cut": data[:6],
                         "empty": b"", "not safetensors": b"this is not a weights file\n" * 20}[damage])
    with pytest.raises(UserError, match="truncated or corrupt") as error:
        load_model(copy_of)
    assert str(weights) in one_line(error)


def test_not_a_model_directory(copy_of, tmp_path):
    (copy_of / "config.json").unlink()
    with pytest.raises(UserError, match=r"not a Hugging Face model directory \(no config\.json\)") as error:
        load_model(copy_of)
    assert str(copy_of) in one_line(error)
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(UserError, match="not a directory"):
        load_model(copy_of / "model.safetensors")


def test_cuda_without_cuda_is_one_clear_line(model_dir, no_cuda):
    for device in ("cuda", "cuda:0", torch.device("cuda", 1)):
        with pytest.raises(UserError, match="is not available on this machine") as error:
            load_model(model_dir, device=device)
        assert "--device cpu" in one_line(error)
    for device_map in ("cuda", "cuda:0", {"": "cuda"}, {"model": "cuda:0", "lm_head": "cpu"}, 0, {"": 0}):
        with pytest.raises(UserError, match="device map .* places weights on .* not available") as error:
            load_model(model_dir, device_map=device_map)
        one_line(error)
    with pytest.raises(UserError, match="not a torch device"):
        load_model(model_dir, device="gpu0")
    # what does exist still loads; strategies and cpu/disk placements are left to accelerate
    assert load_model(model_dir, device="cpu").device.type == "cpu"
    for fine in ("auto", "sequential", "cpu", {"": "cpu"}, {"model": "cpu", "lm_head": "disk"}):
        check_device_map(fine)


def test_cuda_index_past_the_last_gpu(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_device("cuda:0")
    with pytest.raises(UserError, match=r"only 1 CUDA device\(s\)"):
        check_device("cuda:1")


def test_cli_device_cuda_without_cuda_exits_with_one_error_line(cli, micro_world, model_dir, no_cuda, tmp_path):
    code, _, stderr = cli("eval", "--model", model_dir, "--world", micro_world, "--out", tmp_path / "x.json",
                          "--device", "cuda")
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'cuda' is not available on this machine" in errors[0]
    assert "Traceback" not in stderr and not (tmp_path / "x.json").exists()


def test_models_load_both_own_types_without_icul():
    """``obliviate.models`` sits below ``obliviate.icul``: loading registers the sink and ICUL model
    types without importing the ICUL package."""
    code = ("import sys\n"
            "import obliviate.models.loading\n"
            "from transformers import AutoConfig, MODEL_FOR_CAUSAL_LM_MAPPING\n"
            "for model_type, name in (('obliviate_sinks', 'SinkForCausalLM'), ('obliviate_icul', 'InContextUnlearningLM')):\n"
            "    assert MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.for_model(model_type))].__name__ == name\n"
            "assert not [m for m in sys.modules if m.startswith('obliviate.icul')]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
