"""Robustness attacks: does forgotten knowledge come back?

* ``relearn``: fine-tune a copy on part of the forgotten facts, grade the held-apart part
  (recovery curves of the unlearned, retain and full models; the relearning gap);
* ``icl``: other facts or passages of the forgotten source in the prompt;
* ``adversarial``: jailbreak prefixes, rephrased, chained, cloze and multiple-choice forms;
* ``gcg``: a budgeted greedy-coordinate-gradient suffix that maximises forgotten answers;
* ``quantize``: 8- and 4-bit weight quantization, then the ordinary evaluation (``attacks.quantize``);
* ``format``: the forgotten questions as paraphrase, cloze, multiple choice, yes/no and in
  German, reported as the worst case over forms (``attacks.format_shift``);

each followed by membership inference (forget vs holdout) on the attacked model or prompts
(quantize: the evaluation's own MIA).
Entry points: :func:`run_attacks` (Python) and ``obliviate attack`` (the CLI, ``obliviate.cli.attack``).
"""

from obliviate.attacks.runner import ATTACK_NAMES, AttackConfig, run_attacks

__all__ = ["ATTACK_NAMES", "AttackConfig", "run_attacks"]
