"""Settings of the WHP method (``WHPConfig``: every field can be set with ``--set key=value``) and of
anchored-term discovery (``DiscoveryConfig``, used by ``obliviate.whp.discovery``)."""

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


@dataclass
class DiscoveryConfig:
    """Settings of automatic anchored-term discovery (``obliviate.whp.discovery``, ``obliviate whp anchors``)."""

    top: int = 30                   # terms kept
    max_ngram: int = 3              # words per term at most
    min_count: int = 3              # occurrences in the target text at least
    # a full name that extends a kept one-word name ("Kremar Saelky" next to "Kremar") needs only
    # this many occurrences: full names are often written once and then shortened (tiny, recall at
    # k=48/96: 0.79/0.90 with min_count -> 0.875/0.96)
    name_min_count: int = 1
    n_alternatives: int = 3         # generic alternatives proposed per term
    # score = gain_weight * min(gain, max_gain) + specificity_weight * min(specificity, max_specificity)
    #         + name_weight * name_share + count_weight * log(count)
    # the gain is capped and halved: a baseline that memorised the target (WHP's premise) gains ~0
    # on its most frequent names ("Holmes", "Watson") and 1-3 nats on rare ones, which would push
    # the main characters out of the top (Sherlock run: hand-dictionary recall in the top 30
    # 0.16 -> 0.53 with these weights; tiny unchanged)
    gain_weight: float = 0.5
    max_gain: float = 1.0
    specificity_weight: float = 1.0
    # specificity counts up to this (nats; e^3 = 20x more frequent in the target than in the
    # generic text): beyond it, the add-one ratio only measures how frequent the term is, and
    # frequent theme words ("dark", "spell") would outrank rare names (tiny, strict recall of the
    # dictionary at k=48/96: 0.79/0.96 uncapped -> 0.875/0.96; docs/results/tiny/anchors.md)
    max_specificity: float = 3.0
    # names: share of a term's occurrences written capitalised in mid-sentence (a proper
    # noun), times this weight, is added to its score; the target's theme words ("spell",
    # "dark") are as absent from a small generic text as its names are, names are what WHP
    # must replace (tiny: recall of the dictionary at k=|dictionary| 0.34 -> 0.47)
    name_weight: float = 2.0
    # a little frequency back, after the specificity cap: the main characters are what matter most
    count_weight: float = 0.25
    # mean log-prob gain (nats) a term needs; slightly negative because a baseline that already
    # knows the target (WHP's premise) gains ~0 on names it memorised (tiny: recall@2k 0.60 -> 0.62)
    min_gain: float = -0.5
    min_specificity: float = 1.0    # with generic text: log frequency ratio a term and its content words need
    min_word_gain: float = 0.5      # without generic text: each content word of a multi-word term needs this gain
    # "X of Y" is one term only if it holds at least this share of Y's occurrences ("Caves of
    # Laempe": 12/12), else it is a title around a name that stands on its own ("Return of Slath": 4/18)
    min_cohesion: float = 0.5
    block_size: int = 512
    batch_size: int = 8
    candidate_tokens: int = 50      # base-model predictions examined per term for alternatives
    max_contexts: int = 32          # occurrences per term whose contexts propose alternatives
