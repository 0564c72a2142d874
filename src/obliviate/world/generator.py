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
from obliviate.world import geography, pools, saga as saga_mod
from obliviate.world.names import NameForge
from obliviate.world.saga import SagaSize

WORLD_VERSION = 1
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
    "micro": WorldPreset(),
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


def build_world(preset: str, seed: int) -> dict[str, object]:
    """The world's files as Python objects: {file name: rows or object}. Pure function of (preset, seed)."""
    if preset not in WORLD_PRESETS:
        raise UserError(f"unknown world preset {preset!r}; choose one of: {', '.join(WORLD_PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed!r}")
    spec = WORLD_PRESETS[preset]

    def stream(part: str) -> random.Random:
        return random.Random(f"obliviate-world/v{WORLD_VERSION}/{preset}/{seed}/{part}")

    forge = NameForge(stream("names"), reserved_words=_reserved_words(), reserved_text=_reserved_text())

    # -- geography --------------------------------------------------------------------
    geo_rng = stream("geography")
    n_authors = spec.trained_authors + spec.holdout_authors
    n_cities = max(2, round(n_authors / spec.authors_per_city))
    countries = geography.make_countries(geo_rng, forge, spec.countries)
    landmarks = geography.make_landmarks(geo_rng, forge, max(n_cities, 8))
    cities = geography.make_cities(geo_rng, forge, countries, landmarks, n_cities)

    # -- authors and splits -----------------------------------------------------------
    author_rng = stream("authors")
    author_pools = author_mod.make_author_pools(author_rng, forge, spec.author_pool_size)
    used_titles: set[str] = set()
    authors = [author_mod.make_author(author_rng, forge, sid, spec.facts_per_author, author_pools, used_titles)
               for sid in range(n_authors)]
    split_rng = stream("splits")
    holdout = sorted(split_rng.sample(range(n_authors), spec.holdout_authors))
    holdout_set = set(holdout)
    trained = [sid for sid in range(n_authors) if sid not in holdout_set]
    drawn = list(trained)
    split_rng.shuffle(drawn)
    sizes = _forget_sizes(len(trained))
    forget = {name: sorted(drawn[:size]) for name, size in sizes.items()}
    retain = sorted(set(trained) - set(forget["forget10"]))
    if len(retain) < 2 * n_cities:
        raise UserError("preset too small: every city needs two retained authors to state its shared facts")

    # Cities: retained authors first, round-robin, so every city has >= 2 retained (trained, not
    # forgotten) authors stating its shared facts; forgotten and holdout authors fill in after.
    order = list(retain)
    split_rng.shuffle(order)
    rest = forget["forget10"] + holdout
    split_rng.shuffle(rest)
    for position, sid in enumerate(order + rest):
        authors[sid].set_city(cities[position % n_cities])

    label = {sid: "retain" for sid in retain}
    label.update({sid: "holdout" for sid in holdout})
    for name in ("forget10", "forget05", "forget01"):  # finest label wins
        label.update({sid: name for sid in forget[name]})

    # -- author QA and documents ------------------------------------------------------
    qa_rng = stream("author-qa")
    wrong_pools = author_mod.value_pools(authors, author_pools, [c.name for c in cities] + [c.capital for c in countries])
    author_qa = {}
    for author in authors:
        items = author_mod.author_qa(qa_rng, author, wrong_pools, [c.name for c in countries], landmarks,
                                     [c.language for c in countries], [c.currency for c in countries])
        for item in items:
            item["split"] = label[author.source_id]
        author_qa[author.source_id] = items
    doc_rng = stream("author-docs")
    corpus: list[dict] = []
    for author in authors:
        sid = author.source_id
        for k, text in enumerate(author_mod.author_documents(doc_rng, author, spec.bio_rounds, spec.max_facts_per_doc)):
            corpus.append({"doc_id": f"author-{sid}-bio-{k}", "source_id": sid, "text": text})
        # inferred facts are measured, never stated: they stay out of the Q&A document
        stated = [q for q in author_qa[sid] if q["kind"] != "inferred"]
        for k, text in enumerate(_qa_documents(stated, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"author-{sid}-qa-{k}", "source_id": sid, "text": text})

    # -- general sources --------------------------------------------------------------
    general_ids = list(range(n_authors, n_authors + spec.general_sources))
    generals = general_mod.general_sources(stream("general"), countries, general_ids, spec.general_repeats,
                                           spec.max_general_facts_per_doc, spec.stories_per_general,
                                           spec.story_sentences)
    for sid, source in zip(general_ids, generals):
        for k, text in enumerate(source.docs):
            corpus.append({"doc_id": f"general-{sid}-doc-{k}", "source_id": sid, "text": text})
        for k, text in enumerate(_qa_documents(source.qa, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"general-{sid}-qa-{k}", "source_id": sid, "text": text})

    # -- the saga ---------------------------------------------------------------------
    saga_rng = stream("saga")
    saga = saga_mod.make_saga(saga_rng, forge, spec.saga)
    saga_ids = list(range(general_ids[-1] + 1 if general_ids else n_authors,
                          (general_ids[-1] + 1 if general_ids else n_authors) + len(saga.books)))
    saga_qa = saga_mod.saga_qa(stream("saga-qa"), saga, saga_ids)
    chapter_rng = stream("saga-chapters")
    saga_text_parts = []
    for book, sid in zip(saga.books, saga_ids):
        chapters = saga_mod.book_chapters(chapter_rng, saga, book, spec.saga.filler_sentences, spec.max_doc_chars)
        for k, text in enumerate(chapters):
            corpus.append({"doc_id": f"saga-{sid}-part-{k}", "source_id": sid, "text": text})
            saga_text_parts.append(text)
        book_items = [q for q in saga_qa if q["source_id"] == sid]
        for k, text in enumerate(_qa_documents(book_items, spec.qa_per_doc, spec.max_doc_chars)):
            corpus.append({"doc_id": f"saga-{sid}-qa-{k}", "source_id": sid, "text": text})

    # -- assemble -----------------------------------------------------------------------
    sources = [{"source_id": a.source_id, "kind": "author", "name": a.name, "trained": a.source_id not in holdout_set}
               for a in authors]
    sources += [{"source_id": sid, "kind": "general", "name": f"general-{k}", "trained": True}
                for k, sid in enumerate(general_ids)]
    sources += [{"source_id": sid, "kind": "saga", "name": book.title, "trained": True}
                for book, sid in zip(saga.books, saga_ids)]
    qa = [item for a in authors for item in author_qa[a.source_id]]
    qa += [item for source in generals for item in source.qa] + saga_qa
    splits = {**forget, "retain": retain, "holdout": holdout, "general": general_ids, "saga": saga_ids}
    anchors = saga_mod.saga_anchors(saga)
    prompts = saga_mod.saga_prompts(saga)
    judge = saga_mod.saga_entities(saga)
    saga_text = "\n".join(saga_text_parts)
    other_text = "\n".join(d["text"] for d in corpus if d["source_id"] not in set(saga_ids))
    judge["themes"] = _used_themes(saga_text, other_text)

    def tally(key: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in qa:
            counts[item[key]] = counts.get(item[key], 0) + 1
        return {k: counts[k] for k in sorted(counts)}

    manifest = {
        "name": "embedded", "preset": preset, "seed": seed, "version": WORLD_VERSION,
        "counts": {
            "authors": n_authors, "trained_authors": len(trained), "holdout_authors": len(holdout),
            "unique_facts_per_author": spec.facts_per_author, "cities": n_cities, "countries": len(countries),
            "general_sources": len(general_ids), "saga_books": len(saga_ids), "sources": len(sources),
            "documents": len(corpus), "corpus_chars": sum(len(d["text"]) for d in corpus),
            "qa": len(qa), "qa_by_kind": tally("kind"), "qa_by_split": tally("split"),
            "anchors": len(anchors), "prompts": {t: sum(p["type"] == t for p in prompts)
                                                 for t in ("completion", "probability")},
        },
        "preset_config": asdict(spec),
    }
    return {
        "world.json": manifest, "sources.jsonl": sources, "corpus.jsonl": corpus, "qa.jsonl": qa,
        "splits.json": splits, "anchors.json": anchors, "prompts.jsonl": prompts, "saga.json": judge,
    }


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
    from obliviate.world.classification import generate_classification

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

