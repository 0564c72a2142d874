""""Who's Sherlock Holmes?": unlearn Sherlock Holmes from a small model trained on Sherlock
Holmes and Shakespeare, and compare with a model trained on Shakespeare alone.

    python bench/bench_sherlock.py [--data ../shared/data/public-domain] [--run runs/sherlock]
        [--out docs/results/sherlock] [--preset tiny] [--steps 1000] [--sherlock-fraction 0.5]
        [--methods whp_auto,whp_hand,npo,grad_diff] [--threads 2]

Steps (every one through the project's own code):
  1. world: ``obliviate.world.from_text.build_text_world`` on sherlock.txt (one source per
     story title heading; the novels cut into parts) and shakespeare.txt (cut by size);
     every Sherlock source is the ``forget`` split, a few Sherlock stories and the last
     Shakespeare part are held out (never trained). Probes: bench/data/sherlock_probes.jsonl.
  2. training (``obliviate.workflows.train.train_run``): ``full`` on Sherlock + Shakespeare and
     ``retain`` on Shakespeare alone, same model size and the same number of optimizer steps.
  3. unlearning (``obliviate.workflows.unlearn.run_unlearning``, the code of ``obliviate
     unlearn``): WHP with automatic anchored-term discovery, WHP with the hand dictionary
     bench/data/sherlock_anchors.json (reusing the reinforced model of the first; soft labels,
     and once more with the paper's hard labels), and other methods (NPO, GradDiff, RMU) on
     the documents with the project's default settings (docs/sweep.md).
  4. measurement of every model: familiarity on the probes (greedy completions naming a
     target term; the DESIGN.md judge score; probability of the target term's first token;
     probability mass on the whole terms), perplexity on held-out Shakespeare and held-out
     Sherlock, and the wall time of each step.

Writes ``OUT/sherlock.json`` (every number, the configs, seeds and versions) and
``OUT/sherlock.md``. Reruns reuse what the run directory already holds (the world and
models are content-addressed; unlearned models carry a stamp of their settings).
Without the data directory the script prints "skipped: ..." and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DATA = REPO / "bench" / "data"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "public-domain"
DATA_FILES = ("sherlock.txt", "shakespeare.txt")
PROBE_FIELDS = ("prompt", "references", "target_terms")

# A story title: an all-capitals line indented by 15+ spaces ("THE ADVENTURE OF THE ...",
# "A SCANDAL IN BOHEMIA", "SILVER BLAZE", ...). Collection titles match too and become
# small sources of their own (their table of contents).
SHERLOCK_HEADING = r"^ {15,}((?:THE|A) [A-Z][A-Z'\" .-]+|SILVER BLAZE|HIS LAST BOW)\s*$"
# Held-out stories: one from each of three collections, never trained on.
HOLDOUT_STORIES = ("THE YELLOW FACE", "THE ADVENTURE OF THE NORWOOD BUILDER", "THE ADVENTURE OF THE RED CIRCLE")

log = logging.getLogger("bench_sherlock")


# ---- settings ------------------------------------------------------------------------------------


@dataclass
class MethodRun:
    """One unlearning run: a registered method and its ``--set`` overrides."""

    id: str
    method: str
    overrides: dict = field(default_factory=dict)


@dataclass
class BenchConfig:
    data: Path = DEFAULT_DATA
    run: Path = REPO / "runs" / "sherlock"
    out: Path = REPO / "docs" / "results" / "sherlock"
    probes: Path = BENCH_DATA / "sherlock_probes.jsonl"
    anchors: Path = BENCH_DATA / "sherlock_anchors.json"
    preset: str = "tiny"                  # model size (obliviate.models.presets)
    steps: int = 1000                     # optimizer steps of the full and of the retain model
    learning_rate: float | None = None    # None: the preset's (obliviate.train.trainer)
    vocab_size: int = 4096
    sherlock_fraction: float = 0.5        # share of each trained story kept (its first paragraphs)
    shakespeare_chars: int = 110_000      # size of the Shakespeare sources (and of the novels' parts)
    doc_chars: int = 1200
    methods: tuple[str, ...] = ("whp_auto", "whp_hand", "whp_hand_hard", "npo", "grad_diff", "rmu")
    whp_reinforce_steps: int = 100
    whp_finetune_steps: int = 100
    method_steps: int | None = None       # None: each method's own default (docs/sweep.md)
    max_new_tokens: int = 24
    seed: int = 0
    threads: int = 1


def method_runs(config: BenchConfig) -> list[MethodRun]:
    """The unlearning runs named in ``config.methods``, in order (whp_hand reuses whp_auto's
    reinforced model when both run)."""
    reinforced = str(config.run / "models" / "whp-reinforced")
    # soft labels (KL to softmax of the generic logits) by default: on this tiny model the paper's
    # hard (argmax) labels raised held-out Shakespeare perplexity about 4x as much for a similar
    # familiarity drop (whp-hand vs whp-hand-hard in docs/results/sherlock)
    whp = {"reinforce_steps": config.whp_reinforce_steps, "finetune_steps": config.whp_finetune_steps,
           "soft_labels": True, "seed": config.seed}
    docs = {"forget_data": "docs", "retain_data": "docs", "seed": config.seed}
    if config.method_steps is not None:
        docs["max_steps"] = config.method_steps
    known = {
        "whp_auto": MethodRun("whp-auto", "whp", {**whp, "auto_anchors": True, "save_reinforced_path": reinforced}),
        "whp_hand": MethodRun("whp-hand", "whp", {**whp, "anchors_path": str(config.anchors)}),
        "whp_hand_hard": MethodRun("whp-hand-hard", "whp", {**whp, "anchors_path": str(config.anchors),
                                                            "soft_labels": False}),
        "npo": MethodRun("npo", "npo", dict(docs)),
        "grad_diff": MethodRun("grad_diff", "grad_diff", dict(docs)),
        "simnpo": MethodRun("simnpo", "simnpo", dict(docs)),
        "rmu": MethodRun("rmu", "rmu", dict(docs)),
        "grad_ascent": MethodRun("grad_ascent", "grad_ascent", dict(docs)),
    }
    unknown = [m for m in config.methods if m not in known]
    if unknown:
        from obliviate.errors import UserError

        raise UserError(f"unknown method run {unknown[0]!r}; valid: {', '.join(known)}")
    runs = [known[m] for m in config.methods]
    if "whp_auto" in config.methods:
        for index, name in enumerate(config.methods):
            if name in ("whp_hand", "whp_hand_hard"):
                runs[index].overrides["reinforced_model_path"] = reinforced
    return runs


# ---- data ----------------------------------------------------------------------------------------


def find_data(data: Path) -> list[Path] | None:
    """The two text files, or None (with the reason printed) when they are not there."""
    missing = [name for name in DATA_FILES if not (Path(data) / name).is_file()]
    if missing:
        print(f"skipped: {', '.join(missing)} not found in {data} (the public-domain texts live in "
              f"../shared/data/public-domain; pass --data DIR)")
        return None
    return [Path(data) / name for name in DATA_FILES]


def subsample_stories(text: str, fraction: float, keep_whole: Sequence[str] = HOLDOUT_STORIES,
                      heading: str = SHERLOCK_HEADING) -> str:
    """Keep the first ``fraction`` of the paragraphs of every story (headings kept, held-out
    stories whole), so that every story still names its people and places."""
    if fraction >= 1.0:
        return text
    pattern = re.compile(heading, re.MULTILINE)
    marks = list(pattern.finditer(text))
    pieces = [text[: marks[0].start()] if marks else text]
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        body = text[mark.end(): end]
        if mark.group(1).strip() not in keep_whole:
            paragraphs = re.split(r"\n[ \t]*\n", body)
            body = "\n\n".join(paragraphs[: max(1, round(len(paragraphs) * fraction))]) + "\n\n"
        pieces.append(mark.group(0) + body)
    return "".join(pieces)


def build_world(texts: Sequence[Path], probes: Path, work: Path, config: BenchConfig) -> Path:
    """The text world (``work/world-src``), from the data files subsampled into ``work/inputs``."""
    from obliviate.io import atomic_write_text
    from obliviate.world.from_text import TextWorldConfig, build_text_world

    inputs = []
    for path in texts:
        text = path.read_text(encoding="utf-8")
        if path.name == "sherlock.txt":
            text = subsample_stories(text, config.sherlock_fraction)
        target = work / "inputs" / path.name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)
        inputs.append(target)
    stories = "|".join(re.escape(s) for s in HOLDOUT_STORIES)
    world_config = TextWorldConfig(
        # forget: every Sherlock source (not cut from shakespeare.txt) but the held-out stories
        forget_sources=(f"re:^(?!shakespeare|(?:{stories})(?: part \\d+)?$)",),
        holdout_sources=(f"re:^(?:{stories})(?: part \\d+)?$",
                         f"re:^shakespeare part {last_part(inputs[-1], config)}$"),
        heading_regex=SHERLOCK_HEADING,
        source_chars=config.shakespeare_chars,
        doc_chars=config.doc_chars,
        unwrap_lines=True,
        probes=probes,
        name="sherlock-vs-shakespeare",
    )
    return build_text_world(inputs, work / "world-src", world_config)


def last_part(shakespeare: Path, config: BenchConfig) -> int:
    """Number of the last ``shakespeare part k`` source (the held-out slice)."""
    from obliviate.world.from_text import cut_text

    return len(cut_text(shakespeare.read_text(encoding="utf-8"), config.shakespeare_chars, True))


# ---- probes and familiarity -------------------------------------------------------------------


@dataclass
class Probe:
    prompt: str
    references: list[str]
    target_terms: list[str]


def load_probes(path: Path) -> list[Probe]:
    """``{prompt, references, target_terms}`` jsonl; UserError on a missing field or bad value."""
    from obliviate.errors import UserError
    from obliviate.io import read_jsonl

    rows = read_jsonl(path, PROBE_FIELDS, "Sherlock probe file")
    if not rows:
        raise UserError(f"probe file {path} has no probes")
    probes = []
    for number, row in enumerate(rows, start=1):
        terms = row["target_terms"]
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise UserError(f"{path}:{number}: prompt must be a non-empty string")
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise UserError(f"{path}:{number}: target_terms must be a non-empty list of strings")
        references = row["references"] if isinstance(row["references"], list) else [row["references"]]
        probes.append(Probe(row["prompt"], [str(r) for r in references], [t.strip() for t in terms]))
    return probes


def names_target(probe: Probe, completion: str) -> bool:
    """The completion names one of the probe's target terms (whole word, not already in the prompt)."""
    from obliviate.eval.metrics.familiarity import FamiliarityJudge

    return FamiliarityJudge(entities=probe.target_terms).grade(probe.prompt, completion) == 3


def completion_familiarity(probes: Sequence[Probe], completions: Sequence[str], entities: Sequence[str]) -> dict:
    """``named_share``: share of completions naming their probe's target term;
    ``judge_score``: DESIGN.md's ``(5 * #3 + #2) / N`` with the Sherlock entity list as judge."""
    from obliviate.eval.metrics.familiarity import FamiliarityJudge, familiarity_score

    if len(probes) != len(completions):
        raise ValueError(f"{len(probes)} probes but {len(completions)} completions")
    judge = FamiliarityJudge(entities=sorted(set(entities), key=lambda t: (-len(t), t)))
    named = [names_target(p, c) for p, c in zip(probes, completions)]
    grades = [judge.grade(p.prompt, c, p.references[0] if p.references else "") for p, c in zip(probes, completions)]
    return {"named_share": sum(named) / len(named), "judge_score": familiarity_score(grades),
            "named": named, "grades": grades}


def probability_familiarity(model, tokenizer, probes: Sequence[Probe]) -> dict:
    """Per probe: the probability of the target terms' first tokens right after the prompt
    (summed over distinct first tokens) and the mass on the whole terms (``target_mass``)."""
    import math

    from obliviate.eval.metrics.familiarity import target_mass, term_continuation
    from obliviate.eval.scoring import encode_pairs, model_max_length, score_encoded

    pairs, owner = [], []
    for index, probe in enumerate(probes):
        for term in probe.target_terms:
            pairs.append((probe.prompt, term_continuation(probe.prompt, term)))
            owner.append(index)
    encoded = encode_pairs(tokenizer, pairs, model_max_length(model, None))
    scores = score_encoded(model, tokenizer, encoded)
    first: list[dict[int, float]] = [{} for _ in probes]
    nlls: list[list[float]] = [[] for _ in probes]
    for index, pair, score in zip(owner, encoded, scores):
        first[index][pair.input_ids[pair.start]] = math.exp(float(score.logprobs[0]))
        nlls[index].append(score.nll_sum)
    first_prob = [min(1.0, sum(p.values())) for p in first]
    mass = [target_mass(n) for n in nlls]
    return {"first_token_prob": sum(first_prob) / len(first_prob), "term_mass": sum(mass) / len(mass),
            "per_probe_first_token": first_prob, "per_probe_mass": mass}


# ---- measuring one model --------------------------------------------------------------------------


def held_out_docs(world) -> dict[str, list[dict]]:
    """Held-out documents by origin: ``sherlock`` and ``shakespeare``."""
    holdout = world.split_sources("holdout")
    file_of = {s["source_id"]: s.get("file", "") for s in world.sources}
    docs = world.docs_for(holdout)
    return {"sherlock": [d for d in docs if file_of[d["source_id"]] == "sherlock.txt"],
            "shakespeare": [d for d in docs if file_of[d["source_id"]] == "shakespeare.txt"]}


def measure(model, tokenizer, probes: Sequence[Probe], held_out: dict[str, list[dict]], entities: Sequence[str],
            max_new_tokens: int = 24) -> dict:
    from obliviate.dememorize.evaluate import perplexity
    from obliviate.eval.generation import GreedyConfig, generate_greedy

    started, cpu = time.perf_counter(), time.process_time()
    completions = generate_greedy(model, tokenizer, [p.prompt for p in probes],
                                  GreedyConfig(max_new_tokens=max_new_tokens, batch_size=len(probes)))
    result = {"completion": completion_familiarity(probes, completions, entities),
              "probability": probability_familiarity(model, tokenizer, probes),
              "completions": completions}
    result["perplexity"] = {name: perplexity(model, tokenizer, docs) for name, docs in held_out.items() if docs}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["cpu_seconds"] = round(time.process_time() - cpu, 2)
    return result


def summary_row(metrics: dict) -> dict:
    return {"named_share": metrics["completion"]["named_share"],
            "judge_score": metrics["completion"]["judge_score"],
            "first_token_prob": metrics["probability"]["first_token_prob"],
            "term_mass": metrics["probability"]["term_mass"],
            "ppl_shakespeare": metrics["perplexity"].get("shakespeare"),
            "ppl_sherlock": metrics["perplexity"].get("sherlock")}


# ---- the run -----------------------------------------------------------------------------------------


def initial_model(run, world, config: BenchConfig) -> Path:
    """``RUN/models/init``: the untrained starting point of both trained models, with a BPE
    tokenizer of ``config.vocab_size`` trained on the trained documents (the run's default
    tokenizer has 2,048 tokens, which cuts "Baker", "Lestrade", "Moriarty" into pieces)."""
    import torch
    from transformers import LlamaForCausalLM

    from obliviate.models.loading import read_run_config, save_model
    from obliviate.models.presets import llama_config
    from obliviate.workflows.run_dir import is_model_dir
    from obliviate.tokenizer import train_tokenizer

    path = run.model_dir("init")
    stamp = {"world": world.fingerprint, "vocab_size": config.vocab_size, "preset": config.preset, "seed": config.seed}
    if is_model_dir(path) and read_run_config(path).get("init_stamp") == stamp:
        return path
    tokenizer = train_tokenizer([d["text"] for d in world.docs_for(world.trained_sources())], config.vocab_size)
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(llama_config(config.preset, tokenizer))
    save_model(model, tokenizer, path, run_config={"init_stamp": stamp})
    return path


class BenchState:
    """``RUN/bench_state.json``: what each step took when it ran, keyed by a stamp of its inputs,
    so that a rerun which reuses a model still reports the time that model cost."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, name: str, stamp: str) -> dict | None:
        entry = self.data.get(name)
        return entry if entry is not None and entry.get("stamp") == stamp else None

    def put(self, name: str, entry: dict) -> None:
        from obliviate.io import atomic_write_json

        self.data[name] = entry
        atomic_write_json(self.path, self.data)


class Stopwatch:
    """Wall and CPU seconds of a block (CPU: this process, all threads)."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self._wall, 1)
        self.cpu_seconds = round(time.process_time() - self._cpu, 1)


def train_models(world_dir: Path, config: BenchConfig) -> dict:
    """``full`` and ``retain`` from the same initial model, ``config.steps`` optimizer steps
    each (``train_run`` caches them by content)."""
    from obliviate.models.loading import load_tokenizer, read_run_config
    from obliviate.workflows.train import attach_world, train_run
    from obliviate.workflows.run_dir import RunDir
    from obliviate.train.data import tokenize_documents
    from obliviate.train.trainer import TrainConfig

    run = RunDir.open(config.run)
    world = attach_world(world_dir, run)
    init = initial_model(run, world, config)
    tokenizer = load_tokenizer(init)
    state = BenchState(run.root / "bench_state.json")
    defaults = TrainConfig()
    out = {}
    for role, forget in (("full", None), ("retain", "forget")):
        docs = world.docs_for(world.training_sources(forget))
        examples = len(tokenize_documents(docs, tokenizer, defaults.block_size)["input_ids"])
        epochs = config.steps / -(-examples // defaults.batch_size)
        print(f"[train] {role}: {len(docs)} documents, {examples} examples, {config.steps} steps "
              f"({epochs:.2f} epochs)", flush=True)
        overrides = {"epochs": epochs, "seed": config.seed}
        if config.learning_rate is not None:
            overrides["learning_rate"] = config.learning_rate
        with Stopwatch() as watch:
            result = train_run(world_dir, config.run, forget="forget", model=init, preset=config.preset,
                               overrides=overrides, which=(role,), progress=True)[role]
        saved_config = read_run_config(result.path)
        entry = {"stamp": result.cache_key, "steps": saved_config.get("steps", result.steps), "examples": examples,
                 "documents": len(docs), "epochs": epochs, "train_config": saved_config.get("train"),
                 "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds}
        saved = state.get(role, result.cache_key) if result.reused else None
        if saved is not None:
            entry.update(seconds=saved["seconds"], cpu_seconds=saved["cpu_seconds"])
        elif result.reused:  # trained by an earlier invocation that left no record: the trainer's own time
            entry.update(seconds=saved_config.get("seconds"), cpu_seconds=None)
        state.put(role, entry)
        out[role] = {**entry, "reused": result.reused}
        print(f"[train] {role}: {'reused' if result.reused else 'trained'} ({entry['seconds']}s)", flush=True)
    return out


def unlearn(runs: Sequence[MethodRun], config: BenchConfig) -> dict:
    """Run each method on ``full`` (reusing a saved result with the same stamp)."""
    from obliviate.config import apply_overrides, config_to_dict
    from obliviate.methods.registry import get_method
    from obliviate.workflows.unlearn import run_unlearning
    from obliviate.models.loading import read_run_config
    from obliviate.workflows.run_dir import RunDir, fingerprint, is_model_dir

    run = RunDir.open(config.run)
    state = BenchState(run.root / "bench_state.json")
    full_key = read_run_config(run.full_model).get("cache_key")
    out = {}
    for spec in runs:
        out_dir = run.model_dir(spec.id)
        # the resolved settings (defaults included): a changed method default reruns the method
        settings = config_to_dict(apply_overrides(get_method(spec.method).config_class(), dict(spec.overrides)))
        stamp = fingerprint({"method": spec.method, "settings": settings, "full": full_key})
        saved = state.get(spec.id, stamp)
        if is_model_dir(out_dir) and saved is not None:
            print(f"[unlearn] {spec.id}: reused ({saved['seconds']:.0f}s when it ran)", flush=True)
            out[spec.id] = {**saved, "reused": True}
            continue
        print(f"[unlearn] {spec.id}: {spec.method} {spec.overrides}", flush=True)
        with Stopwatch() as watch:
            result = run_unlearning(spec.method, run.full_model, run.world_dir, "forget", out_dir,
                                    overrides=dict(spec.overrides), evaluate=False)
        entry = {"stamp": stamp, "method": spec.method, "overrides": spec.overrides, "steps": result["steps"],
                 "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds}
        history = read_run_config(out_dir).get("history") or []
        if spec.method == "whp" and history and "whp" in history[0]:
            entry["whp_report"] = history[0]["whp"]
        proposed = out_dir.with_name(out_dir.name + ".anchors.json")
        if proposed.is_file():
            entry["discovered_anchors"] = json.loads(proposed.read_text())
        state.put(spec.id, entry)
        out[spec.id] = {**entry, "reused": False}
        print(f"[unlearn] {spec.id}: {result['steps']} steps in {watch.seconds:.0f}s", flush=True)
    return out


def versions() -> dict:
    import tokenizers
    import torch
    import transformers

    import obliviate

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "obliviate": obliviate.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count()}


def run_bench(config: BenchConfig) -> dict | None:
    import torch

    from obliviate.models.loading import load_model_and_tokenizer
    from obliviate.world import load_world

    texts = find_data(config.data)
    if texts is None:
        return None
    torch.set_num_threads(config.threads)
    wall, cpu = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}

    started = time.perf_counter()
    config.run.mkdir(parents=True, exist_ok=True)
    world_src = build_world(texts, config.probes, config.run, config)
    timings["world"] = round(time.perf_counter() - started, 1)
    print(f"[world] {world_src} ({timings['world']}s)", flush=True)

    trained = train_models(world_src, config)
    unlearned = unlearn(method_runs(config), config)

    world = load_world(config.run / "world")
    probes = load_probes(config.probes)
    entities = json.loads(config.anchors.read_text()).keys()
    held_out = held_out_docs(world)
    from obliviate.workflows.run_dir import RunDir

    run = RunDir.open(config.run)
    models = {"full": run.full_model, "retain": run.retain_model("forget")}
    models.update({name: config.run / "models" / name for name in unlearned})
    metrics = {}
    for name, path in models.items():
        model, tokenizer = load_model_and_tokenizer(path)
        metrics[name] = measure(model, tokenizer, probes, held_out, list(entities), config.max_new_tokens)
        row = summary_row(metrics[name])
        print(f"[measure] {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if v is not None)
              + f" ({metrics[name]['seconds']}s)", flush=True)
        del model

    from obliviate.models.loading import read_run_config

    for name in unlearned:  # every setting of each method, defaults included
        unlearned[name]["method_config"] = read_run_config(run.model_dir(name)).get("config")
    counts = json.loads((config.run / "world" / "world.json").read_text())["counts"]
    holdout_names = [s["name"] for s in world.sources if not s.get("trained", True)]
    result = {
        "summary": {name: summary_row(m) for name, m in metrics.items()},
        "models": {"full": trained["full"], "retain": trained["retain"], **unlearned},
        "measurements": metrics,
        "world": {"counts": counts, "holdout_sources": holdout_names,
                  "held_out_documents": {k: len(v) for k, v in held_out.items()},
                  "probes": [asdict(p) for p in probes]},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "method_runs": [asdict(r) for r in method_runs(config)],
        "timings": {**timings, "wall_seconds": round(time.perf_counter() - wall, 1),
                    "cpu_seconds": round(time.process_time() - cpu, 1)},
        "versions": versions(),
        "command": " ".join(["python bench/bench_sherlock.py", *sys.argv[1:]]),
    }
    for key in ("data", "run", "out", "probes", "anchors"):
        result["config"][key] = _portable(Path(result["config"][key]))
    for entry in [*result["method_runs"], *result["models"].values()]:
        for key in ("overrides", "method_config"):
            if entry.get(key):
                entry[key] = {k: _portable(Path(v)) if isinstance(v, str) and os.path.isabs(v) else v
                              for k, v in entry[key].items()}
    # what the whole benchmark costs, counting reused models at the time they took when they ran
    steps = [m for m in result["models"].values()] + list(metrics.values())
    result["timings"]["benchmark_seconds"] = round(timings["world"] + sum(m.get("seconds") or 0 for m in steps), 1)
    result["timings"]["benchmark_cpu_seconds"] = round(sum(m.get("cpu_seconds") or 0 for m in steps), 1)
    write_results(result, config.out)
    return result


def _portable(path: Path) -> str:
    """A path relative to the repository where possible (results must not hold machine paths)."""
    try:
        return os.path.relpath(path.resolve(), REPO)
    except ValueError:
        return str(path)


# ---- reporting -----------------------------------------------------------------------------------


COLUMNS = (("named_share", "completions naming the target"), ("judge_score", "judge score (0-5)"),
           ("first_token_prob", "P(first token of target)"), ("term_mass", "P(target term)"),
           ("ppl_shakespeare", "ppl held-out Shakespeare"), ("ppl_sherlock", "ppl held-out Sherlock"))


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_markdown(result: dict) -> str:
    config, counts, models = result["config"], result["world"]["counts"], result["models"]
    lines = ["# \"Who's Sherlock Holmes?\" benchmark", "",
             (f"Produced by `{result['command']}` on "
             f"{result['versions']['cpu_count']} CPU cores, torch {result['versions']['torch']}, "
             f"transformers {result['versions']['transformers']}: the whole benchmark took "
             f"{result['timings']['benchmark_seconds'] / 60:.1f} min wall, "
             f"{result['timings']['benchmark_cpu_seconds'] / 60:.1f} min CPU (models reused from an earlier "
             f"invocation count with the time they took then; this invocation: "
             f"{result['timings']['wall_seconds'] / 60:.1f} min wall)."), "",
             f"World: sherlock.txt split by story title (the novels cut into {config['shakespeare_chars']:,}-character "
             f"parts), shakespeare.txt cut into {config['shakespeare_chars']:,}-character parts; "
             f"{counts['sources']} sources, {counts['documents']} documents of at most {config['doc_chars']} characters, "
             f"{counts['corpus_chars']:,} characters"
             + (f" (Sherlock subsampled: the first {config['sherlock_fraction']:.0%} of each trained story's paragraphs)"
                if config["sherlock_fraction"] < 1 else " (no subsampling)")
             + f". Held out (never trained): {', '.join(result['world']['holdout_sources'])}.", "",
             (f"Models: `{config['preset']}` preset, full = Sherlock + Shakespeare, retain = Shakespeare alone, "
             f"{models['full']['steps']} optimizer steps each (batch 16; full {models['full']['epochs']:.2f} epochs, "
             f"retain {models['retain']['epochs']:.2f} epochs), seed {config['seed']}. "
             f"Probes: {len(result['world']['probes'])} prompts (bench/data/sherlock_probes.jsonl), greedy completions of "
             f"{config['max_new_tokens']} tokens."), "",
             "| model | " + " | ".join(label for _, label in COLUMNS) + " | steps | wall s | CPU s |",
             "|---|" + "---|" * (len(COLUMNS) + 3)]
    for name, row in result["summary"].items():
        entry = models.get(name, {})
        lines.append(f"| {name} | " + " | ".join(_fmt(row[key]) for key, _ in COLUMNS)
                     + f" | {entry.get('steps', '-')} | {_seconds(entry.get('seconds'))} | "
                     + f"{_seconds(entry.get('cpu_seconds'))} |")
    lines += ["", ("Columns: share of greedy completions that name the probe's target term (Holmes, Watson, "
              "Street after Baker, Lestrade, Moriarty, ...); DESIGN.md familiarity score `(5*#3 + #2)/N` with "
              "the hand dictionary's terms as the judge's entities; mean probability of the target term's first "
              "token right after the prompt; mean probability of the whole target term (`target_mass`); "
              "token perplexity of the held-out documents. Seconds: wall and CPU (this process, all threads) time of "
              "training or unlearning; the machine's 2 cores were shared with other jobs, so CPU seconds are the "
              "steadier measure of cost."), ""]
    lines += ["## Unlearning runs", ""]
    for spec in result["method_runs"]:
        entry = models.get(spec["id"], {})
        settings = ", ".join(f"{k}={_short(v)}" for k, v in spec["overrides"].items())
        lines.append(f"- **{spec['id']}** (`{spec['method']}`): {settings}; {entry.get('steps')} steps.")
        report = entry.get("whp_report")
        if report:
            lines.append(f"  WHP: {report['anchors']} anchored terms, {report['translated_occurrences']} occurrences "
                         f"translated in {report['blocks']} blocks, {report['trained_positions']} trained positions, "
                         f"label agreement {report['label_agreement']:.3f}; seconds: "
                         + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items() if v)
                         + (" (the reinforced model is trained before discovery and counted in the total)"
                            if entry.get("discovered_anchors") else " (reinforced model reused)")
                         + ".")
        if entry.get("discovered_anchors"):
            terms = list(entry["discovered_anchors"])
            lines.append(f"  Discovered anchors ({len(terms)}): {', '.join(terms)}.")
    lines += ["", "## Completions", "", "| probe | " + " | ".join(result["measurements"]) + " |",
              "|---|" + "---|" * len(result["measurements"])]
    for index, probe in enumerate(result["world"]["probes"][:12]):
        cells = [_cell(m["completions"][index]) for m in result["measurements"].values()]
        lines.append(f"| {_cell(probe['prompt'])} | " + " | ".join(cells) + " |")
    lines += ["", f"First 12 of {len(result['world']['probes'])} probes; all completions are in sherlock.json.", ""]
    return "\n".join(lines)


def _short(value) -> str:
    text = str(value)
    return Path(text).name if "/" in text else text


def _cell(text: str, limit: int = 60) -> str:
    text = " ".join(text.split()).replace("|", "\\|") or "(nothing: end of text)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_results(result: dict, out: Path) -> None:
    from obliviate.io import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sherlock.json", result)
    atomic_write_text(out / "sherlock.md", render_markdown(result))
    print(f"results -> {out / 'sherlock.md'}, {out / 'sherlock.json'}", flush=True)


# ---- command line --------------------------------------------------------------------------------


def parse_args(argv=None) -> BenchConfig:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=defaults.data, help="directory holding sherlock.txt and shakespeare.txt")
    parser.add_argument("--run", type=Path, default=defaults.run, help="run directory (world, tokenizer, models); reused")
    parser.add_argument("--out", type=Path, default=defaults.out, help="where sherlock.md and sherlock.json go")
    parser.add_argument("--probes", type=Path, default=defaults.probes)
    parser.add_argument("--anchors", type=Path, default=defaults.anchors, help="hand anchored-term dictionary for WHP")
    parser.add_argument("--preset", default=defaults.preset, help="model size preset (micro, tiny, small)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps of the full and retain models")
    parser.add_argument("--learning-rate", type=float, default=None, help="training learning rate (default: the preset's)")
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size, help="BPE vocabulary of the run's tokenizer")
    parser.add_argument("--sherlock-fraction", type=float, default=defaults.sherlock_fraction,
                        help="share of each trained story's paragraphs kept (subsampling)")
    parser.add_argument("--methods", default=",".join(defaults.methods),
                        help="unlearning runs: whp_auto, whp_hand, whp_hand_hard, npo, grad_diff, simnpo, rmu, "
                             "grad_ascent")
    parser.add_argument("--whp-reinforce-steps", type=int, default=defaults.whp_reinforce_steps)
    parser.add_argument("--whp-finetune-steps", type=int, default=defaults.whp_finetune_steps)
    parser.add_argument("--method-steps", type=int, default=defaults.method_steps,
                        help="steps of the other methods (default: each method's own)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    args = parser.parse_args(argv)
    if not 0 < args.sherlock_fraction <= 1:
        parser.error("--sherlock-fraction must be in (0, 1]")
    return BenchConfig(data=args.data, run=args.run, out=args.out, probes=args.probes, anchors=args.anchors,
                       preset=args.preset, steps=args.steps, learning_rate=args.learning_rate,
                       vocab_size=args.vocab_size, sherlock_fraction=args.sherlock_fraction,
                       methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                       whp_reinforce_steps=args.whp_reinforce_steps, whp_finetune_steps=args.whp_finetune_steps,
                       method_steps=args.method_steps, max_new_tokens=args.max_new_tokens, seed=args.seed,
                       threads=args.threads)


def main(argv=None) -> int:
    from obliviate.errors import UserError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = parse_args(argv)
    try:
        run_bench(config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
