"""Dense-model deletions: a post-hoc method run in a separate worker process, one at a time.

The server's ``JobRunner`` thread takes the oldest queued deletion from the ledger, marks
it running and starts ``python -m obliviate.serve.jobs SPEC.json``. The worker calls
``run_unlearning`` on the model being served (the cumulative forget set: every source
deleted so far, so no earlier deletion is trained back in as retain data), saves the new
model atomically into a fresh directory and writes its result JSON atomically; only then
does the server load that model and swap it in. The worker dies with the server
(``PR_SET_PDEATHSIG``); a directory it left half-written is a hidden temporary one that
the next start removes, and the interrupted deletion is marked failed and queued again.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from obliviate.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3           # a job that keeps crashing the server is not re-queued forever
TAIL_CHARS = 2000          # of a failed worker's stderr, kept in the ledger


@dataclass
class JobSpec:
    """What the worker process needs (written as JSON next to the job's output)."""

    deletion: str
    method: str
    model: str                 # the model being served when the job started
    world: str
    forget_sources: list[int]  # cumulative: every source deleted so far plus this request's
    split: str                 # the name of the forget split added to the world for this job
    out: str                   # the new model directory (written atomically by save_model)
    result: str                # the worker's result JSON
    overrides: dict = dataclasses.field(default_factory=dict)
    retain_model: str | None = None
    evaluate: bool = True
    device: str | None = None
    attacks: list[str] = dataclasses.field(default_factory=list)   # obliviate.attacks names, run on the new model


def _die_with_parent() -> None:   # runs in the child between fork and exec (Linux)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass


def remove_leftovers(models_dir: Path) -> list[str]:
    """Hidden temporary directories an interrupted worker left (atomic_directory's); removed."""
    removed = []
    if models_dir.is_dir():
        for path in models_dir.iterdir():
            if path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.endswith(".old")):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


class JobRunner:
    """The thread that runs queued deletion jobs in worker processes, oldest first.

    ``next_job()`` returns the next JobSpec (after marking it running) or None;
    ``finish(spec, result, error)`` records the outcome (and swaps the model on success).
    """

    def __init__(self, next_job: Callable[[], JobSpec | None],
                 finish: Callable[[JobSpec, dict | None, str | None], None], timeout_s: float | None = None):
        self.next_job = next_job
        self.finish = finish
        self.timeout_s = timeout_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="obliviate-jobs", daemon=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def _loop(self) -> None:
        while not self._stopping:
            spec = None
            try:
                spec = self.next_job()
            except Exception:
                log.exception("cannot take the next deletion job")
            if spec is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            result, error = self._run(spec)
            if self._stopping:
                return   # the server is stopping: the job stays running in the ledger, re-queued on restart
            try:
                self.finish(spec, result, error)
            except Exception as exc:
                log.exception("deletion %s: recording the outcome failed", spec.deletion)
                try:
                    self.finish(spec, None, f"recording the outcome failed: {exc}")
                except Exception:
                    log.exception("deletion %s: recording the failure failed", spec.deletion)

    def _run(self, spec: JobSpec) -> tuple[dict | None, str | None]:
        spec_path = Path(spec.result).with_suffix(".spec.json")
        atomic_write_json(spec_path, dataclasses.asdict(spec))
        log_path = Path(spec.result).with_suffix(".log")
        started = time.perf_counter()
        with open(log_path, "wb") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "obliviate.serve.jobs", str(spec_path)],
                                            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
            try:
                code = self.process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None, f"the job ran past its time limit ({self.timeout_s:.0f} s)"
            finally:
                self.process = None
        seconds = time.perf_counter() - started
        if code != 0 or not Path(spec.result).is_file():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-TAIL_CHARS:] if log_path.is_file() else ""
            last = [line for line in tail.splitlines() if line.strip()]
            return None, f"the worker exited with status {code}: {last[-1] if last else 'no output'}"
        result = read_json(spec.result, "job result")
        result["worker_seconds"] = seconds
        return result, None


def reference_is_exact(retain_model: str | None, world, forget: set[int]) -> bool | None:
    """Was the retain model trained on exactly this world's sources minus the deleted ones
    (then forget quality compares with the true counterfactual)? None: no reference or no record."""
    from obliviate.models.loading import read_run_config

    if retain_model is None:
        return None
    inputs = read_run_config(retain_model).get("inputs")
    if not isinstance(inputs, dict) or "sources" not in inputs:
        return None
    return inputs.get("world") == world.fingerprint and \
        sorted(int(s) for s in inputs["sources"]) == sorted(world.training_sources(None) - forget)


def run_job(spec: JobSpec) -> dict:
    """In the worker: unlearn the forget set from the served model, save, evaluate."""
    from obliviate.workflows.unlearn import run_unlearning   # heavy: only the worker needs it
    from obliviate.eval.fingerprint import model_dir_fingerprint
    from obliviate.world.loader import load_world

    world = load_world(spec.world)
    # the forget split of this job, and a retain split without it (the evaluator refuses an overlap)
    forget = set(spec.forget_sources)
    splits = {**world.splits, spec.split: sorted(forget)}
    if "retain" in splits:
        splits["retain"] = [s for s in splits["retain"] if s not in forget]
    world = dataclasses.replace(world, splits=splits)
    started = time.perf_counter()
    outcome = run_unlearning(spec.method, spec.model, world, spec.split, spec.out, overrides=spec.overrides,
                             evaluate=spec.evaluate, retain_model=spec.retain_model, device=spec.device)
    result = {"model_dir": spec.out, "model_hash_after": model_dir_fingerprint(spec.out),
              "steps": outcome["steps"], "method_seconds": outcome["seconds"],
              "job_seconds": time.perf_counter() - started, "eval": outcome["eval"], "summary": outcome["summary"],
              "reference": spec.retain_model, "reference_exact": reference_is_exact(spec.retain_model, world, forget)}
    if spec.attacks:
        result["attacks"], result["attacks_json"] = attack_new_model(spec, world)
    atomic_write_json(spec.result, result)
    return result


def attack_new_model(spec: JobSpec, world) -> tuple[list[dict], str]:
    """The named attacks on the job's model (the retain model as the baseline when given):
    their summary numbers for the certificate, and the path of their full JSON."""
    from obliviate.attacks.runner import run_attacks
    from obliviate.models.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(spec.out, device=spec.device)
    retain = None if spec.retain_model is None else load_model_and_tokenizer(spec.retain_model, device=spec.device)[0]
    results = run_attacks(model, tokenizer, world, spec.split, spec.attacks, retain_model=retain)
    path = Path(spec.result).with_suffix(".attacks.json")
    atomic_write_json(path, results)
    summary = results["summary"]
    attacks = [{"name": name, "seconds": results["seconds"].get(name),
                "result": {k: v for k, v in summary.items() if k.startswith(name + "_") or
                           (name == "icl" and k.startswith("icl"))}}
               for name in results["attacks"]]
    return attacks, str(path)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if len(argv) != 1:
        print("usage: python -m obliviate.serve.jobs SPEC.json", file=sys.stderr)
        return 2
    spec = JobSpec(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    delay = float(os.environ.get("OBLIVIATE_SERVE_JOB_DELAY", "0"))   # tests: a job slow enough to crash into
    if delay:
        time.sleep(delay)
    from obliviate.errors import UserError

    try:
        run_job(spec)
    except UserError as exc:   # one line the ledger can keep
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
