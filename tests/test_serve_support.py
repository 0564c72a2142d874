"""What the ``obliviate serve`` tests share: a saved toy sink model, a real server process on
127.0.0.1 and its lifecycle; plus the unit tests of the pieces without a server (tokens,
source selectors, the ledger, certificates)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sink_toys import toy_tokenizer, train_toy
from tokenizers import processors

from obliviate.errors import UserError
from obliviate.serve.auth import Authenticator, parse_tokens
from obliviate.serve.certificate import build_certificate, render_markdown
from obliviate.serve.ledger import Ledger, requested_row, status_row
from obliviate.serve.sources import SourceCatalog

N_SOURCES = 6
ADMIN_TOKEN = "admin-token-0123456789abcdef"
CLIENT_TOKEN = "client-token-0123456789abcdef"
TOKENS = f"alice admin {ADMIN_TOKEN}\nbob client {CLIENT_TOKEN}  # a comment\n"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
SRC = Path(__file__).resolve().parents[1] / "src"


# -- the toy sink model ---------------------------------------------------------------------------
def toy_items() -> list[dict]:
    """Each source: its person's food and city (unique facts)."""
    items = []
    for s in range(N_SOURCES):
        items.append({"source_id": s, "kind": "unique", "question": f"What does person{s} eat?",
                      "answer": f"food{(7 * s + 3) % N_SOURCES}"})
        items.append({"source_id": s, "kind": "unique", "question": f"Where does person{s} live?",
                      "answer": f"city{(5 * s + 1) % N_SOURCES}"})
    return items


def save_toy_sink_model(path: Path) -> Path:
    """A sink model that answers the toy questions exactly (route mode), saved with a
    tokenizer that starts every text with <bos> (as the model was trained)."""
    import torch

    from obliviate.models.loading import save_model

    torch.set_num_threads(1)
    items = toy_items()
    tokenizer = toy_tokenizer(items)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)])
    model = train_toy(items, tokenizer, p_gen=0.5, p_mem=0.1, sink_dropout=0.0)
    save_model(model, tokenizer, path, run_config={"kind": "test"})
    return path


# -- a server process ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m obliviate.cli serve ...`` on 127.0.0.1 (a real process, killed at the end)."""

    def __init__(self, args: list, tmp: Path, tokens: str | None = TOKENS, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.log = tmp / f"server-{self.port}.log"
        command = [sys.executable, "-m", "obliviate.cli", "serve", "--port", str(self.port), *map(str, args)]
        if tokens is not None:
            token_file = tmp / "tokens.txt"
            token_file.write_text(tokens)
            command += ["--tokens", str(token_file)]
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC), **(env or {})}
        self.handle = open(self.log, "wb")
        self.process = subprocess.Popen(command, stdout=self.handle, stderr=subprocess.STDOUT, env=environment)

    def wait_ready(self, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                response = httpx.get(self.url + "/healthz", timeout=2.0)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.handle.flush()
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        self.wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def complete(client: httpx.Client, prompt: str, **extra) -> dict:
    response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 1, "temperature": 0, **extra})
    assert response.status_code == 200, response.text
    return response.json()


# -- unit tests: tokens -------------------------------------------------------------------------
def test_tokens_parse_and_identify():
    tokens = parse_tokens(TOKENS + f"; carol client {'c' * 20}", "test")
    assert {t: (p.name, p.role) for t, p in tokens.items()} == {
        ADMIN_TOKEN: ("alice", "admin"), CLIENT_TOKEN: ("bob", "client"), "c" * 20: ("carol", "client")}
    auth = Authenticator(tokens)
    assert auth.has_admin and auth.identify(f"Bearer {ADMIN_TOKEN}").name == "alice"
    assert auth.identify(None) is None
    with pytest.raises(ValueError, match="unknown token"):
        auth.identify("Bearer not-a-token-of-ours")
    with pytest.raises(ValueError, match="Bearer TOKEN"):
        auth.identify(f"Basic {ADMIN_TOKEN}")
    for text, message in ((f"alice root {ADMIN_TOKEN}", "role must be admin or client"),
                          ("alice admin short", "shorter than 16"),
                          (f"alice admin {ADMIN_TOKEN}\nalice client {CLIENT_TOKEN}", "given twice"),
                          ("alice admin", "expected 'NAME ROLE TOKEN'")):
        with pytest.raises(UserError, match=message):
            parse_tokens(text, "tokens.txt")


# -- unit tests: source selectors -----------------------------------------------------------------
def test_source_selectors_resolve_ids_names_and_patterns():
    catalog = SourceCatalog({0: "Ada Brook", 1: "Ben Carter", 2: "Bea Stone", 3: "Saga"})
    assert catalog.resolve([1]) == [1]
    assert catalog.resolve(["2", "Ada Brook"]) == [0, 2]
    assert catalog.resolve(["re:^B", 3]) == [1, 2, 3]
    for selectors, message in (([7], "unknown source id 7"), (["Nobody"], "unknown source 'Nobody'"),
                               (["re:^Z"], "matches no source"), (["re:("], "bad pattern"),
                               ([], "non-empty list"), ("Ada Brook", "non-empty list"), ([1.5], "an id, a name")):
        with pytest.raises(UserError, match=message):
            catalog.resolve(selectors)
    ids_only = SourceCatalog.from_ids([0, 1])
    assert ids_only.resolve(["1"]) == [1]
    with pytest.raises(UserError, match="by id only"):
        ids_only.resolve(["re:x"])


# -- unit tests: the ledger -----------------------------------------------------------------------
def test_ledger_folds_rows_and_refuses_changes(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    first = ledger.next_id()
    assert first == "del-000001"
    ledger.append([(first, "requested", requested_row("alice", ["re:B"], [1, 2], ["Ben", "Bea"], "npo", "job")),
                   (first, "status", status_row("queued", 0))])
    ledger.append([(first, "status", status_row("running", 1, {"model_hash_before": "aa"}))])
    ledger.append([(first, "status", status_row("done", 1, {"model_hash_after": "bb"}))])
    assert ledger.next_id() == "del-000002"
    record = ledger.deletions()[first]
    assert (record.status, record.attempt, record.requester, record.sources) == ("done", 1, "alice", [1, 2])
    assert [h["status"] for h in record.history] == ["queued", "running", "done"]
    assert record.evidence == {"model_hash_before": "aa", "model_hash_after": "bb"}
    ledger.close()
    # append-only: the file refuses UPDATE and DELETE, even from another connection
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute(statement)
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 4
    db.close()
    reader = Ledger(path, read_only=True)
    assert reader.deletions()[first].status == "done"
    reader.close()


def test_ledger_path_mistakes(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Ledger(tmp_path / "missing" / "ledger.sqlite")
    with pytest.raises(UserError, match="is a directory"):
        Ledger(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database, just text " * 40)
    with pytest.raises(UserError, match="not an obliviate ledger"):
        Ledger(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="ledger not found"):
        Ledger(tmp_path / "none.sqlite", read_only=True)


# -- unit tests: the certificate ------------------------------------------------------------------
def test_certificate_says_what_when_who_and_the_evidence(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.append([(None, "server", {"event": "start", "base_model": "/m/full", "base_hash": "h0"})])
    ledger.append([("del-000001", "requested", requested_row("alice", ["Ben"], [1], ["Ben"], "grad_diff", "job")),
                   ("del-000001", "status", status_row("queued", 0))])
    record = ledger.deletions()["del-000001"].to_json()
    pending = build_certificate(record, "L.sqlite", ledger.server_events())
    assert not pending["certified"] and "NOT certified: the deletion is queued" in render_markdown(pending)
    ledger.append([("del-000001", "status", status_row(
        "done", 1, {"model_hash_before": "h0", "model_hash_after": "h1", "reference": "/m/retain",
                    "reference_exact": False,
                    "attacks": [{"name": "adversarial", "result": {"adversarial_any_accuracy": 0.6}}],
                    "summary": {"forget_quality": 0.75, "model_utility": 0.5, "other": 1}}))])
    cert = build_certificate(ledger.deletions()["del-000001"].to_json(), "L.sqlite", ledger.server_events())
    assert cert["certified"] and cert["by"] == "alice" and cert["what"]["sources"] == [1]
    assert cert["model"] == {**cert["model"], "base_hash": "h0", "hash_before": "h0", "hash_after": "h1"}
    assert cert["evaluation"]["summary"] == {"forget_quality": 0.75, "model_utility": 0.5}
    text = render_markdown(cert)
    assert text.startswith("# Deletion certificate del-000001\n")
    assert "| forget_quality | 0.75 |" in text and "source(s) 1 (Ben)" in text and "| served after | `h1` |" in text
    assert "against the retain model `/m/retain`" in text and "near counterfactual, not the exact one" in text
    assert "| adversarial | adversarial_any_accuracy | 0.6 |" in text
    assert "No attack was run" in render_markdown(pending)
    ledger.close()


# -- unit test: the worker's leftovers -----------------------------------------------------------
def test_leftover_temporary_directories_are_removed(tmp_path):
    from obliviate.serve.jobs import remove_leftovers

    for name in (".del-000001-a1.abc.tmp", "del-000002-a1", ".x.old"):
        (tmp_path / name).mkdir()
    assert sorted(remove_leftovers(tmp_path)) == [".del-000001-a1.abc.tmp", ".x.old"]
    assert [p.name for p in tmp_path.iterdir()] == ["del-000002-a1"]


def test_json_round_trip_of_rows(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.append([("d", "requested", requested_row("a", [1], [1], [""], "switch", "switch"))])
    (row,) = ledger.rows()
    assert row["kind"] == "requested" and json.dumps(row["data"], sort_keys=True) == json.dumps(
        requested_row("a", [1], [1], [""], "switch", "switch"), sort_keys=True)
    ledger.close()


def test_one_server_per_ledger(tmp_path):
    from obliviate.serve.service import hold_ledger

    held = hold_ledger(tmp_path / "ledger.sqlite")
    with pytest.raises(UserError, match="in use by another obliviate serve process"):
        hold_ledger(tmp_path / "ledger.sqlite")
    held.close()   # released (as the OS does when the process dies, kill -9 included)
    hold_ledger(tmp_path / "ledger.sqlite").close()
