"""Bearer tokens: who may delete (admin) and who may ask for completions (client).

Tokens come from a file (``--tokens FILE``) or the ``OBLIVIATE_SERVE_TOKENS`` environment
variable, in the same format: one token a line (or ``;``-separated), ``NAME ROLE TOKEN``
with ROLE ``admin`` or ``client``; ``#`` starts a comment. The ledger records the NAME of
the token that made a request, never the token itself.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import UserError

ENV_VAR = "OBLIVIATE_SERVE_TOKENS"
ROLES = ("admin", "client")
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS = Principal("anonymous", "anonymous")


def parse_tokens(text: str, where: str) -> dict[str, Principal]:
    """``{token: Principal}`` from the token file format (UserError names the bad line)."""
    tokens: dict[str, Principal] = {}
    names: set[str] = set()
    lines = [part for line in text.splitlines() for part in line.split(";")]
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise UserError(f"{where}, entry {number}: expected 'NAME ROLE TOKEN', got {len(fields)} field(s)")
        name, role, token = fields
        if role not in ROLES:
            raise UserError(f"{where}, entry {number}: role must be admin or client, got {role!r}")
        if len(token) < MIN_TOKEN_LENGTH:
            raise UserError(f"{where}, entry {number}: token of {name!r} is shorter than {MIN_TOKEN_LENGTH} characters")
        if name in names or token in tokens:
            raise UserError(f"{where}, entry {number}: name or token of {name!r} given twice")
        names.add(name)
        tokens[token] = Principal(name, role)
    return tokens


def load_tokens(path: str | os.PathLike | None) -> dict[str, Principal]:
    """The tokens of ``path`` if given, else of the environment variable (may be none)."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"token file not found: {path}")
        return parse_tokens(path.read_text(encoding="utf-8"), str(path))
    return parse_tokens(os.environ.get(ENV_VAR, ""), f"${ENV_VAR}")


class Authenticator:
    def __init__(self, tokens: dict[str, Principal]):
        self._tokens = tokens

    @property
    def has_admin(self) -> bool:
        return any(p.is_admin for p in self._tokens.values())

    def identify(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer TOKEN`` header; None when there is
        no header; ValueError for a malformed header or an unknown token."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ValueError("the Authorization header must be 'Bearer TOKEN'")
        token = token.strip()
        found = None
        for known, principal in self._tokens.items():   # compare every token in constant time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        if found is None:
            raise ValueError("unknown token")
        return found
