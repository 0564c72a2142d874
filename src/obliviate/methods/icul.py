"""In-context unlearning (Pawelczyk et al.) as a registered method: ``--method icul``.

No weight changes. ``unlearn`` returns (as the result's model)
:class:`obliviate.models.in_context.InContextUnlearningLM`:
the same weights plus a stored context that shows each forget item with a wrong answer
(flipped "label") and ``shots`` retain items with right answers before the query. The
scoring engine and generation use it like any causal LM, so every metric of
``obliviate eval`` and the leaderboard grade what a user of the deployed model would see.
Saved, it is the base weights plus a ``config.json`` of type ``obliviate_icul`` holding
the context; ``obliviate.models.loading.load_model`` reloads it (importing
``obliviate.models.in_context`` registers the type).

Settings (``--set``): shots, mode (flip|correct|random|none), selection (matched|all),
max_matched, separator, seed. The classification experiment with shadow models and
LiRA-Forget is ``obliviate.icul.experiment``.
"""

from __future__ import annotations

from obliviate.icul.qa import IculQAConfig, icul_model
from obliviate.methods.registry import UnlearningMethod, UnlearnResult, UnlearnTask, register


@register
class InContextUnlearning(UnlearningMethod):
    name = "icul"
    config_class = IculQAConfig
    summary = "in-context unlearning: forget items shown with wrong answers before each query; weights unchanged"

    plain_qa_only = True   # its stored context is plain QA lines, matched on the plain prompt

    def unlearn(self, model, tokenizer, task: UnlearnTask) -> UnlearnResult:
        wrapped = icul_model(model, tokenizer, task.forget_items, task.retain_items, self.config)
        return UnlearnResult(wrapped, steps=0)
