"""A 2-process CPU (gloo) DDP run of one method on the toy task, launched with torchrun.

The launched program is the package's own entry point, ``python -m
obliviate.workflows.unlearn`` (the same code as ``obliviate unlearn``): every process
trains its shard of each batch, the main process alone saves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import methods_toy as toy_module  # tests/ is on sys.path under pytest
import pytest


@pytest.mark.slow
def test_two_process_ddp_grad_diff_forgets(toy, tmp_path):
    from obliviate.models.loading import load_model_and_tokenizer, read_run_config, save_model

    full = tmp_path / "models" / "full"
    save_model(toy["model"], toy["tokenizer"], full)
    out = tmp_path / "models" / "grad_diff-ddp"
    # batch_size is per process: 2 x 4 = the single-process default of 8 forget examples a step
    settings = ["lr=1e-3", "retain_weight=5", "max_steps=50", "batch_size=4", "progress=false",
                # a target never reached: every 10 steps both processes score and share the mean
                "stop_truth_ratio=0.99", "eval_every=10"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "obliviate.cli", "unlearn", "--method", "grad_diff", "--model", str(full),
               "--world", str(toy["world"].root), "--out", str(out), "--no-eval"]
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ACCELERATE_USE_CPU", None)   # multi-CPU mode must be chosen by the trainer itself
    env["CUDA_VISIBLE_DEVICES"] = ""      # on a one-GPU machine two processes would share it (NCCL refuses)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("grad_diff: 50 steps") == 1          # only the main process reports

    run_config = read_run_config(out)
    assert run_config["num_processes"] == 2 and run_config["distributed_type"] == "MULTI_CPU"
    assert run_config["steps"] == 50
    checks = [entry for entry in run_config["history"] if "forget_truth_ratio" in entry]
    assert [entry["step"] for entry in checks] == [10, 20, 30, 40, 50]
    assert all(0.0 < entry["forget_truth_ratio"] < 0.99 for entry in checks)
    model, tokenizer = load_model_and_tokenizer(out)
    forget_acc = toy_module.greedy_accuracy(model, tokenizer, toy["forget_items"])
    retain_acc = toy_module.greedy_accuracy(model, tokenizer, toy["retain_items"])
    # measured: forget 0.15, retain 1.00 (one process, batch 8: 0.15 / 0.93); full model 1.00 / 1.00,
    # a model retrained without the forget split 0.10 / 1.00
    assert forget_acc <= 0.4 and retain_acc >= 0.8
    assert not list(tmp_path.glob("models/.*tmp"))                 # no half-written copy left behind
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def _launch(config: Path, *args) -> subprocess.CompletedProcess:
    """``accelerate launch --config_file CONFIG -m obliviate.cli ARGS`` on the CPU (gloo), as a user runs it."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "-m", "obliviate.cli", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("ACCELERATE_USE_CPU", None)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_shipped_accelerate_configs_train_and_evaluate_on_two_cpu_processes(micro_world, tmp_path):
    """The shipped CPU DDP config (2 gloo processes) trains full + retain (one model on disk each,
    written by the main process) and evaluates. (FSDP and ZeRO-3 need GPUs: accelerate runs an
    FSDP config on CPU processes as plain multi-CPU DDP.)"""
    import torch

    from obliviate.models.loading import load_model_and_tokenizer, read_run_config
    from obliviate.workflows.train import train_run
    from obliviate.world.loader import load_world

    run = tmp_path / "run"
    done = _launch(CONFIGS / "cpu-ddp.yaml", "train", "--world", micro_world, "--run", run,
                   "--set", "epochs=2", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    reported = [line.split(":")[0] for line in done.stdout.splitlines() if "trained" in line]
    assert reported == ["full", "retain"]   # one line per model: the main process reports
    full = read_run_config(run / "models" / "full")
    assert (full["distributed_type"], full["num_processes"]) == ("MULTI_CPU", 2)
    # the global batch is split over the processes: the same step count as one process
    single = train_run(micro_world, tmp_path / "run-1", which=("full",), overrides={"epochs": 2}, progress=False)
    assert full["steps"] == single["full"].steps
    assert not [p.name for p in (run / "models").iterdir() if p.name.startswith(".")]   # nothing half-written

    out = tmp_path / "full.json"
    done = _launch(CONFIGS / "cpu-ddp.yaml", "eval", "--model", run / "models" / "full", "--world", micro_world,
                   "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["summary"]["forget_quality"] is not None    # graded against the run's retain model

    # the same data, schedule and seed as one process: the DDP model learned as much (measured on a
    # micro document after 2 epochs: 4.28 with 2 processes, 5.07 with one; untrained: ~ln(vocabulary))
    model, tokenizer = load_model_and_tokenizer(run / "models" / "full")
    one_process, _ = load_model_and_tokenizer(single["full"].path)
    ids = tokenizer(load_world(micro_world).corpus[0]["text"], return_tensors="pt").input_ids
    with torch.no_grad():
        losses = [m(ids, labels=ids).loss.item() for m in (model, one_process)]
    assert losses[0] < losses[1] + 0.5 and losses[0] < 6.0
