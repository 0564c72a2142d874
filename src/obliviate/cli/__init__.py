"""The ``obliviate`` command line (Typer): the only layer that parses options and prints.

One module per command family, each registering its commands on ``app``:

  world.py      obliviate world          the embedded world, or a world from your text
  train.py      obliviate train          full and retain models of a run
  unlearn.py    obliviate unlearn        a post-hoc method (torchrun: ``-m obliviate.cli unlearn``)
                obliviate methods        every method with its summary
  evaluate.py   obliviate eval, report   metrics JSON; a run's report.md and plots
  attack.py     obliviate attack         relearning, in-context, adversarial, GCG attacks
  whp.py        obliviate whp anchors / generate
  icul.py       obliviate icul           in-context unlearning, graded by LiRA-Forget
  attribute.py  obliviate attribute      which sources a text draws on (sink models)
  purge.py      obliviate purge          a sink model without its forgotten sources' sinks, as a plain Llama
  serve.py      obliviate serve, certificate   deletion as a service: an OpenAI-compatible server, its ledger
  bench.py      obliviate bench, demo    the leaderboard; the whole pipeline, small

``app.py`` holds the app, the output guards and ``run``, the one error handler: a
``UserError`` (or a usage mistake) is one ``error: ...`` line on stderr and exit
status 2; Ctrl-C is exit status 130. Commands import the layers below lazily, so
``obliviate --help`` stays fast.
"""

from __future__ import annotations

from typing import Optional, Sequence

# importing a command module registers its commands; this order is the order of `obliviate --help`
from obliviate.cli import world  # noqa: F401  isort: skip
from obliviate.cli import train  # noqa: F401  isort: skip
from obliviate.cli import unlearn  # noqa: F401  isort: skip
from obliviate.cli import evaluate  # noqa: F401  isort: skip
from obliviate.cli import attack  # noqa: F401  isort: skip
from obliviate.cli import whp  # noqa: F401  isort: skip
from obliviate.cli import icul  # noqa: F401  isort: skip
from obliviate.cli import attribute  # noqa: F401  isort: skip
from obliviate.cli import purge  # noqa: F401  isort: skip
from obliviate.cli import serve  # noqa: F401  isort: skip
from obliviate.cli import bench  # noqa: F401  isort: skip
from obliviate.cli.app import app, run  # isort: skip

__all__ = ["app", "main"]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``obliviate`` console script: runs the command and exits (0, 2 or 130)."""
    run(app, argv, "obliviate")
