"""Atomic file writes, validated JSON / jsonl reading, and the output guard.

Every artifact is written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written file that a later run would trust.
``check_output`` is the one rule for where a command may write: a new path, an empty
directory, or its own earlier artifact (recognised by marker files), never a user's
directory or file unless asked (``overwrite``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from obliviate.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write_with(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n" for row in rows)
    return atomic_write_text(path, text)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual directory mode
    try:
        yield tmp
        if final.exists():
            backup = final.with_name(f".{final.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(final, backup)
            os.replace(tmp, final)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_bytes(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of ``path``; a missing file (or a directory) is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return path.read_bytes()


def parse_json(data: bytes, path: str | os.PathLike, what: str = "JSON file") -> Any:
    """``data`` (the bytes of ``path``) as JSON; invalid JSON or UTF-8 is a :class:`UserError`."""
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid JSON: {str(exc).splitlines()[0]}") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    return parse_json(read_bytes(path, what), path, what)


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = (), what: str = "jsonl file") -> list[dict]:
    """Read a jsonl file; every line must be a JSON object holding the ``required`` keys."""
    return parse_jsonl(read_bytes(path, what), path, required, what)


def parse_jsonl(data: bytes, path: str | os.PathLike, required: Sequence[str] = (),
                what: str = "jsonl file") -> list[dict]:
    """``data`` (the bytes of ``path``) as jsonl rows, each a JSON object with the ``required`` keys."""
    path = Path(path)
    rows: list[dict] = []
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: corrupt or truncated JSON line ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        missing = [key for key in required if key not in row]
        if missing:
            raise UserError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    return rows


# ---- the output guard -------------------------------------------------------------------------


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory (else mkdir fails later)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option} {path}: {parent} exists and is not a directory")
            return


def check_output(
    path: str | os.PathLike,
    ours: Sequence[str] | Callable[[Any], bool],
    *,
    json_file: bool = False,
    option: str = "--out",
    what: str = "an earlier output of this command",
    overwrite: bool = False,
) -> Path:
    """Check, before any work, that a command may write ``path`` (a directory, or with
    ``json_file`` a JSON file); returns it. Nothing is ever touched here.

    Allowed: a path that does not exist yet (below a directory), an empty directory, or
    an earlier artifact of the same kind, recognised by ``ours``:

    - a directory: glob patterns of its marker files (any one matching is enough), or a
      predicate on the directory; a regular file is always refused (never replaced by a
      directory);
    - a JSON file: keys its JSON object must hold, or a predicate on the parsed JSON; a
      directory is refused.

    Anything else holds somebody's files: a :class:`UserError` naming ``option`` and
    ``what`` the command would have replaced, unless ``overwrite``.
    """
    if json_file:
        return _check_output_file(Path(path), ours, option, what, overwrite)
    return _check_output_dir(Path(path), ours, option, what, overwrite)


def _check_output_dir(path: Path, ours: Sequence[str] | Callable[[Path], bool], option: str, what: str,
                      overwrite: bool) -> Path:
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} exists and is not a directory; remove it or choose another path")
    _check_parents(path, option)
    try:
        if not path.is_dir() or overwrite or not any(path.iterdir()):
            return path
        recognised = ours(path) if callable(ours) else any(any(path.glob(pattern)) for pattern in ours)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    if not recognised:
        raise UserError(f"{option} {path} is a non-empty directory that is not {what}; refusing to overwrite it "
                        "(choose another path, or pass --overwrite)")
    return path


def _check_output_file(path: Path, ours: Sequence[str] | Callable[[Any], bool], option: str, what: str,
                       overwrite: bool) -> Path:
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file path")
    _check_parents(path, option)
    if not path.exists() or overwrite:
        return path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if callable(ours):
        recognised = data is not None and bool(ours(data))
    else:
        recognised = isinstance(data, dict) and all(key in data for key in ours)
    if not recognised:
        raise UserError(f"{option} {path} exists and is not {what}; refusing to overwrite it "
                        "(choose another path, or pass --overwrite)")
    return path
