"""Generate the embedded world: a deterministic function of (preset, seed).

Writes a world directory in the layout ``obliviate.world.loader`` documents
(sources.jsonl, corpus.jsonl, qa.jsonl, splits.json, anchors.json, prompts.jsonl,
saga.json, world.json). Same (preset, seed) -> byte-identical files: every random
draw comes from ``random.Random`` seeded by a string (hashed with SHA-512 by the
standard library, not by ``hash()``), one stream per component, and nothing is
iterated in hash order.

Source ids: authors first (trained and holdout interleaved), then general sources,
then one source per saga book.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from obliviate.data.format import qa_text
from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json, atomic_write_jsonl
from obliviate.world import authors as author_mod
from obliviate.world import general as general_mod
from obliviate.world import geography, pools
from obliviate.world import saga as saga_mod
from obliviate.world.classification import generate_classification
from obliviate.world.names import NameForge
from obliviate.world.saga import SagaSize

# 2: general-split perturbed answers follow the answer's wording (their truth ratio compares
# against the original answer, as TOFU's real-authors / world-facts sets); micro has 8 facts per author
WORLD_VERSION = 2
# the random streams' version: kept when the content changes so that a world's draws stay the same
RNG_VERSION = 1
FORGET_FRACTIONS = (("forget01", 0.01), ("forget05", 0.05), ("forget10", 0.10))


@dataclass(frozen=True)
class WorldPreset:
    """Sizes of one world preset (the corpus size follows from them)."""
    trained_authors: int = 18
    holdout_authors: int = 4
    facts_per_author: int = 5  # unique facts, birth city included (at most len(AUTHOR_FACTS) = 20)
    bio_rounds: int = 2  # each fact is stated this many times, in different phrasings
    max_facts_per_doc: int = 12  # keeps a biography document under ~400 tokens
    max_doc_chars: int = 1400  # Q&A documents and saga chapters are split to stay under ~400 tokens
    # QA pairs per Q&A document. 1 (each pair its own document, exactly as the evaluation asks it)
    # is what makes a document-level trainer learn the facts: on micro (obliviate.train defaults), the
    # full model's greedy accuracy on retained unique facts is 1.00 with 1 pair per document and 0.09
    # with all of a source's pairs in one document (the model then keys facts on the preceding pairs).
    qa_per_doc: int = 1
    authors_per_city: int = 5
    countries: int = 6
    general_sources: int = 3
    general_repeats: int = 3  # each general fact is stated by this many general sources
    max_general_facts_per_doc: int = 12
    stories_per_general: int = 1
    story_sentences: int = 8
    author_pool_size: int = 12  # awards, publishers, colleges per world
    saga: SagaSize = field(default_factory=lambda: SagaSize(books=2, quests=3, spells=4, filler_sentences=3))


WORLD_PRESETS: dict[str, WorldPreset] = {
    # 8 unique facts per author: forget10 then has 24 items (16 unique), enough for the KS test of
    # forget quality over every forget item to tell the full model from the retrained one
    "micro": WorldPreset(facts_per_author=8),
    # sized so that the demo (two trainings, evaluations, unlearning) fits in ~10 minutes on 2 CPU cores
    "tiny": WorldPreset(trained_authors=50, holdout_authors=10, facts_per_author=6, bio_rounds=2, countries=6,
                        general_sources=6, general_repeats=3, stories_per_general=2, story_sentences=8,
                        saga=SagaSize(books=3, quests=5, spells=5, filler_sentences=4)),
    "small": WorldPreset(trained_authors=200, holdout_authors=40, facts_per_author=20, bio_rounds=3,
                         max_facts_per_doc=8, countries=12, general_sources=20, general_repeats=5,
                         stories_per_general=3, story_sentences=12, author_pool_size=16,
                         saga=SagaSize(books=7, quests=8, spells=8, filler_sentences=6)),
}


def _reserved_text() -> str:
    """All fixed template text: a made-up name hidden inside it would break 'value occurs once'."""
    parts: list[str] = []
    for template in author_mod.AUTHOR_FACTS + (geography.CITY_COUNTRY, geography.CITY_LANDMARK,
                                                geography.CITY_LANGUAGE, geography.CITY_CURRENCY) \
            + tuple(t for _, t in geography.COUNTRY_FACTS):
        parts += [template.question, template.answer, template.paraphrase, *template.statements]
    for _, question, answer, paraphrase, statements, _, _ in pools.SIMPLE_FACTS:
        parts += [question, answer, paraphrase, *statements]
    parts += list(author_mod.BIO_INTROS) + list(general_mod.FACT_INTROS)
    parts += list(general_mod.STORY_OPENERS) + list(general_mod.STORY_SENTENCES)
    parts.append(saga_mod.template_text())
    return "\n".join(parts)


def _reserved_words() -> list[str]:
    words: list[str] = []
    for name, pool in pools.ALL_VALUE_POOLS.items():
        if name != "year":
            words += pool
    words += [fact[5] for fact in pools.SIMPLE_FACTS] + [w for fact in pools.SIMPLE_FACTS for w in fact[6]]
    words += list(pools.GENERIC_BOYS + pools.GENERIC_GIRLS + pools.GENERIC_SURNAMES + pools.GENERIC_TOWNS
                  + pools.GENERIC_SPORTS + pools.GENERIC_PETS + pools.THEME_WORDS)
    words += list(pools.TITLE_ADJECTIVES + pools.TITLE_NOUNS)
    return words


def _forget_sizes(n_trained: int) -> dict[str, int]:
    return {name: max(1, round(fraction * n_trained)) for name, fraction in FORGET_FRACTIONS}


def _qa_documents(items: list[dict], per_doc: int, max_chars: int) -> list[str]:
    """Q&A documents in the exact evaluation format (``qa_text`` per item, blank line between),
    at most ``per_doc`` pairs and ``max_chars`` characters each."""
    docs: list[list[str]] = []
    size = 0
    for item in items:
        pair = qa_text(item["question"], item["answer"])
        if docs and len(docs[-1]) < per_doc and size + 2 + len(pair) <= max_chars:
            docs[-1].append(pair)
            size += 2 + len(pair)
        else:
            docs.append([pair])
            size = len(pair)
    return ["\n\n".join(pairs) for pairs in docs]


def _used_themes(saga_text: str, other_text: str) -> list[str]:
    """Theme words the saga uses and no other source does (the judge's level-2 evidence)."""
    def has(word: str, text: str) -> bool:
        return re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) is not None

    return [w for w in pools.THEME_WORDS if has(w, saga_text) and not has(w, other_text)]


def _checked_preset(preset: str, seed: int) -> WorldPreset:
    """The preset's sizes; UserError for an unknown preset or a seed that is not an integer."""
    if preset not in WORLD_PRESETS:
        raise UserError(f"unknown world preset {preset!r}; choose one of: {', '.join(WORLD_PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed!r}")
    return WORLD_PRESETS[preset]


def _stream(preset: str, seed: int, part: str) -> random.Random:
    """The random stream of one world component, seeded by a string (stable across runs)."""
    return random.Random(f"obliviate-world/v{RNG_VERSION}/{preset}/{seed}/{part}")


@dataclass
class _Geography:
    countries: list[geography.Country]
    landmarks: list[str]
    cities: list[geography.City]


def _make_geography(rng: random.Random, forge: NameForge, spec: WorldPreset, n_cities: int) -> _Geography:
    """Countries, landmarks and cities, drawn in that order from the geography stream."""
    countries = geography.make_countries(rng, forge, spec.countries)
    landmarks = geography.make_landmarks(rng, forge, max(n_cities, 8))
    cities = geography.make_cities(rng, forge, countries, landmarks, n_cities)
    return _Geography(countries, landmarks, cities)


@dataclass
class _AuthorSplits:
    trained: list[int]
    holdout: list[int]
    forget: dict[str, list[int]]
    retain: list[int]


def _draw_splits(rng: random.Random, spec: WorldPreset, n_authors: int, n_cities: int) -> _AuthorSplits:
    """Holdout, nested forget and retain author ids; UserError when cities would lack retained authors."""
    holdout = sorted(rng.sample(range(n_authors), spec.holdout_authors))
    holdout_set = set(holdout)
    trained = [sid for sid in range(n_authors) if sid not in holdout_set]
    drawn = list(trained)
    rng.shuffle(drawn)
    sizes = _forget_sizes(len(trained))
    forget = {name: sorted(drawn[:size]) for name, size in sizes.items()}
    retain = sorted(set(trained) - set(forget["forget10"]))
    if len(retain) < 2 * n_cities:
        raise UserError("preset too small: every city needs two retained authors to state its shared facts")
    return _AuthorSplits(trained, holdout, forget, retain)


def _assign_cities(rng: random.Random, authors: list[author_mod.Author], splits: _AuthorSplits,
                   cities: list[geography.City]) -> None:
    """Give every author a city (continuing the splits stream).

    Retained authors first, round-robin, so every city has >= 2 retained (trained, not
    forgotten) authors stating its shared facts; forgotten and holdout authors fill in after.
    """
    order = list(splits.retain)
    rng.shuffle(order)
    rest = splits.forget["forget10"] + splits.holdout
    rng.shuffle(rest)
    for position, sid in enumerate(order + rest):
        authors[sid].set_city(cities[position % len(cities)])


def _split_labels(splits: _AuthorSplits) -> dict[int, str]:
    """Each author's split name; the finest forget split wins."""
    label = {sid: "retain" for sid in splits.retain}
    label.update({sid: "holdout" for sid in splits.holdout})
    for name in ("forget10", "forget05", "forget01"):  # finest label wins
        label.update({sid: name for sid in splits.forget[name]})
    return label


def _author_qa(rng: random.Random, authors: list[author_mod.Author], author_pools: author_mod.AuthorPools,
               geo: _Geography, label: dict[int, str]) -> dict[int, list[dict]]:
    """Every author's QA items (labelled with the author's split), by source id."""
    countries = geo.countries
    wrong_pools = author_mod.value_pools(authors, author_pools, [c.name for c in geo.cities] + [c.capital for c in countries])
    author_qa = {}
    for author in authors:
        items = author_mod.author_qa(rng, author, wrong_pools, [c.name for c in countries], geo.landmarks,
                                     [c.language for c in countries], [c.currency for c in countries])
        for item in items:
            item["split"] = label[author.source_id]
        author_qa[author.source_id] = items
    return author_qa


def _author_corpus(rng: random.Random, authors: list[author_mod.Author], author_qa: dict[int, list[dict]],
                   spec: WorldPreset) -> list[dict]:
    """Each author's biography documents, then its Q&A documents (stated facts only)."""
    corpus: list[dict] = []
    for author in authors:
        sid = author.source_id
        for k, text in enumerate(author_mod.author_documents(rng, author, spec.bio_rounds, spec.max_facts_per_doc)):
            corpus.append({"doc_id": f"author-{sid}-bio-{k}", "source_id": sid, "text": text})
        # inferred facts are measured, never stated: they stay out of the Q&A document
        stated = [q for q in author_qa[sid] if q["kind"] != "inferred"]
        for k, text in enumerate(_qa_documents(stated, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"author-{sid}-qa-{k}", "source_id": sid, "text": text})
    return corpus


@dataclass
class _AuthorPart:
    authors: list[author_mod.Author]
    splits: _AuthorSplits
    qa: dict[int, list[dict]]
    corpus: list[dict]


def _build_authors(preset: str, seed: int, spec: WorldPreset, forge: NameForge, geo: _Geography) -> _AuthorPart:
    """Authors, their splits and cities, QA items and documents."""
    n_authors = spec.trained_authors + spec.holdout_authors
    author_rng = _stream(preset, seed, "authors")
    author_pools = author_mod.make_author_pools(author_rng, forge, spec.author_pool_size)
    used_titles: set[str] = set()
    authors = [author_mod.make_author(author_rng, forge, sid, spec.facts_per_author, author_pools, used_titles)
               for sid in range(n_authors)]
    split_rng = _stream(preset, seed, "splits")
    splits = _draw_splits(split_rng, spec, n_authors, len(geo.cities))
    _assign_cities(split_rng, authors, splits, geo.cities)
    author_qa = _author_qa(_stream(preset, seed, "author-qa"), authors, author_pools, geo, _split_labels(splits))
    corpus = _author_corpus(_stream(preset, seed, "author-docs"), authors, author_qa, spec)
    return _AuthorPart(authors, splits, author_qa, corpus)


def _general_corpus(general_ids: list[int], generals: list[general_mod.GeneralSource],
                    spec: WorldPreset) -> list[dict]:
    """Each general source's documents, then its Q&A documents."""
    corpus: list[dict] = []
    for sid, source in zip(general_ids, generals):
        for k, text in enumerate(source.docs):
            corpus.append({"doc_id": f"general-{sid}-doc-{k}", "source_id": sid, "text": text})
        for k, text in enumerate(_qa_documents(source.qa, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"general-{sid}-qa-{k}", "source_id": sid, "text": text})
    return corpus


@dataclass
class _SagaPart:
    saga: saga_mod.Saga
    ids: list[int]
    qa: list[dict]
    corpus: list[dict]
    text: str  # the saga's chapters joined by newlines (for the judge's theme words)


def _build_saga(preset: str, seed: int, spec: WorldPreset, forge: NameForge, first_id: int) -> _SagaPart:
    """The saga: one source per book (ids from ``first_id``), its chapters, Q&A documents and QA."""
    saga = saga_mod.make_saga(_stream(preset, seed, "saga"), forge, spec.saga)
    saga_ids = list(range(first_id, first_id + len(saga.books)))
    saga_qa = saga_mod.saga_qa(_stream(preset, seed, "saga-qa"), saga, saga_ids)
    chapter_rng = _stream(preset, seed, "saga-chapters")
    corpus: list[dict] = []
    saga_text_parts = []
    for book, sid in zip(saga.books, saga_ids):
        chapters = saga_mod.book_chapters(chapter_rng, saga, book, spec.saga.filler_sentences, spec.max_doc_chars)
        for k, text in enumerate(chapters):
            corpus.append({"doc_id": f"saga-{sid}-part-{k}", "source_id": sid, "text": text})
            saga_text_parts.append(text)
        book_items = [q for q in saga_qa if q["source_id"] == sid]
        for k, text in enumerate(_qa_documents(book_items, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"saga-{sid}-qa-{k}", "source_id": sid, "text": text})
    return _SagaPart(saga, saga_ids, saga_qa, corpus, "\n".join(saga_text_parts))


def _source_rows(authors: list[author_mod.Author], holdout: list[int], general_ids: list[int],
                 saga: _SagaPart) -> list[dict]:
    """sources.jsonl rows: authors, then general sources, then saga books."""
    holdout_set = set(holdout)
    sources = [{"source_id": a.source_id, "kind": "author", "name": a.name, "trained": a.source_id not in holdout_set}
               for a in authors]
    sources += [{"source_id": sid, "kind": "general", "name": f"general-{k}", "trained": True}
                for k, sid in enumerate(general_ids)]
    sources += [{"source_id": sid, "kind": "saga", "name": book.title, "trained": True}
                for book, sid in zip(saga.saga.books, saga.ids)]
    return sources


def _saga_judge(saga: _SagaPart, corpus: list[dict]) -> dict:
    """saga.json: the saga's entities plus the theme words only the saga uses."""
    judge = saga_mod.saga_entities(saga.saga)
    saga_ids = set(saga.ids)
    other_text = "\n".join(d["text"] for d in corpus if d["source_id"] not in saga_ids)
    judge["themes"] = _used_themes(saga.text, other_text)
    return judge


def _tally(qa: list[dict], key: str) -> dict[str, int]:
    """How many QA items have each value of ``key``, keys sorted."""
    counts: dict[str, int] = {}
    for item in qa:
        counts[item[key]] = counts.get(item[key], 0) + 1
    return {k: counts[k] for k in sorted(counts)}


def _manifest(preset: str, seed: int, spec: WorldPreset, files: dict[str, object], n_cities: int,
              n_countries: int, splits: _AuthorSplits) -> dict:
    """world.json: identity, counts of everything written, and the preset's sizes."""
    corpus, qa, prompts = files["corpus.jsonl"], files["qa.jsonl"], files["prompts.jsonl"]
    world_splits = files["splits.json"]
    return {
        "name": "embedded", "preset": preset, "seed": seed, "version": WORLD_VERSION,
        "counts": {
            "authors": len(splits.trained) + len(splits.holdout), "trained_authors": len(splits.trained),
            "holdout_authors": len(splits.holdout),
            "unique_facts_per_author": spec.facts_per_author, "cities": n_cities, "countries": n_countries,
            "general_sources": len(world_splits["general"]), "saga_books": len(world_splits["saga"]),
            "sources": len(files["sources.jsonl"]),
            "documents": len(corpus), "corpus_chars": sum(len(d["text"]) for d in corpus),
            "qa": len(qa), "qa_by_kind": _tally(qa, "kind"), "qa_by_split": _tally(qa, "split"),
            "anchors": len(files["anchors.json"]), "prompts": {t: sum(p["type"] == t for p in prompts)
                                                               for t in ("completion", "probability")},
        },
        "preset_config": asdict(spec),
    }


def build_world(preset: str, seed: int) -> dict[str, object]:
    """The world's files as Python objects: {file name: rows or object}. Pure function of (preset, seed)."""
    spec = _checked_preset(preset, seed)
    forge = NameForge(_stream(preset, seed, "names"), reserved_words=_reserved_words(), reserved_text=_reserved_text())
    n_authors = spec.trained_authors + spec.holdout_authors
    n_cities = max(2, round(n_authors / spec.authors_per_city))
    geo = _make_geography(_stream(preset, seed, "geography"), forge, spec, n_cities)
    part = _build_authors(preset, seed, spec, forge, geo)
    general_ids = list(range(n_authors, n_authors + spec.general_sources))
    generals = general_mod.general_sources(_stream(preset, seed, "general"), geo.countries, general_ids,
                                           spec.general_repeats, spec.max_general_facts_per_doc,
                                           spec.stories_per_general, spec.story_sentences)
    saga = _build_saga(preset, seed, spec, forge, general_ids[-1] + 1 if general_ids else n_authors)
    corpus = part.corpus + _general_corpus(general_ids, generals, spec) + saga.corpus
    qa = [item for a in part.authors for item in part.qa[a.source_id]]
    qa += [item for source in generals for item in source.qa] + saga.qa
    s = part.splits
    files: dict[str, object] = {
        "world.json": None, "sources.jsonl": _source_rows(part.authors, s.holdout, general_ids, saga),
        "corpus.jsonl": corpus, "qa.jsonl": qa,
        "splits.json": {**s.forget, "retain": s.retain, "holdout": s.holdout, "general": general_ids, "saga": saga.ids},
        "anchors.json": saga_mod.saga_anchors(saga.saga), "prompts.jsonl": saga_mod.saga_prompts(saga.saga),
        "saga.json": _saga_judge(saga, corpus),
    }
    files["world.json"] = _manifest(preset, seed, spec, files, n_cities, len(geo.countries), s)
    return files


# (train, test) sizes of the review-classification task written beside the world
CLASSIFICATION_SIZES = {"micro": (200, 100), "tiny": (400, 200), "small": (1000, 400)}


def generate_world(preset: str, seed: int, out: Path) -> Path:
    """Write the world for (preset, seed) to ``out`` atomically and return ``out``.

    An existing world directory at ``out`` is replaced; any other existing path is left
    alone and reported (a typo in ``--out`` must not wipe a user's directory).
    """
    out = Path(out)
    files = build_world(preset, seed)  # raises UserError on a bad preset before touching the disk
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / "world.json").is_file():
            raise UserError(f"--out {out} is a non-empty directory that is not a world; refusing to overwrite it")

    with atomic_directory(out) as tmp:
        for name, content in files.items():
            if name.endswith(".jsonl"):
                atomic_write_jsonl(tmp / name, content)
            else:
                atomic_write_json(tmp / name, content)
        # the labelled review task for in-context unlearning (issue 8), same seed
        n_train, n_test = CLASSIFICATION_SIZES[preset]
        generate_classification(seed, n_train, n_test, tmp)
    return out

