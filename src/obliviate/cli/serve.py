"""``obliviate serve`` (deletion as a service) and ``obliviate certificate`` (one deletion's evidence).

``serve`` runs an OpenAI-compatible server whose ``POST /v1/deletions`` switches a sink
model's sources off at once or queues a post-hoc unlearning job for a dense model, and
records every request in an append-only SQLite ledger (``obliviate.serve``). The server
needs the ``serve`` extra (FastAPI, uvicorn): ``pip install 'obliviate[serve]'``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import List, Optional

import typer

from obliviate.cli.app import ConfigOption, OverwriteOption, app, settings
from obliviate.errors import UserError

SERVE_EXTRA = ("fastapi", "uvicorn")


def check_serve_extra() -> None:
    missing = [name for name in SERVE_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"obliviate serve needs {', '.join(missing)}: pip install 'obliviate[serve]'")


@app.command("serve")
def serve_command(
    model: Path = typer.Option(..., "--model", help="Model directory to serve (a sink model: deletions use the switch; a dense model: a post-hoc job)."),
    world: Optional[Path] = typer.Option(None, "--world", help="World directory: the sources deletions name (needed for a dense model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    ledger: Path = typer.Option(Path("obliviate-ledger.sqlite"), "--ledger", help="The SQLite ledger (created if missing; replayed on start). Dense jobs write their models beside it, in LEDGER-models/."),
    tokens: Optional[Path] = typer.Option(None, "--tokens", help="Token file: 'NAME ROLE TOKEN' lines, ROLE admin or client (default: $OBLIVIATE_SERVE_TOKENS)."),
    require_token: bool = typer.Option(False, "--require-token", help="Completions and the read-only views need a token too (deletions always need an admin token)."),
    method: str = typer.Option("grad_diff", "--method", help="Post-hoc method of a dense model's deletion jobs (a request may name another)."),
    set_: List[str] = typer.Option([], "--set", help="Setting key=value of that method; repeatable."),
    retain_model: Optional[Path] = typer.Option(None, "--retain-model", help="Retain model to grade each dense deletion against (forget quality)."),
    attack: List[str] = typer.Option([], "--attack", help="Attack each dense deletion's new model (relearn, icl, adversarial, gcg, quantize, format); repeatable, results in the certificate."),
    eval_: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate each dense deletion's model before it is served."),
    max_batch: int = typer.Option(16, "--max-batch", help="Most greedy requests generated together."),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="Largest request body accepted (413 beyond)."),
    job_timeout: Optional[float] = typer.Option(None, "--job-timeout", help="Seconds a deletion job may run before it fails."),
    device: Optional[str] = typer.Option(None, "--device", help="torch device for the served model and the jobs."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
    config: ConfigOption = None,
) -> None:
    """Serve a model with OpenAI-compatible completions and a deletions API, every request in a ledger."""
    check_serve_extra()
    from obliviate.config import apply_overrides
    from obliviate.methods.registry import get_method
    from obliviate.models.loading import check_device, check_model_dir
    from obliviate.serve.server import serve
    from obliviate.serve.service import ServeConfig

    check_model_dir(model)
    for option, path in (("--world", world), ("--retain-model", retain_model)):
        if path is not None and not path.exists():
            raise UserError(f"{option} path does not exist: {path}")
    overrides = settings(config, set_)
    apply_overrides(get_method(method).config_class(), overrides)   # a bad --set fails now
    check_device(device)
    attacks = []
    if attack:
        from obliviate.attacks.runner import parse_attack_names

        attacks = parse_attack_names(attack)
    if max_batch < 1 or max_body_bytes < 1:
        raise UserError("--max-batch and --max-body-bytes must be positive")
    # absolute paths: the ledger and the job workers keep them, whatever directory they run in
    model, ledger = model.resolve(), ledger.resolve()
    world = None if world is None else world.resolve()
    retain_model = None if retain_model is None else retain_model.resolve()
    serve(ServeConfig(model=model, ledger=ledger, world=world, host=host, port=port, tokens=tokens,
                      require_token=require_token, method=method, overrides=overrides, retain_model=retain_model,
                      evaluate=eval_, max_body_bytes=max_body_bytes, max_batch=max_batch, device=device,
                      job_timeout_s=job_timeout, attacks=attacks),
          log_level=log_level, announce=lambda text: typer.echo(text, err=True))


@app.command("certificate")
def certificate_command(
    deletion: str = typer.Argument(..., help="Deletion id (e.g. del-000001)."),
    ledger: Path = typer.Option(..., "--ledger", help="The ledger of the server that took the request."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON certificate instead of markdown."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the certificate here (.md or .json by --json) instead of printing it."),
    overwrite: OverwriteOption = False,
) -> dict:
    """A deletion's certificate (what, when, by whom, how, model hashes, evaluation) from the ledger."""
    from obliviate.io import atomic_write_text, check_output
    from obliviate.serve.certificate import build_certificate, render_markdown
    from obliviate.serve.ledger import Ledger

    if out is not None:
        if as_json:
            check_output(out, ["certificate_version", "deletion"], json_file=True, option="--out",
                         what="an earlier certificate", overwrite=overwrite)
        else:
            _check_markdown_out(out, overwrite)
    book = Ledger(ledger, read_only=True)
    try:
        record = book.deletions().get(deletion)
        if record is None:
            known = list(book.deletions())
            raise UserError(f"no deletion {deletion!r} in {ledger}"
                            + (f" (it holds {known[0]} .. {known[-1]})" if known else " (it holds none)"))
        cert = build_certificate(record.to_json(), str(ledger), book.server_events())
    finally:
        book.close()
    text = json.dumps(cert, indent=2) + "\n" if as_json else render_markdown(cert)
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"certificate of {deletion} -> {out}")
    return cert


def _check_markdown_out(out: Path, overwrite: bool) -> None:
    """A markdown certificate replaces only an earlier certificate (its first line says so)."""
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file path")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the directory {out.parent} does not exist")
    if out.exists() and not overwrite:
        try:
            first = out.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if not first.startswith("# Deletion certificate "):
            raise UserError(f"--out {out} exists and is not an earlier certificate; refusing to overwrite it "
                            "(choose another path, or pass --overwrite)")
