"""The settings of one evaluation (:class:`EvalConfig`); all but ``batch_size`` change numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from obliviate.data.format import ChatOptions
from obliviate.errors import UserError
from obliviate.eval.gradnorm import P_NORMS
from obliviate.eval.metrics.mia import ATTACKS
from obliviate.eval.scoring import PADDING_SIDES


@dataclass
class EvalConfig:
    batch_size: int = 32
    padding_side: str = "left"
    max_new_tokens: int = 32  # greedy QA answers (cut at the first newline)
    rouge_use_stemmer: bool = True
    mink_k: float = 0.4
    privleak_attack: str = "min_k"  # which MIA AUC PrivLeak compares (MUSE and open-unlearning: Min-K%)
    # the gradient-norm MIA: one backward pass per forget and holdout item (off: mia_gradnorm None)
    mia_gradnorm: bool = True
    gradnorm_p: float = 2.0
    verbmem_prefix_tokens: int = 32
    verbmem_max_new_tokens: int = 64
    verbmem_max_docs: int = 100  # first N forget documents (0: all)
    document_max_docs: int = 100  # per split, evenly spaced, for perplexity and document MIA (0: all)
    familiarity_max_new_tokens: int = 32
    # QA in the tokenizer's chat template (None: automatic, as the model was trained: see
    # obliviate.data.format.resolve_chat_template; evaluate() records the resolved choice)
    chat_template: bool | None = None
    chat_options: ChatOptions = ChatOptions()   # the template's system prompt and date (None: as trained)
    # Fact kinds that must be forgotten, for our own variants: forget_quality_unique and
    # forget_truth_ratio_unique use the forget items of these kinds (shared and inferred
    # facts must survive, graded by the per-kind accuracies). open-unlearning's metrics
    # (forget_quality, forget_truth_ratio, forget_Q_A_*, memorization, KnowMem, MIA) use
    # every forget item. Empty: all kinds; a split with none of them falls back to all.
    forget_kinds: tuple[str, ...] = ("unique",)

    # settings that change speed, not numbers: left out of the cache key
    RUNTIME_FIELDS = ("batch_size",)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {self.batch_size}")
        if self.padding_side not in PADDING_SIDES:
            raise UserError(f"padding side must be one of {PADDING_SIDES}, got {self.padding_side!r}")
        if not 0.0 < self.mink_k <= 1.0:
            raise UserError(f"mink_k must be in (0, 1], got {self.mink_k}")
        if self.privleak_attack not in ATTACKS:
            raise UserError(f"privleak_attack must be one of {ATTACKS}, got {self.privleak_attack!r}")
        if self.gradnorm_p not in P_NORMS:
            raise UserError(f"gradnorm_p must be 1, 2 or inf, got {self.gradnorm_p}")
        if self.document_max_docs < 0:
            raise UserError(f"document_max_docs must be >= 0, got {self.document_max_docs}")
        for name in ("max_new_tokens", "verbmem_prefix_tokens", "verbmem_max_new_tokens", "familiarity_max_new_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")

    def metric_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.RUNTIME_FIELDS}
