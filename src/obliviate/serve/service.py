"""The deletion service: the served model, the ledger, and what a deletion does to them.

Everything that changes what requests see (a sink switch, a dense model swap) happens
under one state lock together with its ledger row and a bump of the state version, so
an observer never sees the ledger and the served model disagree. On start the ledger is
replayed: switched-off sources are switched off again, the newest finished dense job's
model is served, and a job the last process did not finish is marked failed and queued
again (its half-written output, a hidden temporary directory, is removed).
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from obliviate.artifacts import fingerprint
from obliviate.errors import UserError
from obliviate.eval.fingerprint import model_dir_fingerprint
from obliviate.methods.registry import UnlearnTask, get_method
from obliviate.methods.switch import SwitchConfig, SwitchMethod
from obliviate.models.loading import check_model_dir, load_model_and_tokenizer
from obliviate.models.sinks import is_sink_model
from obliviate.serve.auth import Principal
from obliviate.serve.generation import Served
from obliviate.serve.jobs import MAX_ATTEMPTS, JobSpec, remove_leftovers
from obliviate.serve.ledger import Deletion, Ledger, requested_row, status_row, utc_now
from obliviate.serve.sources import SourceCatalog
from obliviate.world.loader import load_world

log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    model: Path
    ledger: Path
    world: Path | None = None              # needed for a dense model; gives a sink model's source names
    host: str = "127.0.0.1"
    port: int = 8000
    tokens: Path | None = None             # else $OBLIVIATE_SERVE_TOKENS
    require_token: bool = False            # completions (and the read-only views) need a token too
    method: str = "grad_diff"              # the post-hoc method of a dense model's deletion jobs
    overrides: dict = field(default_factory=dict)   # --set for that method
    retain_model: Path | None = None       # jobs are evaluated against it when given
    evaluate: bool = True
    max_body_bytes: int = 1 << 20
    max_batch: int = 16
    max_tokens_limit: int = 512
    device: str | None = None
    job_timeout_s: float | None = None
    model_name: str | None = None          # the id in /v1/models (default: the model directory's name)
    attacks: list[str] = field(default_factory=list)   # attacks each dense job runs on its new model


def models_dir_for(ledger: Path) -> Path:
    """Where a dense model's deletion jobs write their models: beside the ledger."""
    return ledger.with_name(ledger.stem + "-models")


def switch_sources(served: Served, sources: list[int]) -> dict:
    """The switch (``obliviate.methods.switch``) on the served sink model, in route mode with
    the model's own routing settings; its report."""
    task = UnlearnTask(world=None, forget="serve", forget_sources=set(sources), retain_sources=set(),
                       forget_items=[], retain_items=[], forget_docs=[], retain_docs=[])
    config = served.model.config
    switch = SwitchConfig(inference_mode="route", route_forgotten=config.route_forgotten,
                          route_shared_ratio=config.route_shared_ratio, fit_router=False)
    return SwitchMethod(switch).run(served.model, served.tokenizer, task).report


def hold_ledger(ledger: Path):
    """An exclusive lock on ``LEDGER.lock`` for this process's life (the OS drops it when the
    process dies, even by kill -9): two servers never append to one ledger."""
    handle = open(ledger.with_name(ledger.name + ".lock"), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(f"ledger {ledger} is in use by another obliviate serve process") from None
    return handle


class DeletionService:
    def __init__(self, config: ServeConfig):
        self.config = config
        check_model_dir(Path(config.model))
        if config.retain_model is not None:
            check_model_dir(Path(config.retain_model))
        self._lock_file = hold_ledger(Path(config.ledger))
        self.ledger = Ledger(config.ledger)
        self.models_dir = models_dir_for(Path(config.ledger))
        self.lock = threading.Lock()
        self.version = 0
        self.name = config.model_name or Path(config.model).resolve().name
        self.base_hash = model_dir_fingerprint(config.model)
        self._check_ledger_owner()
        model, tokenizer = load_model_and_tokenizer(config.model, device=config.device)
        self.is_sink = is_sink_model(model)
        if self.is_sink:
            model.set_inference_mode("route")   # served in route mode, whatever mode it was saved in
        self.world = load_world(config.world) if config.world is not None else None
        if not self.is_sink:
            if self.world is None:
                raise UserError("a dense model's deletions retrain it on a world: give --world DIR")
            get_method(config.method)   # unknown method: UserError now, not in the first job
            if config.method == "switch":
                raise UserError("method 'switch' needs a sink model; choose a post-hoc method for a dense model")
        self.catalog = self._catalog(model)
        self.served = Served(model, tokenizer, str(config.model), self.base_hash, self.is_sink)
        self.recovered = self._replay()

    # -- start ------------------------------------------------------------------------------------
    def _check_ledger_owner(self) -> None:
        starts = self.ledger.server_events()
        if starts:
            first = starts[0]["data"]
            if first.get("base_hash") != self.base_hash:
                raise UserError(f"ledger {self.config.ledger} belongs to the model {first.get('base_model')} "
                                f"(hash {first.get('base_hash')}), not to {self.config.model} "
                                f"(hash {self.base_hash}); give another --ledger")

    def _catalog(self, model) -> SourceCatalog:
        known = model.known_sources if self.is_sink else None
        if self.world is not None:
            return SourceCatalog.from_world(self.world, known)
        if known is None:
            raise UserError(f"the sink model {self.config.model} has no fitted router, so it does not know its "
                            "sources: give --world DIR")
        return SourceCatalog.from_ids(known)

    def _replay(self) -> dict:
        """Bring the served state to what the ledger says; append the start row."""
        deletions = self.ledger.deletions()
        recovered: dict = {"switched_off": [], "requeued": [], "failed": [], "removed": []}
        if self.is_sink:
            forgotten = sorted({s for d in deletions.values() if d.mode == "switch" and d.status == "done"
                                for s in d.sources})
            if forgotten:
                switch_sources(self.served, forgotten)
            recovered["switched_off"] = forgotten
        else:
            recovered["removed"] = remove_leftovers(self.models_dir)
            newest = self._newest_dense_model(deletions)
            if newest is not None:
                path, expected = newest
                if not Path(path).is_dir() or model_dir_fingerprint(path) != expected:
                    raise UserError(f"the ledger serves {path} (hash {expected}) but that directory is gone or "
                                    "was changed; restore it or start with a new --ledger")
                model, tokenizer = load_model_and_tokenizer(path, device=self.config.device)
                self.served = Served(model, tokenizer, path, expected, False)
            rows = []
            for record in deletions.values():
                if record.status == "running":   # the last process died during this job
                    rows.append((record.id, "status", status_row(
                        "failed", record.attempt, reason="interrupted: the server stopped during the job; "
                        "its output was never used")))
                    if record.attempt < MAX_ATTEMPTS:
                        rows.append((record.id, "status", status_row("queued", record.attempt,
                                                                     reason="re-queued after the interruption")))
                        recovered["requeued"].append(record.id)
                    else:
                        recovered["failed"].append(record.id)
            if rows:
                self.ledger.append(rows)
        self.version = sum(1 for d in deletions.values() if d.status == "done")
        self.ledger.append([(None, "server", {
            "event": "start", "base_model": str(self.config.model), "base_hash": self.base_hash,
            "served_model": self.served.model_dir, "served_hash": self.served.model_hash,
            "kind": "sink" if self.is_sink else "dense", "recovered": recovered})])
        return recovered

    @staticmethod
    def _newest_dense_model(deletions: dict[str, Deletion]) -> tuple[str, str] | None:
        done = [(entry["time"], d.evidence["model_dir_after"], d.evidence["model_hash_after"])
                for d in deletions.values() if d.mode == "job" and d.status == "done"
                for entry in d.history if entry["status"] == "done" and "model_dir_after" in d.evidence]
        if not done:
            return None
        _, path, expected = max(done)
        return path, expected

    # -- what requests see ------------------------------------------------------------------------
    def snapshot(self) -> tuple[Served, int]:
        with self.lock:
            return self.served, self.version

    # -- deletions --------------------------------------------------------------------------------
    def forgotten(self, deletions: dict[str, Deletion] | None = None) -> set[int]:
        deletions = self.ledger.deletions() if deletions is None else deletions
        return {s for d in deletions.values() if d.status == "done" for s in d.sources}

    def request_deletion(self, principal: Principal, selectors: list, method: str | None) -> dict:
        """Resolve, record and (sink model) apply a deletion; its ledger record as JSON."""
        sources = self.catalog.resolve(selectors)
        names = [self.catalog.name_of(s) for s in sources]
        if self.is_sink:
            if method not in (None, "switch"):
                raise UserError(f"this server holds a sink model: its deletions use the switch, not {method!r}")
            return self._switch(principal, selectors, sources, names)
        method = method or self.config.method
        if method == "switch":
            raise UserError("method 'switch' needs a sink model; this server holds a dense model")
        get_method(method)
        with self.lock:   # ids come from the ledger's row count: one writer at a time
            deletion_id = self.ledger.next_id()
            self.ledger.append([
                (deletion_id, "requested", requested_row(principal.name, selectors, sources, names, method, "job")),
                (deletion_id, "status", status_row("queued", 0))])
        return self.ledger.deletions()[deletion_id].to_json()

    def _switch(self, principal: Principal, selectors: list, sources: list[int], names: list[str]) -> dict:
        started = time.perf_counter()
        with self.lock:
            deletion_id = self.ledger.next_id()
            state_before = self.state_hash()
            previously = set(self.served.model.forgotten)
            after = sorted(previously | set(sources))
            evidence = {"model_hash_before": self.served.model_hash, "model_hash_after": self.served.model_hash,
                        "state_hash_before": state_before,
                        "state_hash_after": self.state_hash(after),
                        "forgotten_after": after, "newly_forgotten": sorted(set(sources) - previously),
                        "state_version": self.version + 1}
            now = utc_now()
            # the rows first: a crash after them is replayed as switched off, never the reverse
            self.ledger.append([
                (deletion_id, "requested", {**requested_row(principal.name, selectors, sources, names, "switch",
                                                            "switch"), "time": now}),
                (deletion_id, "status", status_row("done", 1, evidence, time=now))])
            report = switch_sources(self.served, sources)
            self.version += 1
        seconds = time.perf_counter() - started
        record = {"id": deletion_id, "object": "deletion", "requested_at": now, "requester": principal.name,
                  "selectors": selectors, "sources": sources, "source_names": names, "method": "switch",
                  "mode": "switch", "status": "done", "attempt": 1,
                  "history": [{"time": now, "status": "done", "attempt": 1}], **evidence,
                  "switch_ms": 1e3 * report["switch_seconds"], "request_ms": 1e3 * seconds}
        return record

    def state_hash(self, forgotten: list[int] | None = None) -> str:
        """The served behaviour's identity: the model files plus the switched-off sources."""
        if forgotten is None:
            forgotten = sorted(self.served.model.forgotten) if self.is_sink else []
        return fingerprint({"model": self.served.model_hash, "forgotten": sorted(forgotten)})

    # -- dense jobs (called by the JobRunner thread) ----------------------------------------------
    def next_job(self) -> JobSpec | None:
        while True:
            deletions = self.ledger.deletions()
            queued = sorted((d for d in deletions.values() if d.mode == "job" and d.status == "queued"),
                            key=lambda d: d.seq)
            if not queued:
                return None
            record = queued[0]
            forgotten = self.forgotten(deletions)
            served, _ = self.snapshot()
            if set(record.sources) <= forgotten:
                self._finish_row(record.id, status_row(
                    "done", record.attempt + 1, {"model_hash_before": served.model_hash,
                                                 "model_hash_after": served.model_hash},
                    reason="every source was already deleted by an earlier request"))
                continue
            attempt = record.attempt + 1
            name = f"{record.id}-a{attempt}"
            spec = JobSpec(deletion=record.id, method=record.method, model=served.model_dir,
                           world=str(self.config.world), forget_sources=sorted(forgotten | set(record.sources)),
                           split=f"deletion-{record.id}", out=str(self.models_dir / name),
                           result=str(self.models_dir.with_name(self.models_dir.name + "-jobs") / f"{name}.json"),
                           overrides=dict(self.config.overrides),
                           retain_model=None if self.config.retain_model is None else str(self.config.retain_model),
                           evaluate=self.config.evaluate, device=self.config.device,
                           attacks=list(self.config.attacks))
            Path(spec.result).parent.mkdir(parents=True, exist_ok=True)
            self.ledger.append([(record.id, "status", status_row(
                "running", attempt, {"model_hash_before": served.model_hash, "model_dir_before": served.model_dir},
                job={"out": spec.out, "forget_sources": spec.forget_sources, "method": spec.method}))])
            return spec

    def finish(self, spec: JobSpec, result: dict | None, error: str | None) -> None:
        record = self.ledger.deletions()[spec.deletion]
        if error is not None:
            self._finish_row(record.id, status_row("failed", record.attempt, reason=error))
            return
        # load before taking the lock: requests keep being served by the old model meanwhile
        model, tokenizer = load_model_and_tokenizer(result["model_dir"], device=self.config.device)
        served = Served(model, tokenizer, result["model_dir"], result["model_hash_after"], False)
        evidence = {"model_dir_after": result["model_dir"], "model_hash_after": result["model_hash_after"],
                    "summary": result.get("summary"), "eval": result.get("eval"), "reference": result.get("reference"),
                    "reference_exact": result.get("reference_exact"),
                    "attacks": result.get("attacks") or [], "attacks_json": result.get("attacks_json"),
                    "steps": result.get("steps"), "timings": {k: result.get(k) for k in
                                                               ("method_seconds", "job_seconds", "worker_seconds")}}
        with self.lock:
            self.ledger.append([(record.id, "status", status_row("done", record.attempt, evidence,
                                                                  state_version=self.version + 1))])
            self.served = served
            self.version += 1

    def _finish_row(self, deletion_id: str, row: dict) -> None:
        with self.lock:
            if row["status"] == "done":
                row["state_version"] = self.version + 1
                self.version += 1
            self.ledger.append([(deletion_id, "status", row)])

    def close(self) -> None:
        self.ledger.close()
        self._lock_file.close()
