"""What one evaluation looks at, chosen from the world before the model runs.

QA items per role (forget, retain, general, holdout, saga), the forget targets (the facts
that must go), whole documents per split, the verbatim-memorization prefixes and the
familiarity prompts. Every check of the world's data (unknown split, duplicate ids, an
empty answer, a bad ``saga.json``) fails here, before any model time is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.data.format import QAFormat
from obliviate.errors import UserError
from obliviate.eval.config import EvalConfig
from obliviate.eval.metrics.familiarity import FamiliarityJudge
from obliviate.world.loader import World

# roles: which split an item is evaluated as; forget and retain are required
ROLES = ("forget", "retain", "general", "holdout", "saga")
REQUIRED_ROLES = ("forget", "retain")
KINDS = ("unique", "shared", "inferred")
# roles whose QA answers are generated greedily (ROUGE, accuracy)
GENERATED_ROLES = ("forget", "retain", "general", "saga")
# roles graded on their forget targets only (forgetting metrics, MIA members / non-members)
TARGET_ROLES = ("forget", "holdout")


def role_splits(forget: str) -> dict[str, str]:
    """The world split each role is read from."""
    return {"forget": forget, "retain": "retain", "general": "general", "holdout": "holdout", "saga": "saga"}


@dataclass
class EvalItems:
    """Everything one evaluation scores or generates from."""

    qa: dict[str, list[dict]]  # role -> QA items, every role of ROLES (optional ones may be empty)
    targets: dict[str, list[dict]]  # forget / holdout -> the items of the forget kinds
    documents: dict[str, list[dict]]  # forget / retain / holdout -> documents (perplexity, document MIA)
    verbmem: list[tuple[str, str, str]]  # (doc_id, prefix text, true continuation text)
    probability_prompts: list[dict]  # familiarity prompts with target terms
    completion_prompts: list[dict]  # familiarity prompts completed greedily and graded
    judge: FamiliarityJudge | None  # grades the completions; None: no completion familiarity


def choose_items(world: World, tokenizer, forget: str, config: EvalConfig) -> EvalItems:
    qa = select_qa_items(world, forget)
    completion_prompts = [p for p in world.prompts if p.get("type") == "completion"]
    return EvalItems(
        qa=qa,
        targets={role: forget_targets(qa[role], config.forget_kinds) for role in TARGET_ROLES},
        documents=documents_by_role(world, forget, config.document_max_docs),
        verbmem=verbmem_docs(world, tokenizer, forget, config),
        probability_prompts=[p for p in world.prompts if p.get("type") == "probability" and p.get("target_terms")],
        completion_prompts=completion_prompts,
        judge=FamiliarityJudge.from_world_dir(world.root, world.anchors) if completion_prompts else None,
    )


def select_qa_items(world: World, forget: str) -> dict[str, list[dict]]:
    """QA items per role; required roles must be non-empty, optional ones may be empty."""
    if forget not in world.splits:
        raise UserError(f"unknown forget split {forget!r}; this world has: {', '.join(sorted(world.splits))}")
    names = role_splits(forget)
    selected: dict[str, list[dict]] = {}
    for role, split in names.items():
        if split not in world.splits:
            if role in REQUIRED_ROLES:
                raise UserError(f"world {world.root} has no {split!r} split")
            selected[role] = []
            continue
        items = world.qa_for(split)
        # a split without QA items is still graded by its documents (text worlds)
        if role in REQUIRED_ROLES and not items and not world.docs_for(world.split_sources(split)):
            raise UserError(f"split {split!r} of world {world.root} has no QA items and no documents")
        selected[role] = items
    forget_ids = {q["id"] for q in selected["forget"]}
    overlap = forget_ids & {q["id"] for q in selected["retain"]}
    if overlap:
        raise UserError(f"QA items {sorted(map(str, overlap))[:3]} are in both {forget!r} and 'retain'")
    for role, items in selected.items():
        ids = [str(q["id"]) for q in items]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise UserError(f"duplicate QA id {duplicate!r} in split {names[role]!r}")
        for q in items:
            if not str(q["answer"]).strip():
                raise UserError(f"QA item {q['id']!r} has an empty answer")
    return selected


def forget_targets(role_items: list[dict], kinds: tuple[str, ...]) -> list[dict]:
    """The items whose knowledge must go: those of ``kinds`` (all items if none are)."""
    selected = [q for q in role_items if q["kind"] in kinds] if kinds else []
    return selected or list(role_items)


def mia_unit(items: EvalItems) -> str | None:
    """What membership inference scores: the QA answers where the forget and holdout splits
    both have some, else whole documents of both, else nothing."""
    if items.qa["forget"] and items.qa["holdout"]:
        return "qa"
    if items.documents["forget"] and items.documents["holdout"]:
        return "documents"
    return None


def item_prompt(fmt: QAFormat, item: dict) -> str:
    """The prompt a QA item is scored and answered after: its few-shot ``context`` (MUSE's
    KnowMem in-context examples, "Question: ...\nAnswer: ...\n\n" each), if any, then the
    question (in the chat format the examples go inside the user turn)."""
    return fmt.prompt(str(item["question"]), str(item.get("context") or ""))


def evaluation_docs(world: World, split: str, limit: int) -> list[dict]:
    """Documents of ``split`` with text, at most ``limit`` (0: all) spread evenly over the split."""
    if split not in world.splits:
        return []
    docs = [d for d in world.docs_for(world.split_sources(split)) if str(d["text"]).strip()]
    if limit and len(docs) > limit:
        docs = [docs[i * len(docs) // limit] for i in range(limit)]
    return docs


def documents_by_role(world: World, forget: str, limit: int) -> dict[str, list[dict]]:
    """Whole documents of the forget, retain and holdout splits (perplexity, document MIA)."""
    splits = role_splits(forget)
    return {role: evaluation_docs(world, splits[role], limit) for role in ("forget", "retain", "holdout")}


def verbmem_docs(world: World, tokenizer, forget: str, config: EvalConfig) -> list[tuple[str, str, str]]:
    """(id, prefix text, true continuation text): the world's own verbatim prompts of the
    forget split (``prompts.jsonl`` rows of type ``verbmem``: MUSE's), the reference cut at
    ``verbmem_max_new_tokens`` tokens as MUSE cuts its ``gt``; else forget documents long enough."""
    prompts = [p for p in world.prompts if p.get("type") == "verbmem" and p.get("split", forget) == forget]
    if prompts:
        if config.verbmem_max_docs:
            prompts = prompts[: config.verbmem_max_docs]
        return [(str(p.get("id", index)), str(p["prompt"]),
                 tokenizer.decode(tokenizer(str(p["reference"]), add_special_tokens=False)["input_ids"]
                                  [: config.verbmem_max_new_tokens]))
                for index, p in enumerate(prompts)]
    docs = world.docs_for(world.split_sources(forget))
    if config.verbmem_max_docs:
        docs = docs[: config.verbmem_max_docs]
    out: list[tuple[str, str, str]] = []
    for doc in docs:
        ids = tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        if len(ids) <= config.verbmem_prefix_tokens:
            continue
        prefix = tokenizer.decode(ids[: config.verbmem_prefix_tokens])
        rest = ids[config.verbmem_prefix_tokens: config.verbmem_prefix_tokens + config.verbmem_max_new_tokens]
        out.append((str(doc["doc_id"]), prefix, tokenizer.decode(rest)))
    return out
