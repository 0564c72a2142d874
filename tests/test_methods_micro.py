"""Every post-hoc method on the embedded micro world, with its default settings: the
forget authors' unique facts go, the retained authors' facts stay (bounds measured)."""

from __future__ import annotations

import pytest

from obliviate.eval.accuracy import answer_accuracy
from obliviate.models.loading import load_model_and_tokenizer
from obliviate.workflows.unlearn import run_unlearning
from obliviate.world import load_world

# method -> minimum retain-split unique accuracy after unlearning with the defaults (tuned on
# tiny). Measured on micro (full model 0.97): grad_ascent 0.75, idk_dpo 0.95 (session 2,
# after the tokenizer was fitted on every document); earlier: grad_diff 0.65 (micro has few
# retain authors to anchor its retain term; 0.92 on tiny), npo 0.96, rmu 0.93, simnpo 0.95.
RETAIN_BOUNDS = {"grad_ascent": 0.4, "grad_diff": 0.5, "npo": 0.8, "simnpo": 0.8, "rmu": 0.8, "idk_dpo": 0.8}


@pytest.fixture(scope="module")
def full_accuracy(micro_run):
    world = load_world(micro_run.world_dir)
    model, tokenizer = load_model_and_tokenizer(micro_run.full_model)
    return (answer_accuracy(model, tokenizer, world.qa_for("forget10", ("unique",))),
            answer_accuracy(model, tokenizer, world.qa_for("retain", ("unique",))))


@pytest.mark.parametrize("method", sorted(RETAIN_BOUNDS))
def test_method_forgets_on_micro(method, micro_run, full_accuracy, tmp_path):
    world = load_world(micro_run.world_dir)
    out = tmp_path / method
    run_unlearning(method, micro_run.full_model, micro_run.world_dir, "forget10", out, evaluate=False)
    model, tokenizer = load_model_and_tokenizer(out)
    forget = answer_accuracy(model, tokenizer, world.qa_for("forget10", ("unique",)))
    retain = answer_accuracy(model, tokenizer, world.qa_for("retain", ("unique",)))
    full_forget, full_retain = full_accuracy
    print(f"{method}: forget {full_forget:.2f} -> {forget:.2f}, retain {full_retain:.2f} -> {retain:.2f}")
    assert forget <= full_forget - 0.4, (forget, full_forget)
    assert retain >= RETAIN_BOUNDS[method], retain
