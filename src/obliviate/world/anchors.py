"""Anchored-term dictionaries as files: loading and validation.

A dictionary maps each idiosyncratic term of an unlearning target to generic
alternatives: ``{"Kellinmoor Academy": ["the academy", "the school"], ...}``. A world may
carry one (``anchors.json``); WHP (``obliviate.whp``) translates the target with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from obliviate.errors import UserError
from obliviate.io import read_json

AnchorDict = dict[str, list[str]]


def validate_anchors(raw: Any, where: str = "anchored-term dictionary") -> AnchorDict:
    """Check a ``{term: [alternatives]}`` mapping; a bare string counts as one alternative.

    Raises UserError for anything a person must fix: not an object, an empty term,
    a term mapped to nothing, alternatives that are not strings.
    """
    if not isinstance(raw, Mapping):
        raise UserError(f"{where} must be a JSON object mapping terms to lists of alternatives, "
                        f"got {type(raw).__name__}")
    anchors: AnchorDict = {}
    for term, alternatives in raw.items():
        if not isinstance(term, str) or not term.strip():
            raise UserError(f"{where}: empty term")
        if isinstance(alternatives, str):
            alternatives = [alternatives]
        if not isinstance(alternatives, list):
            raise UserError(f"{where}: term {term!r} must map to a list of alternatives, "
                            f"got {type(alternatives).__name__}")
        if not all(isinstance(a, str) for a in alternatives):
            raise UserError(f"{where}: term {term!r} has an alternative that is not a string")
        cleaned = [a.strip() for a in alternatives if a.strip()]
        if not cleaned:
            raise UserError(f"{where}: term {term!r} maps to no alternative")
        anchors[term.strip()] = list(dict.fromkeys(cleaned))
    if not anchors:
        raise UserError(f"{where} is empty")
    return anchors


def load_anchors(path: str | os.PathLike) -> AnchorDict:
    path = Path(path)
    return validate_anchors(read_json(path, "anchored-term dictionary"), where=f"anchored-term dictionary {path}")
