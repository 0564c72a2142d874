"""Session fixtures: the micro world and its trained full/retain models, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # `pytest -n N`: the N workers share the cores instead of each taking all of them (set before torch loads)
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "public-domain"


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory) -> Path:
    from obliviate.world.generator import generate_world

    return generate_world("micro", 0, tmp_path_factory.mktemp("micro") / "world")


@pytest.fixture(scope="session")
def micro_run(micro_world, tmp_path_factory):
    """RunDir with models/full and models/retain trained on the micro world (forget10)."""
    from obliviate.workflows.run_dir import RunDir
    from obliviate.workflows.train import train_run

    root = tmp_path_factory.mktemp("micro_run")
    train_run(micro_world, root, forget="forget10", progress=False)
    return RunDir.open(root)


@pytest.fixture(scope="session")
def micro_sink_model(micro_world, micro_run) -> Path:
    """The micro run's sink model (RUN/models/full-sinks), trained through the command line as a
    user would; the leaderboard's native rows then reuse it instead of training their own."""
    from cli_run import run_cli

    run_cli("train", "--world", micro_world, "--run", micro_run.root, "--arch", "sinks", "--only", "full", "--quiet")
    return micro_run.root / "models" / "full-sinks"


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from obliviate.cli import main

    def invoke(*args: str):
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The methods' toy task (tests/methods_toy.py): a tiny Llama that knows forget and retain facts."""
    import methods_toy

    return methods_toy.cached_toy(lambda: tmp_path_factory.mktemp("methods_toy"))
