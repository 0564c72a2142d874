"""Read a world directory (embedded or user-built) into one validated object.

Layout (docs/design.md):
  world.json       manifest: {"name", "preset", "seed", "version", ...}
  sources.jsonl    {"source_id", "kind": author|saga|general, "name", "trained": bool}
  corpus.jsonl     {"doc_id", "source_id", "text"} (+ "qa": {"question", "answer"} for a QA document)
  qa.jsonl         {"id", "source_id", "kind": unique|shared|inferred, "question", "answer",
                    "paraphrased_answer", "perturbed_answers": [5], "split"}
  splits.json      {"forget01": [source ids], "forget05": [...], "forget10": [...],
                    "retain": [...], "holdout": [...], "general": [...], "saga": [...]}
  anchors.json     {term: [generic alternatives]}            (saga worlds)
  prompts.jsonl    {"id", "type": completion|probability, "prompt", "reference",
                    "target_terms": [...]}                   (saga familiarity probes)
                   {"id", "type": "verbmem", "split", "prompt", "reference", "target_terms": []}
                                                             (verbatim-memorization prompts: MUSE)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from obliviate.errors import UserError
from obliviate.io import parse_json, parse_jsonl, read_bytes, read_json

QA_FIELDS = ("id", "source_id", "kind", "question", "answer", "paraphrased_answer", "perturbed_answers", "split")
CORPUS_FIELDS = ("doc_id", "source_id", "text")
SOURCE_FIELDS = ("source_id", "kind", "name")
PROMPT_FIELDS = ("prompt", "reference", "target_terms")
FORGET_SPLITS = ("forget01", "forget05", "forget10")
# the files whose content is the world's identity (``World.fingerprint``), in hashing order
FINGERPRINT_FILES = ("sources.jsonl", "corpus.jsonl", "qa.jsonl", "splits.json", "anchors.json", "prompts.jsonl")
# every world needs these; what else it needs its world.json says (see ``_required_files``)
REQUIRED_FILES = ("sources.jsonl", "corpus.jsonl", "splits.json")


def world_fingerprint(contents: dict[str, bytes]) -> str:
    """sha256 over (name, bytes) of the world files present, in ``FINGERPRINT_FILES`` order."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        if name in contents:
            digest.update(name.encode())
            digest.update(contents[name])
    return digest.hexdigest()[:16]


def _required_files(manifest: dict) -> list[str]:
    """The files this world's manifest says it has: an embedded world always has QA items;
    any world whose ``counts`` name QA items, probes or anchored terms has those files."""
    required = list(REQUIRED_FILES)
    if not manifest:
        return required
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    prompts = counts.get("prompts")
    n_prompts = sum(v for v in prompts.values() if isinstance(v, int)) if isinstance(prompts, dict) else 0
    if manifest.get("kind") != "text" or (isinstance(counts.get("qa"), int) and counts["qa"] > 0):
        required.append("qa.jsonl")
    if isinstance(counts.get("anchors"), int) and counts["anchors"] > 0:
        required.append("anchors.json")
    if n_prompts > 0:
        required += ["prompts.jsonl", "saga.json"]   # saga.json: the familiarity judge's lists
    elif isinstance(counts.get("verbmem"), int) and counts["verbmem"] > 0:
        required.append("prompts.jsonl")             # verbatim-memorization prompts only (MUSE): no judge
    return required


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

    # the content hash, computed once: from the bytes ``load_world`` read, else on first use
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    # -- identity -------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """Content hash of the files that define the world (cache keys use it).

        Computed once per loaded World, from the very bytes ``load_world`` parsed (the
        files are not expected to change under a loaded World); a World built by hand
        hashes the files under ``root`` on first use."""
        if self._fingerprint is None:
            self._fingerprint = world_fingerprint(
                {name: (self.root / name).read_bytes() for name in FINGERPRINT_FILES if (self.root / name).is_file()})
        return self._fingerprint

    @property
    def default_forget(self) -> str:
        """The split commands forget when none is named: the one the world was built for
        (a text world's forget split, ``world --benchmark tofu --forget``), else forget10."""
        named = (self.manifest.get("config") or {}).get("forget_name")
        if named in self.splits:
            return named
        if "forget10" in self.splits:
            return "forget10"
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
    """Read and validate the world directory at ``path``; every file is read once."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"world directory does not exist: {root}")
    if not root.is_dir():
        raise UserError(f"world path is not a directory: {root}")
    manifest = read_json(root / "world.json", "world manifest") if (root / "world.json").exists() else {}
    if not isinstance(manifest, dict):
        raise UserError(f"{root / 'world.json'} must hold a JSON object")
    kind = "text world" if manifest.get("kind") == "text" else "world"
    missing = [name for name in _required_files(manifest) if not (root / name).is_file()]
    if missing:
        raise UserError(f"{kind} {root} is incomplete: {missing[0]} is missing"
                        + (f" (and {', '.join(missing[1:])})" if missing[1:] else ""))
    raw = {name: read_bytes(root / name) for name in FINGERPRINT_FILES if (root / name).is_file()}
    sources = parse_jsonl(raw["sources.jsonl"], root / "sources.jsonl", SOURCE_FIELDS, "sources file")
    corpus = parse_jsonl(raw["corpus.jsonl"], root / "corpus.jsonl", CORPUS_FIELDS, "corpus file")
    qa = parse_jsonl(raw["qa.jsonl"], root / "qa.jsonl", QA_FIELDS, "QA file") if "qa.jsonl" in raw else []
    splits = parse_json(raw["splits.json"], root / "splits.json", "splits file")
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise UserError(f"{root / 'splits.json'} must map split names to lists of source ids")
    anchors = parse_json(raw["anchors.json"], root / "anchors.json", "anchored-term dictionary") \
        if "anchors.json" in raw else {}
    prompts = parse_jsonl(raw["prompts.jsonl"], root / "prompts.jsonl", PROMPT_FIELDS, "prompts file") \
        if "prompts.jsonl" in raw else []
    # a benchmark without perturbed answers (MUSE's KnowMem QA) says so: its items get no truth ratio
    perturbations_optional = manifest.get("perturbed_answers") == "optional"
    for item in qa:
        # holdout items serve membership inference only: they may come without perturbations (TOFU's)
        if not isinstance(item["perturbed_answers"], list) or not (item["perturbed_answers"] or perturbations_optional
                                                                   or item["split"] == "holdout"):
            raise UserError(f"QA item {item['id']!r}: perturbed_answers must be a non-empty list")
    try:
        split_ids = {k: [int(s) for s in v] for k, v in splits.items()}
    except (TypeError, ValueError):
        raise UserError(f"{root / 'splits.json'} must map split names to lists of integer source ids") from None
    world = World(root=root, manifest=manifest, sources=sources, corpus=corpus, qa=qa, splits=split_ids,
                  anchors=anchors, prompts=prompts)
    world._fingerprint = world_fingerprint(raw)
    return world


def resolve_forget(world_dir: str | os.PathLike, forget: str | None) -> str:
    """``forget`` itself, or the world's default forget split when it is None."""
    return forget if forget is not None else load_world(world_dir).default_forget
