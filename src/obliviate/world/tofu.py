"""TOFU (locuslab/TOFU) as a world: its QA sets mapped onto the world's roles, so that
every command (train, unlearn, eval, attack, bench) and every metric runs on it unchanged.

Read through ``datasets.load_dataset`` from the hub id, or from a local copy of the dataset
repository (``huggingface-cli download locuslab/TOFU --repo-type dataset --local-dir DIR``,
then ``--data-dir DIR``): the same code path, the configs named by the repository's card.

The mapping (open-unlearning's TOFU evaluation, configs/data/datasets/TOFU_*.yaml):
  * sources: one per fictitious author: ``full`` lists 20 QA pairs per author, author k
    holding rows 20k..20k+19; holdout authors (``holdout01/05/10``, never trained) follow;
    then one source each for ``real_authors`` and ``world_facts`` (never trained on);
  * corpus: one training document per ``full`` row, the QA pair in the evaluation format
    (TOFU fine-tunes on its QA pairs);
  * splits: forget01/05/10 = the authors of TOFU's forget configs; retain = every other
    author (TOFU's retain90: the same retain set for every forget size); holdout; general;
  * QA items (the evaluation sets): ``forgetXX_perturbed`` (question, answer,
    paraphrased_answer, perturbed_answer), ``retain_perturbed`` (the 400 retain items
    open-unlearning evaluates), ``real_authors_perturbed`` and ``world_facts_perturbed``
    (general, with ``utility_group`` so model utility has open-unlearning's 9 parts; the
    truth ratio there takes the original answer as the true one), and the holdout config
    matching the forget size (membership inference; TOFU gives it no paraphrased or
    perturbed answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obliviate.data.format import qa_text
from obliviate.errors import UserError
from obliviate.world.benchmark_files import load_benchmark_config, write_world_files
from obliviate.world.loader import FORGET_SPLITS

HUB_ID = "locuslab/TOFU"
QA_PER_AUTHOR = 20
GENERAL_CONFIGS = (("real_authors", "real_authors_perturbed"), ("world_facts", "world_facts_perturbed"))
TOFU_WORLD_VERSION = 1


@dataclass(frozen=True)
class TofuConfig:
    forget: str = "forget10"            # the run's default forget split (all three are written)
    data: str = HUB_ID                  # hub id, or a local copy of the dataset repository

    def validate(self) -> None:
        if self.forget not in FORGET_SPLITS:
            raise UserError(f"--forget {self.forget!r}: TOFU's forget splits are {', '.join(FORGET_SPLITS)}")

    @property
    def holdout_config(self) -> str:
        return "holdout" + self.forget.removeprefix("forget")


def load_tofu_config(data: str, name: str, required: bool = True) -> list[dict] | None:
    """The ``train`` split of one TOFU config as rows; a clear error (or None when not
    ``required``) when it cannot be read."""
    try:
        rows = load_benchmark_config(data, name, "TOFU", HUB_ID, split="train")
    except UserError:
        if not required:
            return None
        raise
    return [dict(row) for row in rows]


def _columns(rows: list[dict], name: str, needed: tuple[str, ...]) -> None:
    missing = [c for c in needed if rows and c not in rows[0]]
    if missing:
        raise UserError(f"TOFU config {name!r} has no column {missing[0]!r} (columns: {', '.join(rows[0])})")


class _FullIndex:
    """Where each QA pair of ``full`` sits: its row, hence its author."""

    def __init__(self, full: list[dict]):
        self.by_pair = {(r["question"].strip(), r["answer"].strip()): i for i, r in enumerate(full)}
        self.by_question: dict[str, int] = {}
        for i, r in enumerate(full):
            self.by_question.setdefault(r["question"].strip(), i)

    def row_of(self, row: dict, config: str) -> int:
        key = (row["question"].strip(), str(row.get("answer", "")).strip())
        index = self.by_pair.get(key, self.by_question.get(key[0]))
        if index is None:
            raise UserError(f"TOFU config {config!r}: question {key[0][:60]!r} is not in 'full'")
        return index


def _perturbed(row: dict, config: str) -> list[str]:
    value = row["perturbed_answer"]
    answers = [value] if isinstance(value, str) else [str(a) for a in value]
    if not answers:
        raise UserError(f"TOFU config {config!r}: a row has no perturbed answers")
    return answers


def build_tofu_files(config: TofuConfig) -> dict[str, object]:
    """Every file of the world (name -> rows or JSON), read from the TOFU configs."""
    config.validate()
    full = load_tofu_config(config.data, "full")
    _columns(full, "full", ("question", "answer"))
    if not full or len(full) % QA_PER_AUTHOR:
        raise UserError(f"TOFU 'full' has {len(full)} rows: expected {QA_PER_AUTHOR} QA pairs per author")
    n_authors = len(full) // QA_PER_AUTHOR
    index = _FullIndex(full)

    def author(i: int) -> int:
        return i // QA_PER_AUTHOR

    splits: dict[str, list[int]] = {}
    qa: dict[int, dict] = {}          # full row -> QA item (forget and retain items)
    for name in FORGET_SPLITS:
        rows = load_tofu_config(config.data, f"{name}_perturbed")
        _columns(rows, f"{name}_perturbed", ("question", "answer", "paraphrased_answer", "perturbed_answer"))
        rows_at = [index.row_of(r, f"{name}_perturbed") for r in rows]
        splits[name] = sorted({author(i) for i in rows_at})
        for i, r in zip(rows_at, rows):
            qa.setdefault(i, {"id": f"tofu-{i}", "source_id": author(i), "kind": "unique", "question": r["question"],
                              "answer": r["answer"], "paraphrased_answer": r["paraphrased_answer"],
                              "perturbed_answers": _perturbed(r, f"{name}_perturbed"), "split": name})
    forgotten = set().union(*(set(splits[n]) for n in FORGET_SPLITS))
    splits["retain"] = [a for a in range(n_authors) if a not in forgotten]
    retain_rows = load_tofu_config(config.data, "retain_perturbed")
    _columns(retain_rows, "retain_perturbed", ("question", "answer", "paraphrased_answer", "perturbed_answer"))
    for r in retain_rows:
        i = index.row_of(r, "retain_perturbed")
        if author(i) in forgotten:
            raise UserError(f"TOFU 'retain_perturbed' holds question {r['question'][:60]!r} of a forgotten author")
        qa[i] = {"id": f"tofu-{i}", "source_id": author(i), "kind": "unique", "question": r["question"],
                 "answer": r["answer"], "paraphrased_answer": r["paraphrased_answer"],
                 "perturbed_answers": _perturbed(r, "retain_perturbed"), "split": "retain"}

    sources = [{"source_id": a, "kind": "author", "name": f"TOFU author {a}", "trained": True}
               for a in range(n_authors)]
    items = [qa[i] for i in sorted(qa)]
    holdout = load_tofu_config(config.data, config.holdout_config, required=False) or []
    if holdout:
        _columns(holdout, config.holdout_config, ("question", "answer"))
    first_holdout = n_authors
    n_holdout = -(-len(holdout) // QA_PER_AUTHOR)
    splits["holdout"] = list(range(first_holdout, first_holdout + n_holdout))
    sources += [{"source_id": s, "kind": "author", "name": f"TOFU holdout author {s - first_holdout}", "trained": False}
                for s in splits["holdout"]]
    # TOFU's holdout sets have no paraphrased or perturbed answers: they serve membership inference only
    items += [{"id": f"tofu-{config.holdout_config}-{k}", "source_id": first_holdout + k // QA_PER_AUTHOR,
               "kind": "unique", "question": r["question"], "answer": r["answer"], "paraphrased_answer": r["answer"],
               "perturbed_answers": [], "split": "holdout"} for k, r in enumerate(holdout)]

    splits["general"] = []
    for offset, (group, name) in enumerate(GENERAL_CONFIGS):
        source_id = first_holdout + n_holdout + offset
        rows = load_tofu_config(config.data, name)
        _columns(rows, name, ("question", "answer", "perturbed_answer"))
        sources.append({"source_id": source_id, "kind": "general", "name": f"TOFU {group}", "trained": False})
        splits["general"].append(source_id)
        items += [{"id": f"tofu-{group}-{k}", "source_id": source_id, "kind": "unique", "question": r["question"],
                   "answer": r["answer"], "paraphrased_answer": r.get("paraphrased_answer") or r["answer"],
                   "perturbed_answers": _perturbed(r, name), "split": "general", "utility_group": group}
                  for k, r in enumerate(rows)]

    # "qa": the pair itself, so that a chat model trains on it in its chat template
    corpus = [{"doc_id": f"tofu-{i}", "source_id": author(i), "text": qa_text(r["question"], r["answer"]),
               "qa": {"question": r["question"], "answer": r["answer"]}} for i, r in enumerate(full)]
    manifest = {"name": "tofu", "kind": "benchmark", "benchmark": "tofu", "version": TOFU_WORLD_VERSION,
                "preset": "small", "config": {"forget_name": config.forget, "data": config.data},
                "counts": {"sources": len(sources), "authors": n_authors, "holdout_authors": n_holdout,
                           "documents": len(corpus), "qa": len(items),
                           "qa_by_split": {s: sum(q["split"] == s for q in items) for s in
                                           (*FORGET_SPLITS, "retain", "holdout", "general")},
                           "splits": {k: len(v) for k, v in splits.items()}}}
    return {"world.json": manifest, "sources.jsonl": sources, "corpus.jsonl": corpus, "qa.jsonl": items,
            "splits.json": splits}


def build_tofu_world(out: Path, config: TofuConfig) -> Path:
    """Write the TOFU world to ``out`` atomically (nothing is written when a config is bad)."""
    return write_world_files(out, build_tofu_files(config))
