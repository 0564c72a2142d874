"""A world directory built from the user's own text (``obliviate world --from-text``).

Inputs are UTF-8 plain-text files and jsonl files (``{"text", optional "source" /
"title"}`` per line). The result has the layout :mod:`obliviate.world.loader` reads,
so training, unlearning and evaluation treat it like the embedded world:

  world.json     {"name", "kind": "text", "version", "config", "inputs", "counts"}  (no preset:
                 the model size is chosen at ``obliviate train --preset``)
  sources.jsonl  {"source_id", "kind": "text", "name", "trained", "split", "file", "chars"}
  corpus.jsonl   {"doc_id", "source_id", "text"}: each source cut into documents of at most
                 ``doc_chars`` characters on paragraph, then sentence, then word boundaries,
                 then (``train_on_qa``, the default) one document per QA item of the source,
                 the pair in the evaluation format: QA metrics grade what the model was taught
                 (TOFU fine-tunes on its QA pairs; the embedded world states its QA the same way)
  splits.json    {forget_name: [...], "retain": [...], "holdout": [...] (when asked)}
  qa.jsonl       the user's QA items (docs/design.md schema), when given
  prompts.jsonl  familiarity probes, when given (see :func:`convert_probes`)
  saga.json      the familiarity judge's lists: every probe target term is an entity
  anchors.json   the user's WHP dictionary, when given

Sources: one per input file (a jsonl line's ``source``, else its ``title``, names the
source it belongs to), then optionally split at every line matching ``heading_regex``
(the heading names the new source) and/or into pieces of at most ``source_chars``.

Everything is validated before the output directory is touched, and the directory is
written atomically: bad input leaves nothing behind. The same inputs and options give
byte-identical files (inputs are recorded by file name and content hash, not path).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from obliviate.data.format import qa_text
from obliviate.errors import UserError
from obliviate.io import (
    atomic_directory,
    atomic_write_json,
    atomic_write_jsonl,
    read_jsonl,
)
from obliviate.world.anchors import load_anchors
from obliviate.world.loader import QA_FIELDS, load_world

log = logging.getLogger(__name__)

TEXT_WORLD_VERSION = 1
PROBE_FIELDS = ("prompt", "references", "target_terms")
RESERVED_SPLITS = ("retain", "holdout")
# Default document size: the presets' context is 512 tokens and the run tokenizer (byte-level
# BPE, 2k-4k vocabulary) takes ~3.5-4.5 characters of English per token, so 1200 characters
# (~300 tokens) fit a training block whole and leave VerbMem a prefix plus a continuation.
DEFAULT_DOC_CHARS = 1200


@dataclass
class TextWorldConfig:
    forget_sources: tuple[str, ...] = ()     # selectors: ids ("3", "0,1,2"), names, or "re:PATTERN"
    forget_name: str = "forget"              # name of the forget split
    holdout_sources: tuple[str, ...] = ()    # same syntax: sources never trained on (MIA, held-out perplexity)
    heading_regex: str | None = None         # a line matching it starts a new source named by the heading
    source_chars: int | None = None          # cut sources into pieces of at most this many characters
    doc_chars: int = DEFAULT_DOC_CHARS       # longest training document, in characters
    unwrap_lines: bool = False               # join hard-wrapped lines of a paragraph with spaces
    qa: Path | None = None                   # QA items (docs/design.md schema) jsonl
    probes: Path | None = None               # familiarity probes {prompt, references, target_terms} jsonl
    anchors: Path | None = None              # WHP anchored-term dictionary {term: [alternatives]}
    train_on_qa: bool = True                 # QA pairs also become training documents of their source
    qa_repeats: int = 2                      # copies of each QA document (weight beside the text; see _qa_corpus)
    name: str = "text"                       # the world's name in world.json

    def validate(self) -> None:
        if not self.forget_sources:
            raise UserError("name the sources to forget with --forget-sources (ids, names or re:PATTERN)")
        if not self.forget_name or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.forget_name):
            raise UserError(f"forget split name must be letters, digits, '_', '.' or '-', got {self.forget_name!r}")
        if self.forget_name in RESERVED_SPLITS:
            raise UserError(f"forget split name {self.forget_name!r} is reserved; choose another (default: forget)")
        if self.doc_chars < 100:
            raise UserError(f"doc_chars must be at least 100, got {self.doc_chars}")
        if isinstance(self.qa_repeats, bool) or not isinstance(self.qa_repeats, int) or self.qa_repeats < 1:
            raise UserError(f"qa_repeats must be an integer >= 1, got {self.qa_repeats!r}")
        if self.source_chars is not None and self.source_chars < self.doc_chars:
            raise UserError(f"source_chars ({self.source_chars}) must be at least doc_chars ({self.doc_chars})")

    def manifest_dict(self) -> dict:
        """JSON form for world.json: file options by name only (paths differ between machines)."""
        out = asdict(self)
        for key in ("qa", "probes", "anchors"):
            out[key] = None if out[key] is None else Path(out[key]).name
        out["forget_sources"] = list(self.forget_sources)
        out["holdout_sources"] = list(self.holdout_sources)
        return out


@dataclass
class Source:
    name: str
    text: str
    file: str


# ---- reading inputs -----------------------------------------------------------------------


def read_text_input(path: Path, what: str = "text file") -> str:
    """A UTF-8 text file's content; UserError for a missing, binary, non-UTF-8 or empty file."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a regular file")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise UserError(f"{what} {path} looks binary (it holds NUL bytes); give UTF-8 text or jsonl")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError(f"{what} {path} is empty")
    return text


def _file_sources(path: Path) -> list[Source]:
    """The sources one input file holds before heading / size splitting."""
    text = read_text_input(path)  # binary / encoding / emptiness checks for jsonl too
    if path.suffix.lower() != ".jsonl":
        return [Source(path.stem, text, path.name)]
    grouped: dict[str, list[str]] = {}
    for number, row in enumerate(read_jsonl(path, ("text",), "jsonl text file"), start=1):
        if not isinstance(row["text"], str):
            raise UserError(f"{path}: row {number}: \"text\" must be a string, got {type(row['text']).__name__}")
        label = row.get("source", row.get("title"))
        name = path.stem if label is None or not str(label).strip() else str(label).strip()
        if row["text"].strip():
            grouped.setdefault(name, []).append(row["text"].replace("\r\n", "\n").strip("\n"))
    if not grouped:
        raise UserError(f"jsonl text file {path} has no non-empty \"text\"")
    return [Source(name, "\n\n".join(parts), path.name) for name, parts in grouped.items()]


def _compile(pattern: str, what: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise UserError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None


def split_by_headings(source: Source, heading: re.Pattern) -> list[Source] | None:
    """Cut at every line matching ``heading``; None when no line matches.

    The heading line (its first group when the pattern has one) names the source that
    follows it; text before the first heading stays a source named like the original.
    """
    lines = source.text.split("\n")
    starts = [i for i, line in enumerate(lines) if heading.search(line)]
    if not starts:
        return None
    pieces: list[Source] = []
    preamble = "\n".join(lines[: starts[0]])
    if preamble.strip():
        pieces.append(Source(source.name, preamble, source.file))
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        match = heading.search(lines[start])
        title = (match.group(1) if match.re.groups and match.group(1) else lines[start]).strip()
        body = "\n".join(lines[start + 1: end])
        if body.strip():
            pieces.append(Source(title or source.name, body, source.file))
    return pieces


# ---- cutting text on natural boundaries ----------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# whitespace after a sentence end (optionally after a closing quote or bracket)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")


def _paragraphs(text: str, unwrap_lines: bool) -> list[str]:
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    if unwrap_lines:
        paragraphs = [re.sub(r"[ \t]*\n[ \t]*", " ", p) for p in paragraphs]
    return paragraphs


def _hard_cut(text: str, max_chars: int) -> list[str]:
    """A run with no sentence boundary: cut at the last space before the limit (or at it)."""
    pieces = []
    while len(text) > max_chars:
        cut = text.rfind(" ", 1, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def _split_long_paragraph(paragraph: str, max_chars: int) -> list[str]:
    """Substrings of ``paragraph`` of at most ``max_chars``, cut between sentences."""
    cuts = [m.end() for m in _SENTENCE_BREAK.finditer(paragraph)] + [len(paragraph)]
    pieces: list[str] = []
    start = 0
    previous = 0
    for cut in cuts:
        if len(paragraph[start:cut].strip()) <= max_chars:
            previous = cut
            continue
        if previous > start:  # close the piece at the last sentence end that fitted
            pieces.append(paragraph[start:previous].strip())
            start = previous
        if len(paragraph[start:cut].strip()) > max_chars:  # one sentence alone is too long
            pieces.extend(_hard_cut(paragraph[start:cut].strip(), max_chars))
            start = cut
        previous = cut
    if paragraph[start:].strip():
        pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def cut_text(text: str, max_chars: int, unwrap_lines: bool = False) -> list[str]:
    """Pack paragraphs (joined by a blank line) into pieces of at most ``max_chars``; a longer
    paragraph is cut between sentences, a longer sentence between words."""
    units: list[str] = []
    for paragraph in _paragraphs(text, unwrap_lines):
        units.extend([paragraph] if len(paragraph) <= max_chars else _split_long_paragraph(paragraph, max_chars))
    pieces: list[str] = []
    current = ""
    for unit in units:
        candidate = f"{current}\n\n{unit}" if current else unit
        if len(candidate) <= max_chars:
            current = candidate
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


# ---- source selection ------------------------------------------------------------------------


def select_sources(selectors: Sequence[str], names: Sequence[str], option: str) -> list[int]:
    """Source ids chosen by ``selectors``: ids (``"3"``, ``"0,1,2"``), ``re:PATTERN`` (searched
    in each name) or a name (case-insensitive). Every selector must match something."""
    chosen: set[int] = set()
    for selector in selectors:
        selector = selector.strip()
        if not selector:
            raise UserError(f"{option}: empty selector")
        if re.fullmatch(r"\d+(\s*,\s*\d+)*", selector):
            ids = [int(part) for part in selector.split(",")]
            unknown = [i for i in ids if i >= len(names)]
            if unknown:
                raise UserError(f"{option}: no source with id {unknown[0]} (ids run from 0 to {len(names) - 1})")
            matched = ids
        elif selector.startswith("re:"):
            pattern = _compile(selector[3:], f"{option} regex")
            matched = [i for i, name in enumerate(names) if pattern.search(name)]
        else:
            matched = [i for i, name in enumerate(names) if name.casefold() == selector.casefold()]
        if not matched:
            shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
            raise UserError(f"{option}: {selector!r} matches no source (sources: {shown})")
        chosen.update(matched)
    return sorted(chosen)


def _unique_names(sources: list[Source]) -> list[str]:
    """Source names made unique in order: a repeated name gets " #2", " #3", ..."""
    seen: dict[str, int] = {}
    names = []
    for source in sources:
        count = seen.get(source.name, 0) + 1
        seen[source.name] = count
        names.append(source.name if count == 1 else f"{source.name} #{count}")
    return names


# ---- optional files --------------------------------------------------------------------------


def read_user_qa(path: Path, names: Sequence[str]) -> list[dict]:
    """The user's QA items; ``source_id`` may be an id or a source name."""
    items = read_jsonl(path, QA_FIELDS, "QA file")
    if not items:
        raise UserError(f"QA file {path} has no items")
    by_name: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        by_name.setdefault(name.casefold(), []).append(index)
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        where = f"{path}: item {number} ({item['id']!r})"
        if str(item["id"]) in seen:
            raise UserError(f"{where}: duplicate id")
        seen.add(str(item["id"]))
        source = item["source_id"]
        if isinstance(source, str) and not source.strip().isdigit():
            matches = by_name.get(source.strip().casefold(), [])
            if len(matches) != 1:
                raise UserError(f"{where}: source {source!r} " + ("matches no source" if not matches
                                                                 else "names several sources; use its id"))
            item["source_id"] = matches[0]
        else:
            try:
                item["source_id"] = int(source)
            except (TypeError, ValueError):
                raise UserError(f"{where}: source_id must be a source id or name, got {source!r}") from None
            if not 0 <= item["source_id"] < len(names):
                raise UserError(f"{where}: no source with id {item['source_id']}")
        for key in ("question", "answer", "paraphrased_answer"):
            if not isinstance(item[key], str) or not item[key].strip():
                raise UserError(f"{where}: {key} must be a non-empty string")
        perturbed = item["perturbed_answers"]
        if not isinstance(perturbed, list) or not perturbed or not all(isinstance(p, str) and p.strip() for p in perturbed):
            raise UserError(f"{where}: perturbed_answers must be a non-empty list of strings")
    return items


def _starts_with_term(reference: str, term: str) -> bool:
    return re.match(re.escape(term) + r"(?!\w)", reference.lstrip()) is not None


def convert_probes(path: Path) -> list[dict]:
    """Familiarity probes ``{prompt, references, target_terms[, id]}`` -> prompts.jsonl rows.

    Every probe becomes a ``completion`` prompt (graded by the familiarity judge; its
    first reference is the saga-true continuation, all are kept under ``references``).
    A probe whose reference begins with one of its target terms also becomes a
    ``probability`` prompt on those terms: the prompt ends right before them, which is
    what the probability-mass metric measures.
    """
    probes = read_jsonl(path, PROBE_FIELDS, "probe file")
    if not probes:
        raise UserError(f"probe file {path} has no probes")
    completion, probability = [], []
    seen: set[str] = set()
    for number, probe in enumerate(probes, start=1):
        where = f"{path}:{number}"
        prompt, references, terms = probe["prompt"], probe["references"], probe["target_terms"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError(f"{where}: prompt must be a non-empty string")
        if isinstance(references, str):
            references = [references]
        if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
            raise UserError(f"{where}: references must be a list of strings")
        if isinstance(terms, str):
            terms = [terms]
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise UserError(f"{where}: target_terms must be a non-empty list of strings")
        terms = [t.strip() for t in terms]
        probe_id = str(probe.get("id", f"probe-{number - 1:03d}"))
        if probe_id in seen:
            raise UserError(f"{where}: duplicate probe id {probe_id!r}")
        seen.add(probe_id)
        reference = references[0].strip() if references else ""
        completion.append({"id": probe_id, "type": "completion", "prompt": prompt, "reference": reference,
                           "target_terms": terms, "references": [r.strip() for r in references]})
        direct = [t for t in terms if any(_starts_with_term(r, t) for r in references)]
        if direct:
            probability.append({"id": f"{probe_id}-p", "type": "probability", "prompt": prompt,
                                "reference": reference, "target_terms": direct})
    return completion + probability


def judge_lists(prompts: list[dict], anchors: dict[str, list[str]] | None) -> dict:
    """``saga.json`` for the familiarity judge: probe target terms (and anchored terms) are entities."""
    terms = {t for p in prompts for t in p["target_terms"]} | set(anchors or {})
    return {"entities": {"target_terms": sorted(terms, key=lambda t: (-len(t), t))}, "themes": []}


# ---- the builder -----------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise UserError(f"output path {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / "world.json").is_file():
            raise UserError(f"output path {out} is a non-empty directory that is not a world; refusing to overwrite it")


def _checked_paths(paths: Sequence[Path], out: Path, config: TextWorldConfig) -> list[Path]:
    """The input paths as Paths, after checking the options, that there are inputs, and ``out``."""
    config.validate()
    if not paths:
        raise UserError("no input text files (--from-text FILE ...)")
    _check_out(out)
    return [Path(p) for p in paths]


def _split_all_by_headings(sources: list[Source], paths: list[Path], pattern: str) -> list[Source]:
    """Every source cut at heading lines; UserError when no input has one, a warning per input without."""
    heading = _compile(pattern, "--heading-regex")
    split_sources: list[Source] = []
    matched_files: set[str] = set()
    for source in sources:
        pieces = split_by_headings(source, heading)
        if pieces is not None:
            matched_files.add(source.file)
        split_sources.extend(pieces if pieces is not None else [source])
    if not matched_files:
        raise UserError(f"--heading-regex {pattern!r} matches no line of the input "
                        f"({', '.join(p.name for p in paths)}); nothing to split")
    for path in paths:
        if path.name not in matched_files:
            log.warning("--heading-regex matches no line of %s: it is not split by headings", path)
    return split_sources


def _split_all_by_size(sources: list[Source], source_chars: int, unwrap_lines: bool) -> list[Source]:
    """Every source cut into pieces of at most ``source_chars`` (named "NAME part K" when cut)."""
    sized: list[Source] = []
    for source in sources:
        pieces = cut_text(source.text, source_chars, unwrap_lines)
        if len(pieces) == 1:
            sized.append(Source(source.name, pieces[0], source.file))
        else:
            sized.extend(Source(f"{source.name} part {k}", piece, source.file)
                         for k, piece in enumerate(pieces, start=1))
    return sized


def _read_sources(paths: list[Path], config: TextWorldConfig) -> list[Source]:
    """The sources of all inputs, split by headings and then by size as the options ask."""
    sources: list[Source] = []
    for path in paths:
        sources.extend(_file_sources(path))
    if config.heading_regex:
        sources = _split_all_by_headings(sources, paths, config.heading_regex)
    if config.source_chars:
        sources = _split_all_by_size(sources, config.source_chars, config.unwrap_lines)
    return sources


@dataclass
class _TextSplits:
    forget: list[int]
    holdout: list[int]
    retain: list[int]

    def split_of(self, forget_name: str) -> dict[int, str]:
        """Each source id's split name."""
        return {**{i: forget_name for i in self.forget}, **{i: "holdout" for i in self.holdout},
                **{i: "retain" for i in self.retain}}

    def as_json(self, forget_name: str) -> dict[str, list[int]]:
        """splits.json: forget and retain, and holdout when there is one."""
        splits = {forget_name: self.forget, "retain": self.retain}
        if self.holdout:
            splits["holdout"] = self.holdout
        return splits


def _select_splits(names: list[str], config: TextWorldConfig) -> _TextSplits:
    """Forget and holdout sources chosen by the selectors, the rest retained; UserError on overlap
    or when nothing is left to retain."""
    forget = select_sources(config.forget_sources, names, "--forget-sources")
    holdout = select_sources(config.holdout_sources, names, "--holdout-sources") if config.holdout_sources else []
    both = sorted(set(forget) & set(holdout))
    if both:
        raise UserError(f"source {both[0]} ({names[both[0]]!r}) is selected by both --forget-sources and --holdout-sources; "
                        "narrow one of them")
    retain = [i for i in range(len(names)) if i not in set(forget) | set(holdout)]
    if not retain:
        raise UserError("every source is in the forget or holdout split: nothing is left to retain "
                        "(the retain model needs at least one trained source)")
    return _TextSplits(forget, holdout, retain)


def _rows_and_corpus(sources: list[Source], names: list[str], splits: _TextSplits,
                     config: TextWorldConfig, qa: list[dict]) -> tuple[list[dict], list[dict]]:
    """sources.jsonl rows and corpus.jsonl documents: each source cut at ``doc_chars``, then its
    QA documents (``train_on_qa``)."""
    split_of = splits.split_of(config.forget_name)
    qa_by_source: dict[int, list[dict]] = {}
    for item in qa if config.train_on_qa else []:
        qa_by_source.setdefault(item["source_id"], []).append(item)
    source_rows, corpus = [], []
    for source_id, (source, name) in enumerate(zip(sources, names)):
        docs = cut_text(source.text, config.doc_chars, config.unwrap_lines)
        source_rows.append({"source_id": source_id, "kind": "text", "name": name,
                            "trained": source_id not in set(splits.holdout), "split": split_of[source_id],
                            "file": source.file, "chars": sum(len(d) for d in docs)})
        corpus.extend({"doc_id": f"{source_id}-{k:04d}", "source_id": source_id, "text": doc}
                      for k, doc in enumerate(docs))
        corpus.extend(_qa_corpus(source_id, qa_by_source.get(source_id, []), config.qa_repeats))
    return source_rows, corpus


def _qa_corpus(source_id: int, items: list[dict], repeats: int) -> list[dict]:
    """One training document per QA item (``qa_text``: the exact strings the evaluation scores),
    ``repeats`` copies each. Two by default: on 60 Shakespeare sources with 7 cloze QA each
    (bench/bench_text_qa.py, tiny preset, default training) retain exact-answer accuracy was 0.00
    on the text alone, 0.08 with one copy, 1.00 with two (the retrained model: 0.00 on the forget
    split). Holdout sources get theirs too (never trained; their documents measure held-out loss)."""
    return [{"doc_id": f"{source_id}-qa-{item['id']}" + (f"-{r}" if r else ""), "source_id": source_id,
             "text": qa_text(item["question"], item["answer"]),
             "qa": {"question": item["question"], "answer": item["answer"]}}
            for item in items for r in range(repeats)]


@dataclass
class _Extras:
    qa: list[dict]
    prompts: list[dict]
    anchors: dict[str, list[str]] | None


def _read_extras(config: TextWorldConfig, names: list[str]) -> _Extras:
    """The optional QA items, probes (as prompts) and anchors dictionary."""
    qa = read_user_qa(config.qa, names) if config.qa else []
    prompts = convert_probes(config.probes) if config.probes else []
    anchors = None
    if config.anchors:
        anchors = load_anchors(config.anchors)
    return _Extras(qa, prompts, anchors)


def _text_manifest(paths: list[Path], config: TextWorldConfig, n_sources: int, corpus: list[dict],
                   splits: dict[str, list[int]], extras: _Extras) -> dict:
    """world.json: options, inputs by name and content hash, and counts."""
    inputs = [{"name": p.name, "sha256": _sha256(p)} for p in paths]
    inputs += [{"name": Path(p).name, "sha256": _sha256(Path(p)), "role": role}
               for role, p in (("qa", config.qa), ("probes", config.probes), ("anchors", config.anchors)) if p]
    prompts = extras.prompts
    return {
        "name": config.name, "kind": "text", "version": TEXT_WORLD_VERSION,
        "config": config.manifest_dict(), "inputs": inputs,
        "counts": {"sources": n_sources, "documents": len(corpus),
                   "qa_documents": sum("-qa-" in d["doc_id"] for d in corpus),
                   "corpus_chars": sum(len(d["text"]) for d in corpus),
                   "splits": {k: len(v) for k, v in splits.items()}, "qa": len(extras.qa),
                   "prompts": {t: sum(p["type"] == t for p in prompts) for t in ("completion", "probability")},
                   "anchors": len(extras.anchors or {})},
    }


def _write_text_world(out: Path, manifest: dict, source_rows: list[dict], corpus: list[dict],
                      splits: dict[str, list[int]], extras: _Extras) -> None:
    """Write the world's files atomically; the loader must accept them before they replace ``out``."""
    with atomic_directory(out) as tmp:
        atomic_write_json(tmp / "world.json", manifest)
        atomic_write_jsonl(tmp / "sources.jsonl", source_rows)
        atomic_write_jsonl(tmp / "corpus.jsonl", corpus)
        atomic_write_json(tmp / "splits.json", splits)
        if extras.qa:
            atomic_write_jsonl(tmp / "qa.jsonl", extras.qa)
        if extras.prompts:
            atomic_write_jsonl(tmp / "prompts.jsonl", extras.prompts)
            atomic_write_json(tmp / "saga.json", judge_lists(extras.prompts, extras.anchors))
        if extras.anchors is not None:
            atomic_write_json(tmp / "anchors.json", extras.anchors)
        load_world(tmp)  # the loader must accept what was written (never rename a bad world into place)


def build_text_world(paths: Sequence[Path], out: Path, config: TextWorldConfig) -> Path:
    """Build a world directory at ``out`` from user text files; returns ``out``.

    Raises :class:`UserError` (before anything is written) for unusable input: a missing,
    binary or empty file, a heading regex that matches no line, a selector that matches
    no source, a bad QA / probe / anchors file, or an ``out`` that is a file.
    """
    out = Path(out)
    paths = _checked_paths(paths, out, config)
    sources = _read_sources(paths, config)
    names = _unique_names(sources)
    splits = _select_splits(names, config)
    split_lists = splits.as_json(config.forget_name)
    extras = _read_extras(config, names)
    source_rows, corpus = _rows_and_corpus(sources, names, splits, config, extras.qa)
    manifest = _text_manifest(paths, config, len(sources), corpus, split_lists, extras)
    _write_text_world(out, manifest, source_rows, corpus, split_lists, extras)
    return out


def describe_text_world(path: Path) -> str:
    """One line for the CLI: sources, documents, splits, QA, probes."""
    manifest = json.loads((Path(path) / "world.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    splits = ", ".join(f"{k}={v}" for k, v in counts["splits"].items())
    probes = counts["prompts"]
    return (f"text world -> {path}: {counts['sources']} sources, {counts['documents']} documents "
            f"({counts['corpus_chars']} chars; {counts.get('qa_documents', 0)} of them QA pairs), splits {splits}, "
            f"{counts['qa']} QA items, "
            f"{probes['completion']} completion / {probes['probability']} probability probes, "
            f"{counts['anchors']} anchored terms")
