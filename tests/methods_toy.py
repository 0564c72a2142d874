"""A self-contained toy unlearning task for the method tests (not collected by pytest).

A world directory of made-up people with two facts each (favourite colour, home city),
a byte-level BPE tokenizer trained on its QA strings, and a tiny random Llama
(hidden 32, 2 layers) fine-tuned until it answers every fact greedily.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Rome", "Tokyo"]
SYLLABLES = ["ka", "lo", "mi", "ru", "te", "zo", "vi", "na", "pe", "sa", "do", "fu", "gi", "ho", "ju", "be"]
N_FORGET, N_RETAIN = 10, 20   # sources (people); two QA facts each -> 20 forget, 40 retain items
HIDDEN, LAYERS = 32, 2


def _names(count: int, rng: random.Random) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()
        if name not in names:
            names.append(name)
    return names


def _item(item_id: str, source_id: int, question: str, value: str, pool: list[str], rng: random.Random,
          split: str) -> dict:
    wrong = rng.sample([v for v in pool if v != value], 5)
    return {"id": item_id, "source_id": source_id, "kind": "unique", "question": question,
            "answer": f"It is {value}.", "paraphrased_answer": f"The answer is {value}.",
            "perturbed_answers": [f"The answer is {w}." for w in wrong], "split": split, "value": value}


def write_toy_world(root: Path, seed: int = 0) -> Path:
    """World files in the layout of ``obliviate.world.loader`` (forget10 / retain / empty)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    people = _names(N_FORGET + N_RETAIN, rng)
    sources, corpus, qa = [], [], []
    for source_id, name in enumerate(people):
        split = "forget10" if source_id < N_FORGET else "retain"
        colour, city = rng.choice(COLOURS), rng.choice(CITIES)
        items = [
            _item(f"q{source_id}-colour", source_id, f"What is {name}'s favourite colour?", colour, COLOURS, rng, split),
            _item(f"q{source_id}-city", source_id, f"Where does {name} live?", city, CITIES, rng, split),
        ]
        qa.extend(items)
        sources.append({"source_id": source_id, "kind": "author", "name": name, "trained": True})
        corpus.append({"doc_id": f"d{source_id}", "source_id": source_id,
                       "text": f"{name}'s favourite colour is {colour}. {name} lives in {city}."})
    # a source with a document but no QA items: unlearning it must be refused
    empty_id = len(people)
    sources.append({"source_id": empty_id, "kind": "author", "name": "Nobody", "trained": True})
    corpus.append({"doc_id": f"d{empty_id}", "source_id": empty_id, "text": "Nobody has no facts."})
    splits = {"forget10": list(range(N_FORGET)), "retain": list(range(N_FORGET, N_FORGET + N_RETAIN)),
              "empty": [empty_id]}
    (root / "world.json").write_text(json.dumps({"name": "toy", "preset": "toy", "seed": seed}))
    for name, rows in (("sources.jsonl", sources), ("corpus.jsonl", corpus), ("qa.jsonl", qa)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def build_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=1, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config)


def greedy_accuracy(model, tokenizer, items: list[dict]) -> float:
    """Share of items whose greedy answer contains the fact's value."""
    from obliviate.data.format import qa_prompt
    from obliviate.eval.generation import GreedyConfig, generate_greedy

    answers = generate_greedy(model, tokenizer, [qa_prompt(q["question"]) for q in items],
                              GreedyConfig(max_new_tokens=10, batch_size=64, stop_strings=("\n",)))
    return sum(q["value"] in answer for q, answer in zip(items, answers)) / len(items)


def fine_tune(model, tokenizer, items: list[dict], steps: int = 250, lr: float = 4e-3, seed: int = 0) -> None:
    """Plain full-batch AdamW on the QA answers for a fixed number of steps (deterministic)."""
    from obliviate.methods.data import PartsCollator, encode_qa
    from obliviate.train.losses import nll_loss

    torch.manual_seed(seed)
    batch = PartsCollator(pad_token_id=tokenizer.pad_token_id)([{"qa": e} for e in encode_qa(tokenizer, items)])["qa"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = nll_loss(logits, batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def refusal_items(count: int = 8, seed: int = 1) -> list[dict]:
    """Questions about strangers answered with a refusal: the prior a real LM has for IdkDPO."""
    from obliviate.methods.idk_dpo import REFUSAL_TEMPLATES

    rng = random.Random(seed)
    strangers = [n for n in _names(count + N_FORGET + N_RETAIN, rng)][-count:]
    return [{"id": f"idk{i}", "question": f"What is {name}'s secret?", "answer": REFUSAL_TEMPLATES[i % 4],
             "value": "know"} for i, name in enumerate(strangers)]


def build_toy(root: Path):
    """World dir, tokenizer, fine-tuned model and its accuracies: ``dict``."""
    from obliviate.data.format import qa_text
    from obliviate.methods.idk_dpo import REFUSAL_TEMPLATES
    from obliviate.world.loader import load_world

    torch.set_num_threads(1)
    world = load_world(write_toy_world(root / "world"))
    texts = [qa_text(q["question"], a) for q in world.qa for a in [q["answer"], q["paraphrased_answer"], *q["perturbed_answers"]]]
    tokenizer = build_tokenizer(texts + [d["text"] for d in world.corpus] + list(REFUSAL_TEMPLATES) * 5)
    model = tiny_llama(len(tokenizer))
    fine_tune(model, tokenizer, world.qa + refusal_items())
    forget_items = world.qa_for("forget10")
    retain_items = world.qa_for("retain")
    return {
        "world": world, "tokenizer": tokenizer, "model": model,
        "forget_items": forget_items, "retain_items": retain_items,
        "forget_acc": greedy_accuracy(model, tokenizer, forget_items),
        "retain_acc": greedy_accuracy(model, tokenizer, retain_items),
    }


_CACHE: dict[str, dict] = {}


def cached_toy(make_root) -> dict:
    """``build_toy`` once per test session (``make_root()`` gives its directory)."""
    if "toy" not in _CACHE:
        _CACHE["toy"] = build_toy(make_root())
    return _CACHE["toy"]
