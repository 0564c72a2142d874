"""A byte-level BPE tokenizer trained on a world corpus with HF ``tokenizers``.

User models keep their own tokenizer; this is only for models trained from scratch.
"""

from __future__ import annotations

from typing import Iterable

from obliviate.errors import UserError

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)   # the byte-level alphabet and the special tokens


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise UserError(f"tokenizer vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + "
                        f"{len(SPECIAL_TOKENS)} special tokens), got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise UserError(f"tokenizer min_frequency must be at least 1, got {min_frequency!r}")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError("cannot train a tokenizer on an empty corpus")
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [SPECIAL_TOKENS["pad_token"], SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"], SPECIAL_TOKENS["unk_token"]]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Like Llama tokenizers, encoding prepends BOS (training examples start with it too),
    # so ``tokenizer(prompt)`` at evaluation matches what the model saw in training.
    bos_id = tokenizer.token_to_id(SPECIAL_TOKENS["bos_token"])
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{SPECIAL_TOKENS['bos_token']} $A",
            pair=f"{SPECIAL_TOKENS['bos_token']} $A {SPECIAL_TOKENS['bos_token']} $B",
            special_tokens=[(SPECIAL_TOKENS["bos_token"], bos_id)],
        ),
    ])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    wrapped.padding_side = "right"
    wrapped.model_max_length = 512
    return wrapped
