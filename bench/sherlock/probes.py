"""The probe file (bench/data/sherlock_probes.jsonl): a prompt, its reference continuations and the
target terms a completion must not name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import UserError
from obliviate.io import read_jsonl

PROBE_FIELDS = ("prompt", "references", "target_terms")


@dataclass
class Probe:
    prompt: str
    references: list[str]
    target_terms: list[str]


def load_probes(path: Path) -> list[Probe]:
    """``{prompt, references, target_terms}`` jsonl; UserError on a missing field or bad value."""
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
