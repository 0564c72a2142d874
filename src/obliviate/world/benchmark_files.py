"""What every benchmark world (TOFU, MUSE) shares: reading a dataset config through
``datasets.load_dataset`` (hub id or local copy, one clear line when it fails) and writing
the world's files atomically."""

from __future__ import annotations

from pathlib import Path

from obliviate.errors import UserError
from obliviate.io import atomic_directory, atomic_write_json, atomic_write_jsonl
from obliviate.world.loader import load_world


def load_benchmark_config(data: str, name: str, benchmark: str, hub_id: str, split: str | None = None):
    """``datasets.load_dataset(data, name, split)`` from a hub id or a local copy of the dataset
    repository; a UserError naming the config (and, for a hub id, how to work offline)."""
    import datasets

    local = Path(data).expanduser()
    where = str(local) if local.is_dir() else data
    # a local copy is re-read every time: datasets' cache served an earlier copy's rows for a
    # directory of the same name and config (measured with datasets 5.2)
    mode = datasets.DownloadMode.FORCE_REDOWNLOAD if local.is_dir() else None
    try:
        return datasets.load_dataset(where, name=name, split=split, download_mode=mode)
    except Exception as exc:  # datasets raises many types (offline, unknown config, bad files): report one line
        hint = ("" if local.is_dir() else
                f"; offline? download it once with `huggingface-cli download {hub_id} --repo-type dataset "
                "--local-dir DIR` and pass --data-dir DIR")
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"cannot load {benchmark} config {name!r} from {where}: {type(exc).__name__}: "
                        f"{first_line}{hint}") from None


def write_world_files(out: Path, files: dict[str, object]) -> Path:
    """Write ``files`` (name -> rows for .jsonl, JSON otherwise) as the world at ``out``,
    atomically: the loader must accept them before they replace ``out``."""
    out = Path(out)
    with atomic_directory(out) as tmp:
        for name, content in files.items():
            (atomic_write_jsonl if name.endswith(".jsonl") else atomic_write_json)(tmp / name, content)
        load_world(tmp)
    return out
