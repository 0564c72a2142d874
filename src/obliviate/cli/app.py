"""The Typer app, the one error handler, and what every command shares.

``run`` is the only place a :class:`~obliviate.errors.UserError` (or a usage mistake
Click finds: a missing option, a bad number) becomes ``error: <message>`` on stderr and
exit status 2, and Ctrl-C becomes exit status 130. Commands raise; they never print
errors or exit themselves.

The output guards (``check_*_out``) give ``obliviate.io.check_output`` what marks each
kind of artifact as ours; every command calls them before any long work.

Command modules import the domain modules they drive inside each command function, on
purpose: ``obliviate --help`` and a mistyped option answer at once, and torch and
transformers load only for the command that runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import typer

try:  # Typer >= 0.2x runs on its own copy of Click, whose exceptions are these
    from typer._click import exceptions as click_errors
except ImportError:  # older Typer: Click itself
    from click import exceptions as click_errors

from obliviate.errors import UserError

app = typer.Typer(
    name="obliviate",
    help="Machine unlearning for language models: make a model forget, and prove it is gone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PRESETS = ("micro", "tiny", "small")

# Options several commands share (Annotated: a command called from Python keeps plain defaults).
OverwriteOption = Annotated[bool, typer.Option(
    "--overwrite", help="Replace the output even when it is not an earlier output of this command.")]
ConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", help="YAML file of settings (nested mappings = dotted keys); --set values win over it.")]
ChatTemplateOption = Annotated[Optional[bool], typer.Option(
    "--chat-template/--no-chat-template",
    help="Put every QA item (training, unlearning, attacks, evaluation) in the tokenizer's chat template, as "
         "instruct models need. Default: as the model was trained (its obliviate_config.json), else on when its "
         "tokenizer has a chat template.")]
SystemPromptOption = Annotated[Optional[str], typer.Option(
    "--system-prompt", help="System message the chat template is rendered with (open-unlearning's TOFU models: "
                            "'You are a helpful assistant.'). Default: as the model was trained, else none.")]
ChatDateOption = Annotated[Optional[str], typer.Option(
    "--chat-date", help="date_string the chat template is rendered with (open-unlearning's TOFU models: "
                        "'10 Apr 2025'). Default: as the model was trained, else the template's.")]


def chat_options(system_prompt: Optional[str], chat_date: Optional[str]):
    """The --system-prompt / --chat-date pair as ``ChatOptions`` (unset: as the model was trained)."""
    from obliviate.data.format import ChatOptions

    return ChatOptions(system_prompt=system_prompt, date_string=chat_date)


ReportToOption = Annotated[str, typer.Option(
    "--report-to", help="Experiment tracker for training: none, tensorboard or wandb (WANDB_MODE=offline works); "
                        "its files go to the model's logs/ folder.")]


def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return preset


# ---- the output guards -------------------------------------------------------------------------


def is_world_dir(path: Path) -> bool:
    return (path / "world.json").is_file()


def is_saved_model(path: Path) -> bool:
    """A model directory obliviate saved (``save_model`` with its run config)."""
    return (path / "obliviate_config.json").is_file() and (path / "config.json").is_file()


def is_run_dir(path: Path) -> bool:
    """A run directory (``obliviate.workflows.run_dir.RunDir`` layout) that obliviate wrote into."""
    from obliviate.workflows.run_dir import RunDir

    run = RunDir(Path(path))
    return ((run.world_dir / "world.json").is_file()
            or (run.tokenizer_dir / "obliviate_tokenizer.json").is_file()
            or any(run.models_dir.glob("*/obliviate_config.json"))
            or any(run.eval_dir.glob("*.json"))
            or (run.root / "leaderboard.json").is_file()
            # a multi-seed bench (``--seeds``) interrupted before its aggregate was written
            or any(is_run_dir(child) for child in run.root.glob("seed[0-9]*") if child.is_dir()))


def check_world_out(path: Path, option: str = "--out") -> Path:
    from obliviate.io import check_output

    return check_output(path, is_world_dir, option=option, what="a world")


def check_model_out(path: Path, overwrite: bool = False, option: str = "--out") -> Path:
    from obliviate.io import check_output

    return check_output(path, is_saved_model, option=option, what="a model saved by obliviate", overwrite=overwrite)


def check_run_out(path: Path, overwrite: bool = False, option: str = "--run") -> Path:
    from obliviate.io import check_output

    return check_output(path, is_run_dir, option=option, what="an obliviate run directory", overwrite=overwrite)


def check_json_out(path: Path, ours: Sequence[str] | Any, what: str, overwrite: bool = False,
                   option: str = "--out") -> Path:
    """``ours``: keys the earlier JSON object holds, or a predicate on the parsed JSON."""
    from obliviate.io import check_output

    return check_output(path, ours, json_file=True, option=option, what=what, overwrite=overwrite)


def settings(config_file: Optional[Path], assignments: Sequence[str]) -> dict[str, str]:
    """``--config FILE.yaml`` values, then ``--set key=value`` (which wins)."""
    from obliviate.config import collect_overrides

    return collect_overrides(config_file, assignments)


# ---- the one error handler ---------------------------------------------------------------------


def one_line(text: str) -> str:
    """A message on one line (a multi-line message's lines joined with spaces)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _usage_line(exc: click_errors.UsageError) -> str:
    message = one_line(exc.format_message())
    if exc.ctx is not None:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return message


def run(typer_app: typer.Typer, argv: Optional[Sequence[str]], prog_name: str) -> None:
    """Run ``typer_app`` on ``argv`` and exit: 0 on success, 2 with one ``error:`` line on
    stderr for a user mistake, 130 when interrupted. Never returns."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        result = typer_app(args=None if argv is None else list(argv), prog_name=prog_name, standalone_mode=False)
    except UserError as exc:
        print(f"error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as exc:   # `obliviate`, `obliviate whp`: the help, as Click does
        typer.echo(exc.ctx.get_help())
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:   # a missing option, a bad number, an unknown command
        print(f"error: {_usage_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except click_errors.ClickException as exc:
        print(f"error: {one_line(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code if exc.exit_code else 1)
    except (KeyboardInterrupt, typer.Abort):
        result = 130
    # Typer returns an exit code (help: 0, Ctrl-C inside a command: 130) or the command's
    # return value (commands return paths, dicts or lists for Python callers, never an int)
    code = result if type(result) is int else 0
    if code == 130:
        print("interrupted: completed steps are saved; run the same command again to resume", file=sys.stderr)
    sys.exit(code)
