"""The run directory layout (docs/design.md), in one place.

  RUN/world/  RUN/tokenizer/  RUN/models/<id>/  RUN/eval/<id>.json  RUN/report.md  RUN/plots/
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import UserError

DEFAULT_FORGET = "forget10"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def open(cls, path: str | os.PathLike, create: bool = True) -> "RunDir":
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise UserError(f"run directory {root} exists and is not a directory")
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except (NotADirectoryError, FileExistsError, PermissionError) as exc:
                raise UserError(f"cannot create run directory {root}: {exc.strerror or exc}") from None
        elif not root.is_dir():
            raise UserError(f"run directory does not exist: {root}")
        return cls(root)

    @property
    def world_dir(self) -> Path:
        return self.root / "world"

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def model_dir(self, model_id: str) -> Path:
        return self.models_dir / model_id

    @property
    def full_model(self) -> Path:
        return self.model_dir("full")

    def retain_model(self, forget: str = DEFAULT_FORGET) -> Path:
        """The gold standard: retrained without ``forget``. forget10 keeps the stable name ``retain``."""
        return self.model_dir("retain" if forget == DEFAULT_FORGET else f"retain-{forget}")

