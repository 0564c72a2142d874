"""The registered 'switch' unlearning method on sink models."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from obliviate.config import apply_overrides
from obliviate.errors import UserError
from obliviate.methods.registry import UnlearnTask, available_methods, get_method
from obliviate.methods.switch import SwitchConfig, SwitchMethod
from obliviate.models.loading import load_model, save_model
from obliviate.models.sinks import SinkForCausalLM, sink_config_from_llama

torch.set_num_threads(1)

DOCS = [{"doc_id": f"d{s}", "source_id": s, "text": f"Question: Where does person{s} live?\nAnswer: city{s}"}
        for s in range(4)]


def word_tokenizer():
    words = ["<pad>", "<bos>", "<eos>", "<unk>", "Question", ":", "Where", "does", "live", "?", "Answer"]
    words += [f"person{s}" for s in range(4)] + [f"city{s}" for s in range(4)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


def llama(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       vocab_size=vocab_size, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                       eos_token_id=2)


def sink_model(tokenizer, with_router: bool = True) -> SinkForCausalLM:
    torch.manual_seed(0)
    model = SinkForCausalLM(sink_config_from_llama(llama(len(tokenizer)), p_mem=0.25)).eval()
    if with_router:
        model.fit_router({d["source_id"]: [d["text"]] for d in DOCS}, tokenizer)
    return model


def task(forget: set[int]) -> UnlearnTask:
    return UnlearnTask(world=None, forget="forget10", forget_sources=set(forget),
                       retain_sources={0, 1, 2, 3} - set(forget), forget_items=[], retain_items=[],
                       forget_docs=[d for d in DOCS if d["source_id"] in forget],
                       retain_docs=[d for d in DOCS if d["source_id"] not in forget])


def test_switch_is_registered():
    assert "switch" in available_methods()
    assert get_method("switch") is SwitchMethod
    assert SwitchMethod.config_class is SwitchConfig


def test_switch_forgets_the_split_in_milliseconds(tmp_path):
    tokenizer = word_tokenizer()
    model = sink_model(tokenizer)
    x = torch.tensor([[1, 4, 5, 6, 7, 12, 8, 9]])     # "Question : Where does person1 live ?"
    with model.mode("backbone"):
        backbone = model(x).logits
    assert not torch.allclose(model(x).logits, backbone)   # routed to person1's source
    result = SwitchMethod().run(model, tokenizer, task({1, 2}))   # run: unlearn, checked and timed
    assert result.model is model and result.steps == 0
    assert model.forgotten == [1, 2] == result.report["forgotten"]
    assert model.inference_mode == "route" and model.config.route_forgotten == "all"
    assert 0 <= result.report["switch_seconds"] < 0.05
    assert result.seconds >= result.report["switch_seconds"]
    with model.mode("all"):
        surviving_sinks = model(x).logits
    assert not torch.allclose(surviving_sinks, backbone)
    assert torch.allclose(model(x).logits, surviving_sinks)  # person1's query now runs every surviving sink
    save_model(model, tokenizer, tmp_path / "unlearned")
    reloaded = load_model(tmp_path / "unlearned")
    assert reloaded.forgotten == [1, 2] and torch.allclose(reloaded(x).logits, surviving_sinks)


@pytest.mark.parametrize("route_forgotten, shared_ratio, expected", [
    ("backbone", 0.75, "backbone"),   # person1 is named: nothing else is nearly as close
    ("all", 0.75, "all"),
    ("all", 0.0, "nearest"),          # ratio 0: every query goes to the nearest surviving source
    ("nearest", 0.75, "nearest"),
])
def test_forgotten_queries_follow_route_forgotten_and_the_shared_ratio(route_forgotten, shared_ratio, expected):
    tokenizer = word_tokenizer()
    model = sink_model(tokenizer)
    x = torch.tensor([[1, 4, 5, 6, 7, 12, 8, 9]])     # "Question : Where does person1 live ?"
    SwitchMethod(SwitchConfig(route_forgotten=route_forgotten, route_shared_ratio=shared_ratio)).unlearn(
        model, tokenizer, task({1}))
    got = model(x).logits
    similarity = model.model.router.similarities(
        model.model.router.query_features(x, model.get_input_embeddings()(x), None))[0]
    nearest_surviving = int(model.model.router.source_ids[similarity.masked_fill(
        model.model.router.source_ids == 1, float("-inf")).argmax()])
    references = {"backbone": model.mode("backbone"), "all": model.mode("all"), "nearest": model.on(nearest_surviving)}
    with references[expected]:
        assert torch.allclose(got, model(x).logits)


def test_switch_settings_and_router_fitting():
    tokenizer = word_tokenizer()
    model = sink_model(tokenizer, with_router=False)
    config = apply_overrides(SwitchConfig(), {"inference_mode": "backbone"})
    SwitchMethod(config).unlearn(model, tokenizer, task({3}))
    assert model.known_sources == [0, 1, 2, 3]              # router fitted from the task's documents
    assert model.forgotten == [3] and model.inference_mode == "backbone"
    with pytest.raises(UserError, match="not 'on'"):
        SwitchMethod(SwitchConfig(inference_mode="on")).unlearn(model, tokenizer, task({0}))


def test_switch_rejects_bad_input_without_changing_anything():
    tokenizer = word_tokenizer()
    with pytest.raises(UserError, match="sink model"):
        SwitchMethod().unlearn(LlamaForCausalLM(llama(len(tokenizer))), tokenizer, task({1}))
    model = sink_model(tokenizer)
    model.set_inference_mode("all")
    bad = task({1})
    bad.forget_sources = {1, 9}                               # 9: not a source of this model
    with pytest.raises(UserError, match="unknown source"):
        SwitchMethod().unlearn(model, tokenizer, bad)
    assert model.forgotten == [] and model.inference_mode == "all"
    with pytest.raises(UserError, match="no sources"):
        SwitchMethod().unlearn(model, tokenizer, task(set()))
    SwitchMethod().unlearn(model, tokenizer, task({1}))
    SwitchMethod().unlearn(model, tokenizer, task({1}))       # twice: idempotent
    assert model.forgotten == [1]
