"""'Who's Harry Potter' unlearning: reinforced model, anchored terms, generic labels.

Modules: ``anchors`` (dictionaries, matching on token boundaries), ``discovery``
(automatic anchored terms), ``translation`` (block translation with consistency
rules), ``labels`` (generic logits), ``training`` (reinforce / fine-tune with the HF
Trainer), ``pipeline`` (the whole method), ``inference`` (logits-processor variant),
``commands`` (CLI functions). The registered method is ``obliviate.methods.whp``.
"""

from obliviate.whp.config import WHPConfig

__all__ = ["WHPConfig"]
