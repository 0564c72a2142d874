"""Every method and metric on Llama, GPT-2, GPT-NeoX, Qwen2 and Mistral-style models.

Each architecture is built as a tiny random model (hidden 32, 2 layers) over a BPE
tokenizer trained on the micro world, saved with ``save_pretrained``, then driven through
the CLI exactly as a user would: ``obliviate unlearn`` with one method per architecture
(rotating so grad_diff, npo, simnpo, rmu and whp each run once) and ``obliviate eval``
against the starting model as reference. GPT-2 and GPT-NeoX get a GPT-2-style tokenizer
(no BOS added, no pad token), the others a Llama-style one (BOS, pad).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from obliviate.data.format import qa_continuation, qa_prompt

ARCHS = ("llama", "gpt2", "gpt_neox", "qwen2", "mistral")
# arch -> method: every post-hoc family once; RMU on GPT-2 (transformer.h, Conv1D, tuple outputs),
# WHP on GPT-NeoX (untied head, partial rotary, a tokenizer without BOS or pad)
METHODS = {"llama": "grad_diff", "gpt2": "rmu", "gpt_neox": "whp", "qwen2": "npo", "mistral": "simnpo"}
GPT2_STYLE = ("gpt2", "gpt_neox")
LAYER_LISTS = {"llama": "model.layers", "gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers",
               "qwen2": "model.layers", "mistral": "model.layers", "opt": "model.decoder.layers"}
STEPS = 2


def _threads():
    torch.set_num_threads(1)


def gpt2_style(tokenizer):
    """The same vocabulary as a GPT-2/Pythia tokenizer: no BOS prepended, bos = eos, no pad token."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="</s>", eos_token="</s>", unk_token="<unk>")


def arch_config(arch: str, tokenizer, initializer_range: float = 0.02):
    from transformers import (
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        OPTConfig,
        Qwen2Config,
    )

    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, max_position_embeddings=512, initializer_range=initializer_range, **ids)
    if arch == "llama":
        return LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=True)
    if arch == "gpt2":
        return GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512,
                          initializer_range=initializer_range, **ids)
    if arch == "gpt_neox":
        return GPTNeoXConfig(**common, rotary_pct=0.5, tie_word_embeddings=False)
    if arch == "opt":   # an MLP without its own module (fc1/fc2 sit in the layer)
        return OPTConfig(vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                         num_attention_heads=2, word_embed_proj_dim=32, max_position_embeddings=512,
                         init_std=initializer_range, **ids)
    if arch == "qwen2":
        return Qwen2Config(**common, num_key_value_heads=1, tie_word_embeddings=True)
    return MistralConfig(**common, num_key_value_heads=1, sliding_window=None, tie_word_embeddings=False)


def build_model(arch: str, tokenizer, initializer_range: float = 0.02, seed: int = 0):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(arch_config(arch, tokenizer, initializer_range)).eval()


@pytest.fixture(scope="module")
def tokenizers(micro_world):
    from obliviate.tokenizer import train_tokenizer
    from obliviate.world.loader import load_world

    world = load_world(micro_world)
    texts = [d["text"] for d in world.corpus] + [q["question"] + " " + q["answer"] for q in world.qa]
    llama_style = train_tokenizer(texts, vocab_size=512)
    return {"llama": llama_style, "gpt2": gpt2_style(llama_style)}


def tokenizer_for(tokenizers, arch):
    return tokenizers["gpt2" if arch in GPT2_STYLE else "llama"]


@pytest.fixture(scope="module")
def arch_models(tokenizers, tmp_path_factory) -> dict[str, Path]:
    """``{arch: saved model dir}``: tiny random models with their tokenizers."""
    _threads()
    root = tmp_path_factory.mktemp("archs")
    paths = {}
    for arch in ARCHS:
        tokenizer = tokenizer_for(tokenizers, arch)
        model = build_model(arch, tokenizer)
        paths[arch] = root / arch / "base"
        model.save_pretrained(paths[arch])
        tokenizer.save_pretrained(paths[arch])
    return paths


def _forget_retain_nll(model_dir: Path, world, forget: str) -> tuple[float, float]:
    from obliviate.eval.scoring import score_continuations
    from obliviate.models.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_dir)
    means = []
    for split in (forget, "retain"):
        pairs = [(qa_prompt(q["question"]), qa_continuation(q["answer"])) for q in world.qa_for(split)]
        means.append(float(np.mean([s.avg_nll for s in score_continuations(model, tokenizer, pairs)])))
    return means[0], means[1]


def _state(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("arch", ARCHS)
def test_unlearn_and_evaluate_every_architecture(arch, arch_models, micro_world, cli, tmp_path):
    """``obliviate unlearn`` (one method) then ``obliviate eval`` on a tiny model of each architecture."""
    from obliviate.eval.evaluator import SUMMARY_KEYS
    from obliviate.methods.rmu import default_param_regex
    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.world.loader import load_world

    _threads()
    method = METHODS[arch]
    forget = "saga" if method == "whp" else "forget10"
    base, out = arch_models[arch], tmp_path / f"{method}-{forget}"
    world = load_world(micro_world)
    settings = (["reinforce_steps=2", f"finetune_steps={STEPS}", "block_size=64", "batch_size=4"] if method == "whp"
                else [f"max_steps={STEPS}", "batch_size=4", "progress=false"])
    relative = method in ("grad_diff", "npo", "simnpo")
    before = _forget_retain_nll(base, world, forget) if relative else None

    code, stdout, stderr = cli("unlearn", "--method", method, "--model", base, "--world", micro_world,
                               "--forget", forget, "--out", out, "--no-eval",
                               *[arg for s in settings for arg in ("--set", s)])
    assert code == 0, stderr
    run_config = json.loads((out / "obliviate_config.json").read_text())
    assert run_config["method"] == method and run_config["steps"] == STEPS

    # the method changed the weights, and only where it should
    old, new = _state(base), _state(out)
    assert old.keys() == new.keys()
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    if method == "rmu":
        pattern = default_param_regex(LAYER_LISTS[arch], 0)    # layer (2 - 1) // 2 = 0: its MLP only
        expected = {name for name in old if re.search(pattern, name)}
        assert expected and changed == expected, (sorted(changed), pattern)
    else:
        assert len(changed) >= len(old) // 2
    if method == "whp":
        report = run_config["report"]
        assert report["translated_occurrences"] > 0 and report["finetune_steps"] == STEPS
        assert report["trained_positions"] > 0
    if relative:
        # the forget answers lose ground against the retain answers (a random model's absolute NLL
        # also moves with the shared QA format, which the retain term teaches)
        after = _forget_retain_nll(out, world, forget)
        assert after[0] - after[1] > before[0] - before[1] + 1e-3, (before, after)

    # the saved model reloads with its head tied (or not) as the architecture says
    model, tokenizer = load_model_and_tokenizer(out)
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied == bool(model.config.tie_word_embeddings or arch == "gpt2")
    assert tokenizer.pad_token is not None

    # obliviate eval against the starting model as reference
    result_path = tmp_path / "eval.json"
    code, stdout, stderr = cli("eval", "--model", out, "--world", micro_world, "--forget", forget,
                               "--retain-model", base, "--out", result_path, "--batch-size", "16")
    assert code == 0, stderr
    assert "forget_quality" in stdout
    result = json.loads(result_path.read_text())
    summary = result["summary"]
    assert set(SUMMARY_KEYS) <= set(summary)
    assert 0.0 <= summary["forget_quality"] <= 1.0
    for key in ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["privleak"] is not None and summary["model_utility"] is not None
    assert summary["familiarity_completion"] is not None and summary["familiarity_probability"] is not None
    assert result["config"]["dtype"] == "float32"
    # per-item numbers are the scoring engine's on the reloaded model (QA answers scored with EOS)
    from obliviate.eval.scoring import score_continuations

    items = world.qa_for(forget)
    scores = score_continuations(model, tokenizer, [(qa_prompt(q["question"]), qa_continuation(q["answer"]))
                                                    for q in items], append_eos=True)
    rows = result["per_item"]["qa"]["forget"]
    for q, s in zip(items, scores):
        assert rows[str(q["id"])]["avg_nll"] == pytest.approx(s.avg_nll, abs=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_padding_does_not_change_scores_or_generations(arch, tokenizers, micro_world):
    """Left padding (position ids from the mask), right padding and single rows agree."""
    from obliviate.eval.generation import GreedyConfig, generate_greedy
    from obliviate.eval.scoring import ScoringConfig, score_continuations
    from obliviate.world.loader import load_world

    _threads()
    tokenizer = tokenizer_for(tokenizers, arch)
    if tokenizer.pad_token is None:   # what load_tokenizer does for GPT-2-style tokenizers
        tokenizer = gpt2_style(tokenizers["llama"])
        tokenizer.pad_token = tokenizer.eos_token
    # a wide initialisation: peaked, varied predictions (a default random model repeats one token)
    model = build_model(arch, tokenizer, initializer_range=0.5)
    items = load_world(micro_world).qa[:10]
    pairs = [(qa_prompt(q["question"]), qa_continuation(q["answer"])) for q in items]
    single = [s.nll_sum for s in score_continuations(model, tokenizer, pairs, ScoringConfig(batch_size=1))]
    for side in ("left", "right"):
        batched = score_continuations(model, tokenizer, pairs, ScoringConfig(batch_size=10, padding_side=side))
        np.testing.assert_allclose([s.nll_sum for s in batched], single, rtol=1e-4, atol=1e-3)
    prompts = [p for p, _ in pairs]
    config = GreedyConfig(max_new_tokens=6, batch_size=1)
    one_by_one = [generate_greedy(model, tokenizer, [p], config)[0] for p in prompts]
    together = generate_greedy(model, tokenizer, prompts, GreedyConfig(max_new_tokens=6, batch_size=10))
    assert together == one_by_one
    assert len(set(together)) > 1   # the check means something only if generations differ


@pytest.mark.parametrize("arch", ARCHS + ("opt",))
def test_rmu_finds_the_decoder_layers(arch, tokenizers):
    """RMU's layer discovery, its default parameter choice and its hidden-state hook on each architecture."""
    from obliviate.errors import UserError
    from obliviate.methods.rmu import (
        capture_output,
        default_param_regex,
        find_decoder_layers,
        mlp_name,
    )

    _threads()
    tokenizer = tokenizer_for(tokenizers, arch)
    model = build_model(arch, tokenizer)
    name, layers = find_decoder_layers(model)
    assert name == LAYER_LISTS[arch] and len(layers) == 2
    assert find_decoder_layers(model, LAYER_LISTS[arch])[1] is layers
    mlp = mlp_name(layers[1])
    assert mlp == (None if arch == "opt" else "mlp")
    chosen = [n for n, _ in model.named_parameters() if re.search(default_param_regex(name, 1, mlp=mlp), n)]
    in_layers = [n for n, _ in model.named_parameters() if n.startswith(f"{name}.")]
    assert chosen and set(chosen) <= set(in_layers)
    # the MLPs of layers 0..1, or (no MLP module) the whole of both layers
    assert set(chosen) == {n for n in in_layers if ".mlp." in n or mlp is None}
    assert {n.split(".")[len(name.split("."))] for n in chosen} == {"0", "1"}
    with capture_output(layers[1], []) as store:
        model(input_ids=torch.tensor([[5, 6, 7]]))
    assert store[-1].shape == (1, 3, 32)
    with pytest.raises(UserError, match="names no module"):
        find_decoder_layers(model, "decoder.blocks")


# ---- dtype / device map ---------------------------------------------------------------------------


def test_bf16_evaluation_matches_float32(arch_models, micro_world, cli, tmp_path):
    _threads()
    results = {}
    for dtype, placement in (("float32", ()), ("bfloat16", ("--device-map", "auto"))):
        path = tmp_path / f"{dtype}.json"
        code, _, stderr = cli("eval", "--model", arch_models["llama"], "--world", micro_world, "--out", path,
                              "--dtype", dtype, *placement)
        assert code == 0, stderr
        results[dtype] = json.loads(path.read_text())
    assert results["bfloat16"]["config"]["dtype"] == "bfloat16"
    assert results["bfloat16"]["config"]["device_map"] == "auto"
    full, half = (results[d]["per_item"]["qa"]["forget"] for d in ("float32", "bfloat16"))
    assert full.keys() == half.keys()
    for item_id in full:
        assert half[item_id]["avg_nll"] == pytest.approx(full[item_id]["avg_nll"], rel=2e-2)
        assert half[item_id]["avg_nll"] != full[item_id]["avg_nll"]   # it really ran in bf16


def test_dtype_and_device_map_loading(arch_models, micro_world, cli, tmp_path, monkeypatch):
    from obliviate.models.loading import load_model

    _threads()
    # (on one device transformers records no hf_device_map: only the placement can be checked here)
    model = load_model(arch_models["qwen2"], dtype="bfloat16", device_map="auto")
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"   # "auto" takes the GPU when there is one
    assert next(model.parameters()).dtype == torch.bfloat16 and model.device.type == expected_device
    bf16_dir = tmp_path / "bf16"
    model.save_pretrained(bf16_dir)
    shutil.copy(arch_models["qwen2"] / "tokenizer.json", bf16_dir)
    assert load_model(bf16_dir, dtype="auto").dtype == torch.bfloat16   # auto: the checkpoint's dtype
    assert load_model(bf16_dir, dtype="float32").dtype == torch.float32
    assert load_model(arch_models["qwen2"], dtype="float16").dtype == torch.float16

    code, _, stderr = cli("eval", "--model", arch_models["qwen2"], "--world", micro_world, "--out",
                          tmp_path / "x.json", "--dtype", "float8")
    assert code == 2 and "unknown dtype 'float8'" in stderr
    code, _, stderr = cli("eval", "--model", arch_models["qwen2"], "--world", micro_world, "--out",
                          tmp_path / "x.json", "--device", "cpu", "--device-map", "auto")
    assert code == 2 and "not both" in stderr

    # a torch build without half-precision CPU kernels: one clear line, exit 2
    real_linear = torch.nn.functional.linear

    def no_half_linear(x, weight, bias=None):
        if x.dtype == torch.float16:
            raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")
        return real_linear(x, weight, bias)

    monkeypatch.setattr(torch.nn.functional, "linear", no_half_linear)
    for command in (("eval", "--out", tmp_path / "x.json"),
                    ("unlearn", "--method", "grad_diff", "--out", tmp_path / "u")):
        code, _, stderr = cli(*command, "--model", arch_models["qwen2"], "--world", micro_world, "--dtype", "float16")
        assert code == 2, stderr
        assert "float16 is not supported on CPU" in stderr and "--dtype float32" in stderr
        assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1


# ---- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ("gpt2", "llama"))
def test_model_directory_without_tokenizer(arch, arch_models, micro_world, cli, tmp_path):
    """GPT-2's AutoTokenizer would silently build an EMPTY tokenizer here: refuse, naming the directory."""
    bare = tmp_path / f"{arch}-no-tokenizer"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(arch_models[arch] / name, bare / name)
    for command in (("eval", "--out", tmp_path / "x.json"),
                    ("unlearn", "--method", "npo", "--out", tmp_path / "u", "--no-eval")):
        code, _, stderr = cli(*command, "--model", bare, "--world", micro_world)
        assert code == 2, stderr
        assert f"no tokenizer in {bare}" in stderr
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "u").exists()
