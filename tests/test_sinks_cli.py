"""The native path as a new user walks it: train --arch sinks -> eval -> switch -> eval, each a command.

Generation goes through ``model.generate`` with the KV cache (the default), so a change in
how transformers hands the cache to a custom model shows up here as lost accuracy: with
transformers 5.24's rename of ``past_key_values`` to ``cache``, route mode re-routed every
decoding step on the one new token and retain accuracy fell from 1.00 to 0.05-0.10.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from cli_run import run_cli

from obliviate.data.format import qa_prompt
from obliviate.eval.scoring import pad_batch
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.world.loader import load_world


@pytest.fixture(scope="module")
def sink_run(micro_world, micro_sink_model):
    """The micro world and its sink model, made with the command line (conftest.micro_sink_model)."""

    return micro_world, micro_sink_model, run_cli


def _summary(path) -> dict:
    return json.loads(path.read_text())["summary"]


def test_sink_model_answers_and_forgets_through_the_command_line(sink_run, tmp_path):
    world, model_dir, call = sink_run
    call("eval", "--model", model_dir, "--world", world, "--out", tmp_path / "full.json")
    full = _summary(tmp_path / "full.json")
    # route mode (the default) with cached greedy decoding recalls the unique facts (micro seed 0:
    # retain >= 0.9, forget 0.875); the cache bug this guards against gave 0.05-0.10
    assert full["retain_unique_accuracy"] >= 0.9
    assert full["forget_unique_accuracy"] >= 0.8
    assert full["retain_shared_accuracy"] >= 0.9

    call("unlearn", "--method", "switch", "--model", model_dir, "--world", world, "--out", tmp_path / "switched")
    call("eval", "--model", tmp_path / "switched", "--world", world, "--out", tmp_path / "switched.json")
    switched = _summary(tmp_path / "switched.json")
    assert switched["forget_unique_accuracy"] <= 0.2
    assert switched["retain_unique_accuracy"] >= 0.9
    assert switched["forget_shared_accuracy"] >= 0.5


@torch.inference_mode()
def _greedy(model, tokenizer, prompts, use_cache: bool, **kwargs) -> list[list[int]]:
    encoded = tokenizer(list(prompts))["input_ids"]
    input_ids, attention_mask = pad_batch(encoded, tokenizer.pad_token_id, "left")
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, use_cache=use_cache, **kwargs)
    return out[:, input_ids.shape[1]:].tolist()


def test_cached_generation_equals_uncached_in_every_mode(sink_run):
    world_dir, model_dir, _ = sink_run
    model, tokenizer = load_model_and_tokenizer(model_dir)
    world = load_world(world_dir)
    prompts = [qa_prompt(q["question"]) for q in world.qa_for("retain")[:12]]
    source = int(world.qa_for("retain")[0]["source_id"])
    for mode, kwargs in (("route", {}), ("on", {"source": source}), ("backbone", {}), ("all", {})):
        with model.mode(mode, **kwargs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cached = _greedy(model, tokenizer, prompts, use_cache=True)
            if mode == "route":
                # the route is decided on the prompt and kept for every decoding step: the same
                # tokens as pinning each row to its routed source (without a cache, where each
                # step would otherwise re-route on the text so far)
                routes = torch.tensor(model.route(prompts, tokenizer))
                assert len(set(routes.tolist())) > 1
                uncached = _greedy(model, tokenizer, prompts, use_cache=False, source_ids=routes)
            else:
                uncached = _greedy(model, tokenizer, prompts, use_cache=False)
            assert cached == uncached, mode
            # a renamed or ignored cache argument announces itself as a warning first
            assert not [w for w in caught if "past_key_values" in str(w.message) or "cache" in str(w.message)]
