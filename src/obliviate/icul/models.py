"""Small causal LMs for the classification task: tokenizer, base model, fine-tuning.

A model trained from scratch on single ``"{text} {label}"`` lines has no in-context
ability at all, and in-context unlearning relies on one: the model must notice that the
query already appeared in its context, with some label, and let that label count.
Pretrained LLMs get this from pretraining (induction heads); here the base model gets it
from meta-training on few-shot sequences (MetaICL-style, ``"{t1} {l1}\\n{t2} {l2}\\n..."``)
built from a review pool disjoint from the task's data:

- shown labels are noisy (``label_noise``);
- with probability ``repeat_rate`` the last line repeats an earlier text whose shown label
  was drawn at random, and the repeat carries that shown label with probability
  ``copy_rate`` (else the true one), so that the context, not only the text, decides;
- the repeated line is trained on all its tokens (not only its label): predicting a
  repeated text is what grows induction heads, which the label copy then uses.

Every shadow and target model is then fine-tuned from this one base on its own training
points (label tokens only), like the paper's fine-tuned LLMs. In-context ability is slow
to appear in a model this small (a few thousand steps); the bench uses that many, the
tests far fewer.

Measured (docs/results/icul/README.md, a sweep on one H100): only a 128-wide 4-layer base
trained with the language-model loss on every token and a repeat in every sequence (7000
steps at lr 1e-3, the defaults below) reads labels from its context: 0.95 of its
predictions follow a flipped copy of the query placed right before it (0.12 for another
query), 0.47 with 4 demonstrations in between; earlier settings (64-wide, labels only,
up to 5 lines) stayed under 0.2. It costs 31 minutes on 2 CPU threads, 5 on an H100.
"""

from __future__ import annotations

import copy
import random
import tempfile
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from obliviate.errors import UserError
from obliviate.icul.prompts import flip_label, labelled
from obliviate.models.lora import LoraSettings, apply_lora, merge_lora
from obliviate.tokenizer import train_tokenizer
from obliviate.train.data import CausalCollator
from obliviate.train.losses import IGNORE_INDEX
from obliviate.world.classification import LABELS, ClassificationExample, generate_reviews


@dataclass
class TinyLlamaSpec:
    # the smallest base found that reads labels from its context (docs/results/icul/README.md): 64-wide
    # 2-layer and 128-wide 2-layer bases did not, whatever the meta-training
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 512


@dataclass
class PretrainConfig:
    """In-context meta-training of the base model on a separate review pool."""

    n_reviews: int = 1500         # pool of reviews (seeded apart from the task's data)
    steps: int = 7000             # optimizer steps (one fresh sequence per row of every batch): 31 min on
                                  # 2 CPU threads, 5 min on an H100 for the default model
    batch_size: int = 32
    min_examples: int = 2         # labelled lines per sequence
    max_examples: int = 9         # ICUL prompts hold shots + 2 lines (8 at s=6): meta-training must cover them
    label_noise: float = 0.1      # share of shown labels that are wrong
    repeat_rate: float = 1.0      # share of sequences whose last line repeats an earlier text
    copy_rate: float = 1.0        # a repeat carries the label shown earlier (else: the true label)
    train_all_tokens: bool = True   # language-model loss on every token, not only labels and the repeat
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    scheduler: str = "cosine"
    vocab_size: int = 1000


@dataclass
class FinetuneConfig:
    """Fine-tuning a base model on one model's training points."""

    epochs: int = 4               # mild, like the paper's fine-tuned LLMs (members' AUC ~0.6, not ~1)
    # Defaults: a rank-8 LoRA adapter at 5e-3 with 0.1 replay, the one recipe measured to keep enough of the
    # base's in-context ability for ICUL to work (CPU, docs/results/icul/README.md). 32 models x 160 points:
    # AUC none 0.577 -> ICUL s=2/4/6 0.548/0.557/0.548 (95% intervals of the difference exclude 0) while the
    # label-kept ablation stays put, and ICUL flips forgotten points 2x as often as other queries (0.039 vs
    # 0.020); 24 x 120: 0.555 -> 0.525-0.529. Full fine-tuning (2e-3 .. 3e-4) or LoRA without replay erases
    # the in-context ability (flipped-copy flip rate 0.40 in the base, 0.01-0.03 after); more replay
    # (0.25-1.0) keeps more of it but ICUL then overshoots (forgotten points less confident than unseen ones).
    learning_rate: float = 5e-3
    batch_size: int = 4
    pack: int = 4                 # labelled lines per training sequence (members only, fresh order each epoch)
    # meta-training sequences mixed into the fine-tuning data, per member sequence: rehearsal of the base's
    # in-context ability, which plain fine-tuning erases
    replay: float = 0.1
    # > 0: fine-tune a LoRA adapter of this rank (merged back) instead of every weight
    lora_rank: int = 8


@dataclass
class LabelledSequence:
    lines: list[tuple[str, str]] = field(default_factory=list)   # (text, label shown)
    train_last_text: bool = False   # also train the last line's text tokens (a repeat: copyable)
    train_all: bool = False         # train every token (plain language modelling of the sequence)

    def text(self, separator: str = "\n") -> str:
        return separator.join(labelled(t, l) for t, l in self.lines)


def encode_sequences(tokenizer, sequences: Sequence[LabelledSequence], separator: str = "\n",
                     max_length: int = 512) -> list[dict[str, list[int]]]:
    """Token ids of each sequence, labelled only on the label words (and their leading space).

    The text is tokenized whole, exactly as a prompt is at inference, and label tokens are
    found through the character offsets, so training and scoring see the same tokens.
    """
    examples = []
    for sequence in sequences:
        text, spans = "", []
        for index, (line_text, label) in enumerate(sequence.lines):
            if index:
                text += separator
            if sequence.train_last_text and index == len(sequence.lines) - 1:
                spans.append((len(text) + 1, len(text) + len(line_text)))  # its first token is not copyable
            text += line_text
            spans.append((len(text), len(text) + 1 + len(label)))  # " label"
            text += " " + label
        encoded = tokenizer(text, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        if len(ids) > max_length:
            raise UserError(f"a training sequence has {len(ids)} tokens, more than the model's {max_length}")
        labels = [IGNORE_INDEX] * len(ids)
        for position, (start, end) in enumerate(offsets):
            if end > start and (sequence.train_all or
                                any(start < span_end and end > span_start for span_start, span_end in spans)):
                labels[position] = ids[position]
        examples.append({"input_ids": list(ids), "labels": labels})
    return examples


def train_tokenizer_for(texts: Sequence[str], vocab_size: int = 1000):
    return train_tokenizer(list(texts) + [f" {label}" for label in LABELS] * 50, vocab_size=vocab_size)


def new_model(tokenizer, spec: TinyLlamaSpec, seed: int = 0):
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads, max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def fit(model, tokenizer, examples: list[dict], epochs: float, learning_rate: float, batch_size: int,
        seed: int = 0, warmup_ratio: float = 0.05, max_grad_norm: float = 1.0, scheduler: str = "cosine"):
    """Train ``model`` in place on encoded examples with the HF ``Trainer``; returns it in eval mode."""
    # the Trainer stack (datasets, accelerate) takes seconds to import and only fitting needs it
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    if not examples:
        raise UserError("no training examples")
    steps = max(1, round(epochs * -(-len(examples) // batch_size)))
    model.train()
    with tempfile.TemporaryDirectory(prefix="obliviate-icul-") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=learning_rate,
            lr_scheduler_type=scheduler, warmup_steps=int(warmup_ratio * steps), weight_decay=0.0,
            max_grad_norm=max_grad_norm,
            save_strategy="no", logging_strategy="no", report_to=[], seed=seed, data_seed=seed,
            disable_tqdm=True, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                          data_collator=CausalCollator(tokenizer.pad_token_id))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    model.eval()
    return model


def meta_training_sequences(reviews: Sequence[tuple[str, str]], labels: Sequence[str], config: PretrainConfig,
                            rng: random.Random) -> list[LabelledSequence]:
    if config.min_examples < 2 or config.max_examples < config.min_examples:
        raise UserError("meta-training needs 2 <= min_examples <= max_examples")
    reviews = list(reviews)
    sequences = []
    for _ in range(config.steps * config.batch_size):
        count = rng.randint(config.min_examples, config.max_examples)
        items = rng.sample(reviews, count)
        lines = [(text, flip_label(label, labels, rng) if rng.random() < config.label_noise else label)
                 for text, label in items]
        repeat = rng.random() < config.repeat_rate
        if repeat:
            earlier = rng.randrange(count - 1)
            text, true_label = items[earlier]
            shown = rng.choice(list(labels))
            lines[earlier] = (text, shown)
            lines[-1] = (text, shown if rng.random() < config.copy_rate else true_label)
        sequences.append(LabelledSequence(lines, train_last_text=repeat, train_all=config.train_all_tokens))
    return sequences


def pretrain_base(tokenizer, spec: TinyLlamaSpec, config: PretrainConfig, seed: int = 0,
                  exclude_texts: set[str] | None = None, labels: Sequence[str] = LABELS):
    """A base model with in-context ability, meta-trained on a review pool disjoint from the task."""
    reviews = generate_reviews(f"pretrain-{seed}", config.n_reviews, exclude=exclude_texts)
    sequences = meta_training_sequences(reviews, labels, config, random.Random(f"icul-pretrain-{seed}"))
    model = new_model(tokenizer, spec, seed)
    examples = encode_sequences(tokenizer, sequences, max_length=spec.max_position_embeddings)
    return fit(model, tokenizer, examples, 1.0, config.learning_rate, config.batch_size, seed=seed,
               max_grad_norm=config.max_grad_norm, scheduler=config.scheduler)


def finetune_sequences(members: Sequence[ClassificationExample], config: FinetuneConfig,
                       rng: random.Random) -> list[LabelledSequence]:
    """``epochs`` passes over the members, reshuffled each pass and cut into packs of ``pack`` lines."""
    if config.pack < 1:
        raise UserError(f"pack must be >= 1, got {config.pack}")
    sequences = []
    for _ in range(config.epochs):
        order = list(members)
        rng.shuffle(order)
        for start in range(0, len(order), config.pack):
            sequences.append(LabelledSequence([(e.text, e.label) for e in order[start:start + config.pack]]))
    return sequences


def with_replay(sequences: list[LabelledSequence], replay: float, reviews: Sequence[tuple[str, str]],
                pretrain: PretrainConfig | None, labels: Sequence[str], rng: random.Random) -> list[LabelledSequence]:
    """``sequences`` plus ``replay`` x as many meta-training sequences (from ``reviews``, built as
    ``pretrain`` builds them), shuffled together; ``sequences`` unchanged when ``replay`` is 0."""
    if replay <= 0:
        return sequences
    if not reviews or pretrain is None:
        raise UserError("fine-tuning with replay needs the base model's meta-training pool and settings")
    count = max(1, round(replay * len(sequences)))
    exactly = replace(pretrain, steps=count, batch_size=1)   # meta_training_sequences makes steps x batch_size
    mixed = sequences + meta_training_sequences(reviews, labels, exactly, random.Random(rng.random()))
    rng.shuffle(mixed)
    return mixed


def finetune(base, tokenizer, members: Sequence[ClassificationExample], config: FinetuneConfig, seed: int = 0,
             replay_reviews: Sequence[tuple[str, str]] = (), replay_config: PretrainConfig | None = None,
             labels: Sequence[str] = LABELS):
    """A copy of ``base`` fine-tuned on ``members`` (the base is left untouched); with
    ``config.replay`` > 0, meta-training sequences drawn from ``replay_reviews`` (the base's
    own pool, never the task's points) are shuffled in."""
    model = copy.deepcopy(base)
    rng = random.Random(f"icul-finetune-{seed}")
    sequences = with_replay(finetune_sequences(members, config, rng), config.replay, replay_reviews, replay_config,
                            labels, rng)
    examples = encode_sequences(tokenizer, sequences, max_length=model.config.max_position_embeddings)
    if config.lora_rank > 0:
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = apply_lora(model, LoraSettings(r=config.lora_rank, alpha=2 * config.lora_rank, target_modules=targets))
    # the passes are already laid out in the data: one epoch over it
    model = fit(model, tokenizer, examples, 1.0, config.learning_rate, config.batch_size, seed=seed)
    return merge_lora(model)
