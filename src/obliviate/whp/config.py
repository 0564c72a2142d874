"""Settings of the WHP method (every field can be set with ``--set key=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from obliviate.errors import UserError


@dataclass
class WHPConfig:
    # generic labels
    alpha: float = 5.0                      # v_base - alpha * relu(v_reinforced - v_base)
    soft_labels: bool = False               # KL to softmax(v_generic) instead of argmax labels
    soft_top_k: int = 64                    # soft labels keep the top-k mass (<= 0: whole vocabulary)
    block_size: int = 512                   # tokens per translation block (and per training sequence)
    spare_text_tokens: bool = True          # never forbid a token the original block itself uses
    forbid_anchor_tokens: bool = True       # a generic label never starts an anchored term (labels.py)
    # the position predicting a 2nd+ occurrence of an anchor in a block: False leaves it untrained, the paper's
    # rule (translation.py); True trains it with the anchor and its translation forbidden. Tiny saga, hard
    # labels, alpha 5, 240 steps, 5 seeds, completion familiarity / model utility means: without the
    # unlikelihood term True helped (seeds 0-2: 0.76 -> 0.20); with it (default) False 0.014 / 0.395,
    # True 0.041 / 0.392 (docs/results/tiny/whp.md): the paper's rule
    train_repeated_anchor_predictions: bool = False
    # beyond the paper: fine-tuning also minimises -log(1 - p(pushed-down tokens)) at every position of the
    # target text, with this weight (0: the paper's loss), so that no context of the target keeps predicting
    # an anchor (the labels only cover positions the translation maps). Tiny saga, alpha 5, 240 steps, 5 seeds,
    # completion familiarity / probability familiarity / model utility means (retrained 0 / 0, full 0.399),
    # with the paper's rule for repeated anchors: weight 0: 1.014 / 0.019 / 0.391; 3: 0.014 / 0.004 / 0.395
    # (soft labels 0.021 / 0.002 / 0.392); with the `train` rule: 0: 0.172 / 0.016 / 0.389; 3: 0.041 / 0.004 /
    # 0.392 (docs/results/tiny/whp.md, whp_train_rule.md)
    anchor_unlikelihood: float = 3.0
    # with anchor_unlikelihood: the terms among discovery's top N (obliviate.whp.discovery) that are not in the
    # dictionary and never occur in the generic (retain) text join the pushed-down tokens: the target's own
    # theme words ("spell", "enchanted", "wand"), which the dictionary does not name and greedy completions
    # drift back into. Needs the reinforced model and generic text (skipped without retain documents).
    # Tiny, hard labels, weight 3, 5 seeds: 0 terms -> completion familiarity 0.179, 96 (46 terms) -> 0.014
    suppress_target_terms: int = 96
    # anchored terms
    anchors_path: str | None = None         # JSON {term: [alternatives]}; default: the world's anchors.json
    # no dictionary (anchors_path or the world's anchors.json): None/true discover one
    # (obliviate.whp.discovery) and write it to OUT.anchors.json; false refuses instead
    auto_anchors: bool | None = None
    auto_anchors_top: int = 30
    # with a dictionary (anchors_path or the world's): add this many top terms of automatic discovery that it
    # lacks (theme words, name parts: "spell", "dark", "creatures"), with discovery's alternatives; the
    # dictionary's own alternatives win (without a dictionary, auto_anchors_top counts instead). Tiny saga, hard
    # labels, 240 steps at 3e-4, seeds 0-2, completion familiarity mean / model utility per seed: alpha 5:
    # 0 -> 0.195 / .397 .394 .391; 48 (adds 4 theme words and 2 name parts) -> 0.057 / .396 .382 .377;
    # 64 -> 0.172 / .387 .388 .385; alpha 0: 0 -> 0.425 / .395 .395 .393; 48 -> 0.184 / .395 .389 .387.
    # Translating theme words removes "the spell is ..." completions but lowers retain truth ratio
    # (0.168 -> 0.160): off by default
    discover_extra_anchors: int = 0
    # target text
    target_paths: list[str] = field(default_factory=list)  # user text files replacing the forget documents
    # reinforced model
    reinforced_model_path: str | None = None    # reuse a reinforced model instead of training one
    save_reinforced_path: str | None = None     # keep the reinforced model here for later runs
    reinforce_epochs: float = 4.0
    reinforce_steps: int = -1               # > 0 overrides reinforce_epochs
    reinforce_lr: float = 1e-3
    # fine-tuning the base model on (original text, generic labels)
    # tiny saga (53 blocks of 512 tokens), hard labels, alpha 5, mean of seeds 0-2 (completion familiarity /
    # utility vs the base): 80 steps at 5e-4 -> 0.57 / 97.5%; 160 at 5e-4 -> 0.18 / 97.5%; 240 at 3e-4 ->
    # 0.20 / 98.5%; 400 at 2.5e-4 -> 0.13 / 98.4%: a lower lr keeps utility, familiarity follows lr x steps
    finetune_epochs: float = 3.0            # used only when finetune_steps <= 0
    finetune_steps: int = 240
    lr: float = 3e-4
    batch_size: int = 8
    label_batch_size: int = 8               # blocks per forward pass when computing labels
    weight_decay: float = 0.0
    warmup_steps: int = 0
    seed: int = 0

    def validate(self) -> None:
        if self.alpha < 0:
            raise UserError(f"alpha must be >= 0, got {self.alpha}")
        if self.block_size < 2:
            raise UserError(f"block_size must be at least 2, got {self.block_size}")
        for name in ("batch_size", "label_batch_size", "auto_anchors_top"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.anchor_unlikelihood < 0:
            raise UserError(f"anchor_unlikelihood must be >= 0, got {self.anchor_unlikelihood}")
        if self.suppress_target_terms < 0:
            raise UserError(f"suppress_target_terms must be >= 0, got {self.suppress_target_terms}")
        if self.discover_extra_anchors < 0:
            raise UserError(f"discover_extra_anchors must be >= 0, got {self.discover_extra_anchors}")
        for name in ("reinforce_lr", "lr"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.reinforce_steps <= 0 and self.reinforce_epochs <= 0 and not self.reinforced_model_path:
            raise UserError("reinforce_epochs or reinforce_steps must be > 0 (or give reinforced_model_path)")
        if self.finetune_steps <= 0 and self.finetune_epochs <= 0:
            raise UserError("finetune_epochs or finetune_steps must be > 0")
