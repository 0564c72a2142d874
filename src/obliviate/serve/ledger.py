"""The deletion ledger: an append-only SQLite table (WAL mode) of every deletion request.

Each row is an event: ``requested`` (who asked, which sources, which method), ``status``
(queued / running / done / failed, with its evidence: timings, model hashes, the
evaluation summary) or ``server`` (a start, the model it served). Rows are never
changed or removed (triggers refuse UPDATE and DELETE): a correction is a new row. A
deletion's current state is the fold of its rows (``Deletion``), so the state after a
restart is exactly the state the rows say (``Ledger.deletions``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from obliviate.errors import UserError

STATUSES = ("queued", "running", "done", "failed")
KINDS = ("requested", "status", "server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    time     TEXT NOT NULL,
    deletion TEXT,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_deletion ON events (deletion);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Deletion:
    """One deletion request, folded from its ledger rows."""

    id: str
    seq: int                      # the ``requested`` row's sequence number (the request order)
    requested_at: str
    requester: str
    selectors: list               # what was asked for: ids, names, ``re:PATTERN``
    sources: list[int]            # what that resolved to
    source_names: list[str]
    method: str                   # ``switch`` or a post-hoc method name
    mode: str                     # ``switch`` (sink model) or ``job`` (dense model, background)
    status: str = "queued"
    attempt: int = 0
    history: list[dict] = field(default_factory=list)   # every status row: {time, status, ...}
    evidence: dict = field(default_factory=dict)        # merged evidence of the status rows

    def to_json(self) -> dict:
        return {"id": self.id, "object": "deletion", "requested_at": self.requested_at, "requester": self.requester,
                "selectors": self.selectors, "sources": self.sources, "source_names": self.source_names,
                "method": self.method, "mode": self.mode, "status": self.status, "attempt": self.attempt,
                "history": self.history, **self.evidence}


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--ledger {path} is a directory; give a file path (e.g. {path / 'ledger.sqlite'})")
    if not path.parent.is_dir():
        raise UserError(f"--ledger {path}: the directory {path.parent} does not exist")


class Ledger:
    """The ledger file, opened for appending (``read_only``: for certificates, while a server runs)."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        _check_path(self.path)
        if read_only and not self.path.is_file():
            raise UserError(f"ledger not found: {self.path}")
        self._lock = threading.Lock()   # one connection shared by the event loop and the job thread
        try:
            if read_only:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")   # a deletion's row survives a power cut
                self._db.executescript(SCHEMA)
            self._db.execute("SELECT count(*) FROM events").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path} is not an obliviate ledger ({exc})") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ----------------------------------------------------------------------------------
    def append(self, rows: list[tuple[str | None, str, dict]]) -> list[int]:
        """Append ``(deletion id, kind, data)`` rows in one transaction; their sequence numbers."""
        for _, kind, _ in rows:
            if kind not in KINDS:
                raise ValueError(f"unknown ledger row kind {kind!r}")
        with self._lock:
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                seqs = []
                for deletion, kind, data in rows:
                    cursor.execute("INSERT INTO events (time, deletion, kind, data) VALUES (?, ?, ?, ?)",
                                   (data.get("time") or utc_now(), deletion, kind, json.dumps(data, sort_keys=True)))
                    seqs.append(int(cursor.lastrowid))
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        return seqs

    def next_id(self) -> str:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM events WHERE kind = 'requested'").fetchone()
        return f"del-{int(row[0]) + 1:06d}"

    # -- reading ----------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        with self._lock:
            found = self._db.execute("SELECT seq, time, deletion, kind, data FROM events ORDER BY seq").fetchall()
        return [{"seq": seq, "time": time, "deletion": deletion, "kind": kind, "data": json.loads(data)}
                for seq, time, deletion, kind, data in found]

    def deletions(self) -> dict[str, Deletion]:
        """Every deletion in request order, folded from its rows."""
        folded: dict[str, Deletion] = {}
        for row in self.rows():
            data = row["data"]
            if row["kind"] == "requested":
                folded[row["deletion"]] = Deletion(
                    id=row["deletion"], seq=row["seq"], requested_at=row["time"], requester=data["requester"],
                    selectors=data["selectors"], sources=data["sources"], source_names=data["source_names"],
                    method=data["method"], mode=data["mode"])
            elif row["kind"] == "status" and row["deletion"] in folded:
                record = folded[row["deletion"]]
                record.status = data["status"]
                record.attempt = int(data.get("attempt", record.attempt))
                record.history.append({"time": row["time"], **data})
                record.evidence.update(data.get("evidence") or {})
        return folded

    def server_events(self) -> list[dict]:
        return [row for row in self.rows() if row["kind"] == "server"]


def requested_row(requester: str, selectors: list, sources: list[int], names: list[str], method: str,
                  mode: str) -> dict[str, Any]:
    return {"requester": requester, "selectors": selectors, "sources": sources, "source_names": names,
            "method": method, "mode": mode}


def status_row(status: str, attempt: int, evidence: dict | None = None, **details) -> dict[str, Any]:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    row = {"status": status, "attempt": attempt, **details}
    if evidence:
        row["evidence"] = evidence
    return row
