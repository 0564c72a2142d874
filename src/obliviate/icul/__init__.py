"""In-context unlearning (Pawelczyk et al., "In-Context Unlearning: Language Models as Few-Shot Unlearners").

- :mod:`obliviate.icul.prompts`: ICUL prompts (forget point flipped + s demonstrations + query) and ablations.
- :mod:`obliviate.icul.lira`: logit-stability score, LiRA-Forget, AUC and TPR at fixed FPR.
- :mod:`obliviate.icul.models`: tokenizer, in-context base model (meta-training), fine-tuning.
- :mod:`obliviate.icul.experiment`: the shadow-model game on a classification task.
- :mod:`obliviate.icul.qa`: ICUL for a world's QA items as a model (registered method ``icul``,
  :mod:`obliviate.methods.icul`); the model it returns, ``InContextUnlearningLM``, lives in
  :mod:`obliviate.models.in_context` so that loading a saved one needs nothing from this package.

The command line (``obliviate icul``) is :mod:`obliviate.cli.icul`.
"""
