"""MUSE (muse-bench/MUSE-News, muse-bench/MUSE-Books) as a world: its raw text, KnowMem QA
and VerbMem prompts mapped onto the world's roles, so that every command (train, unlearn,
eval, attack, bench) runs on it unchanged and the evaluator reports MUSE's metrics.

Read through ``datasets.load_dataset`` from the hub id, or from a local copy of the dataset
repository (``huggingface-cli download muse-bench/MUSE-News --repo-type dataset --local-dir
DIR``, then ``--data-dir DIR``): the same code path, the configs and splits of its card.

The mapping (MUSE's eval.py / load_data.py and open-unlearning's configs/data/datasets/MUSE_*.yaml):
  * sources: one per ``raw`` row (a News article, a Books volume): splits ``forget``,
    ``retain1``, ``retain2`` (trained) and ``holdout`` (never trained);
  * corpus: each row cut into documents of at most ``doc_chars`` characters (MUSE trains on
    the raw text itself, no QA format);
  * splits: forget; retain = retain1 + retain2 (the retrained model sees both; MUSE's
    unlearning methods regularise on retain1, its retain QA and PrivLeak come from retain2:
    both kept as extra splits); holdout;
  * QA items: ``knowmem`` ``forget_qa`` (forget) and ``retain_qa`` (retain; ``retain2_qa`` on
    older revisions of the card), the ``*_qa_icl`` rows as each item's few-shot ``context``
    (MUSE prompts every question after them). MUSE has no paraphrased or perturbed answers:
    ``paraphrased_answer`` is the answer, ``perturbed_answers`` is empty and the manifest says
    so, hence no truth ratio or forget quality; KnowMem is MUSE's metric here. Each item is
    credited to the first source of its split whose text holds the answer (else the first);
  * ``verbmem`` ``forget`` rows (``prompt``, ``gt``) as ``prompts.jsonl`` rows of type
    ``verbmem``, which the evaluator's VerbMem generates from;
  * PrivLeak: the evaluator's membership inference on forget vs holdout documents (MUSE's
    Min-K% 40 %), against the retain model's AUC; the ``privleak`` config (100 passages per
    split) is not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import UserError
from obliviate.world.benchmark_files import load_benchmark_config, write_world_files
from obliviate.world.from_text import DEFAULT_DOC_CHARS, cut_text

HUB_IDS = {"news": "muse-bench/MUSE-News", "books": "muse-bench/MUSE-Books"}
CORPORA = tuple(HUB_IDS)
RAW_SPLITS = (("forget", True), ("retain1", True), ("retain2", True), ("holdout", False))  # (split, trained)
FORGET_NAME = "forget"
MUSE_WORLD_VERSION = 1


@dataclass(frozen=True)
class MuseConfig:
    corpus: str = "news"
    data: str | None = None             # hub id, or a local copy of the dataset repository; None: the corpus's hub id
    doc_chars: int = DEFAULT_DOC_CHARS  # longest training document (characters), cut on paragraph / sentence bounds

    def validate(self) -> None:
        if self.corpus not in HUB_IDS:
            raise UserError(f"--corpus {self.corpus!r}: MUSE's corpora are {', '.join(CORPORA)}")
        if self.doc_chars < 100:
            raise UserError(f"--doc-chars must be at least 100, got {self.doc_chars}")

    @property
    def hub_id(self) -> str:
        return HUB_IDS[self.corpus]

    @property
    def source(self) -> str:
        return self.data or self.hub_id


class _Repository:
    """One MUSE dataset repository (hub id or local copy), each config read once."""

    def __init__(self, config: MuseConfig):
        self.config = config
        self._loaded: dict[str, object] = {}

    def _load(self, name: str):
        return load_benchmark_config(self.config.source, name, "MUSE", self.config.hub_id)

    def rows(self, name: str, splits: tuple[str, ...], columns: tuple[str, ...]) -> list[dict]:
        """The rows of the first of ``splits`` the config has (later names: older card revisions)."""
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        loaded = self._loaded[name]
        split = next((s for s in splits if s in loaded), None)
        if split is None:
            raise UserError(f"MUSE config {name!r} has no split {splits[0]!r} (splits: {', '.join(loaded)})")
        missing = [c for c in columns if c not in loaded[split].column_names]
        if missing:
            raise UserError(f"MUSE config {name!r} split {split!r} has no column {missing[0]!r} "
                            f"(columns: {', '.join(loaded[split].column_names)})")
        return [{c: str(row[c] if row[c] is not None else "") for c in columns} for row in loaded[split]]


def _icl_context(rows: list[dict]) -> str:
    """MUSE's few-shot prefix (metrics/knowmem.py): every example, then the question."""
    return "".join(f"Question: {r['question'].strip()}\nAnswer: {r['answer'].strip()}\n\n" for r in rows)


def _credited_source(answer: str, candidates: list[tuple[int, str]]) -> int:
    """The first source whose (casefolded) text holds the answer, else the first source."""
    needle = answer.strip().casefold()
    return next((sid for sid, text in candidates if needle and needle in text), candidates[0][0])


def build_muse_files(config: MuseConfig) -> dict[str, object]:
    """Every file of the world (name -> rows or JSON), read from the MUSE configs."""
    config.validate()
    repo = _Repository(config)
    label = f"MUSE-{config.corpus.capitalize()}"
    sources: list[dict] = []
    corpus: list[dict] = []
    splits: dict[str, list[int]] = {name: [] for name, _ in RAW_SPLITS}
    texts: dict[str, list[tuple[int, str]]] = {}
    for name, trained in RAW_SPLITS:
        rows = repo.rows("raw", (name,), ("text",))
        if not rows and name != "holdout":
            raise UserError(f"MUSE config 'raw' split {name!r} is empty")
        texts[name] = []
        for k, row in enumerate(rows):
            source_id = len(sources)
            pieces = cut_text(row["text"], config.doc_chars)
            if not pieces:
                continue  # an empty row holds nothing to train or test on
            sources.append({"source_id": source_id, "kind": "text", "name": f"{label} {name} {k}",
                            "trained": trained, "split": name})
            splits[name].append(source_id)
            texts[name].append((source_id, row["text"].casefold()))
            corpus += [{"doc_id": f"muse-{name}-{k}-{j}", "source_id": source_id, "text": piece}
                       for j, piece in enumerate(pieces)]
        if not splits[name] and name != "holdout":
            raise UserError(f"MUSE config 'raw' split {name!r} has no text")
    splits["retain"] = splits["retain1"] + splits["retain2"]

    qa: list[dict] = []
    for role, qa_splits, credit in (("forget", ("forget_qa",), ("forget",)),
                                    ("retain", ("retain_qa", "retain2_qa"), ("retain2", "retain1"))):
        rows = repo.rows("knowmem", qa_splits, ("question", "answer"))
        icl = repo.rows("knowmem", tuple(f"{s}_icl" for s in qa_splits), ("question", "answer"))
        context = _icl_context(icl)
        candidates = [c for s in credit for c in texts[s]]
        for k, r in enumerate(rows):
            if not r["question"].strip() or not r["answer"].strip():
                raise UserError(f"MUSE config 'knowmem' split {qa_splits[0]!r} row {k} has an empty question or answer")
            qa.append({"id": f"muse-{qa_splits[0]}-{k}", "source_id": _credited_source(r["answer"], candidates),
                       "kind": "unique", "question": r["question"], "answer": r["answer"],
                       "paraphrased_answer": r["answer"], "perturbed_answers": [], "split": role,
                       "context": context})

    verbmem = repo.rows("verbmem", ("forget",), ("prompt", "gt"))
    prompts = [{"id": f"muse-verbmem-{k}", "type": "verbmem", "split": FORGET_NAME, "prompt": r["prompt"],
                "reference": r["gt"], "target_terms": []}
               for k, r in enumerate(verbmem) if r["prompt"].strip() and r["gt"].strip()]

    manifest = {"name": f"muse-{config.corpus}", "kind": "benchmark", "benchmark": "muse", "corpus": config.corpus,
                "version": MUSE_WORLD_VERSION, "preset": "small",
                "config": {"forget_name": FORGET_NAME, "data": config.source, "doc_chars": config.doc_chars},
                # MUSE's QA has no perturbed answers, and is for evaluation: unlearning trains on the text
                "perturbed_answers": "optional", "unlearn_data": "docs",
                "counts": {"sources": len(sources), "documents": len(corpus), "qa": len(qa), "verbmem": len(prompts),
                           "qa_by_split": {s: sum(q["split"] == s for q in qa) for s in ("forget", "retain")},
                           "splits": {k: len(v) for k, v in splits.items()}}}
    files: dict[str, object] = {"world.json": manifest, "sources.jsonl": sources, "corpus.jsonl": corpus,
                                "qa.jsonl": qa, "splits.json": splits}
    if prompts:
        files["prompts.jsonl"] = prompts
    return files


def build_muse_world(out: Path, config: MuseConfig) -> Path:
    """Write the MUSE world to ``out`` atomically (nothing is written when a config is bad)."""
    return write_world_files(out, build_muse_files(config))
