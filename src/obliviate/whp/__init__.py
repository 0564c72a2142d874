"""'Who's Harry Potter' unlearning: reinforced model, anchored terms, generic labels.

Modules, each importing only those above it:

- ``config``: ``WHPConfig`` (the method's settings) and ``DiscoveryConfig``;
- ``anchors``: finding anchored terms on token boundaries (dictionary files: ``obliviate.world.anchors``);
- ``text_files``: user text files as target documents;
- ``reinforced``: checks that a reinforced model fits its baseline, loading a saved one;
- ``translation``: block translation with consistency rules;
- ``terms``: candidate terms (word n-grams) and the rules that tell a term from a fragment;
- ``labels``: generic logits and labels;
- ``training``: reinforce / fine-tune with the HF Trainer;
- ``gains``, ``ranking``, ``alternatives``: the model evidence, the ranking and the generic
  alternatives of automatic discovery, run by ``discovery``;
- ``pipeline``: the whole method (``run_whp``);
- ``inference``: the logits-processor variant; ``curve``: familiarity over fine-tuning steps.

The registered method is ``obliviate.methods.whp``; the ``obliviate whp ...`` commands are
``obliviate.cli.whp``.
"""

from obliviate.whp.config import WHPConfig

__all__ = ["WHPConfig"]
