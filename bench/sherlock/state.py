"""What each step cost when it ran, kept across invocations (``RUN/bench_state.json``), and the
stopwatch that measures it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from obliviate.io import atomic_write_json


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
