"""Read a world directory (embedded or user-built) into one validated object.

Layout (DESIGN.md):
  world.json       manifest: {"name", "preset", "seed", "version", ...}
  sources.jsonl    {"source_id", "kind": author|saga|general, "name", "trained": bool}
  corpus.jsonl     {"doc_id", "source_id", "text"}
  qa.jsonl         {"id", "source_id", "kind": unique|shared|inferred, "question", "answer",
                    "paraphrased_answer", "perturbed_answers": [5], "split"}
  splits.json      {"forget01": [source ids], "forget05": [...], "forget10": [...],
                    "retain": [...], "holdout": [...], "general": [...], "saga": [...]}
  anchors.json     {term: [generic alternatives]}            (saga worlds)
  prompts.jsonl    {"id", "type": completion|probability, "prompt", "reference",
                    "target_terms": [...]}                   (saga familiarity probes)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from obliviate.errors import UserError
from obliviate.io import read_json, read_jsonl

QA_FIELDS = ("id", "source_id", "kind", "question", "answer", "paraphrased_answer", "perturbed_answers", "split")
CORPUS_FIELDS = ("doc_id", "source_id", "text")
SOURCE_FIELDS = ("source_id", "kind", "name")
PROMPT_FIELDS = ("prompt", "reference", "target_terms")
FORGET_SPLITS = ("forget01", "forget05", "forget10")


@dataclass
class World:
    root: Path
    manifest: dict
    sources: list[dict]
    corpus: list[dict]
    qa: list[dict]
    splits: dict[str, list[int]]
    anchors: dict[str, list[str]] = field(default_factory=dict)
    prompts: list[dict] = field(default_factory=list)

    # -- identity -------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Content hash of the files that define the world (cache keys use it)."""
        digest = hashlib.sha256()
        for name in ("sources.jsonl", "corpus.jsonl", "qa.jsonl", "splits.json", "anchors.json", "prompts.jsonl"):
            path = self.root / name
            if path.is_file():
                digest.update(name.encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    @property
    def default_forget(self) -> str:
        """The split commands forget when none is named: forget10 in embedded worlds, the
        user's forget split in text worlds (``obliviate world --from-text``)."""
        if "forget10" in self.splits:
            return "forget10"
        named = (self.manifest.get("config") or {}).get("forget_name")
        if named in self.splits:
            return named
        raise UserError(f"world {self.root} has no forget10 split: name one with --forget "
                        f"(splits: {', '.join(sorted(self.splits))})")

    # -- selections -----------------------------------------------------------------
    def split_sources(self, split: str) -> set[int]:
        if split not in self.splits:
            raise UserError(f"unknown split {split!r}; this world has: {', '.join(sorted(self.splits))}")
        return set(self.splits[split])

    def qa_for(self, split: str, kinds: tuple[str, ...] | None = None) -> list[dict]:
        """QA items whose source belongs to ``split`` (forget splits are nested source sets)."""
        sources = self.split_sources(split)
        items = [q for q in self.qa if q["source_id"] in sources]
        if split in ("general", "saga", "holdout", "retain"):
            # these splits are also labelled on the item itself; honour that label
            items = [q for q in items if q["split"] == split] or items
        if kinds is not None:
            items = [q for q in items if q["kind"] in kinds]
        return items

    def docs_for(self, source_ids: set[int]) -> list[dict]:
        return [d for d in self.corpus if d["source_id"] in source_ids]

    def trained_sources(self) -> set[int]:
        return {s["source_id"] for s in self.sources if s.get("trained", True)}

    def training_sources(self, forget: str | None) -> set[int]:
        """Sources a model is trained on: all trained ones, minus ``forget`` for a retain model."""
        sources = self.trained_sources()
        if forget:
            sources -= self.split_sources(forget)
        return sources


def load_world(path: str | os.PathLike) -> World:
    root = Path(path)
    if not root.exists():
        raise UserError(f"world directory does not exist: {root}")
    if not root.is_dir():
        raise UserError(f"world path is not a directory: {root}")
    manifest = read_json(root / "world.json", "world manifest") if (root / "world.json").exists() else {}
    sources = read_jsonl(root / "sources.jsonl", SOURCE_FIELDS, "sources file")
    corpus = read_jsonl(root / "corpus.jsonl", CORPUS_FIELDS, "corpus file")
    qa = read_jsonl(root / "qa.jsonl", QA_FIELDS, "QA file") if (root / "qa.jsonl").exists() else []
    splits = read_json(root / "splits.json", "splits file")
    if not isinstance(splits, dict):
        raise UserError(f"{root / 'splits.json'} must map split names to lists of source ids")
    anchors = read_json(root / "anchors.json", "anchored-term dictionary") if (root / "anchors.json").exists() else {}
    prompts = read_jsonl(root / "prompts.jsonl", PROMPT_FIELDS, "prompts file") if (root / "prompts.jsonl").exists() else []
    for item in qa:
        if not isinstance(item["perturbed_answers"], list) or not item["perturbed_answers"]:
            raise UserError(f"QA item {item['id']!r}: perturbed_answers must be a non-empty list")
    return World(root=root, manifest=manifest, sources=sources, corpus=corpus, qa=qa,
                 splits={k: [int(s) for s in v] for k, v in splits.items()}, anchors=anchors, prompts=prompts)


def resolve_forget(world_dir: str | os.PathLike, forget: str | None) -> str:
    """``forget`` itself, or the world's default forget split when it is None."""
    return forget if forget is not None else load_world(world_dir).default_forget
