"""Registers on the Typer app the commands whose code lives next to what they drive."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from obliviate.attacks.commands import attack_command
    from obliviate.attribution import attribute_command
    from obliviate.eval.commands import eval_command, report_command
    from obliviate.icul.commands import icul_command
    from obliviate.workflows.unlearn import unlearn_command
    from obliviate.whp.commands import anchors_command, generate_command

    app.command("eval")(eval_command)
    app.command("unlearn")(unlearn_command)
    app.command("report")(report_command)
    app.command("attack")(attack_command)
    app.command("attribute")(attribute_command)
    app.command("icul")(icul_command)

    whp = typer.Typer(help="Who's Harry Potter tools: anchored-term dictionaries and inference-only generation.",
                      no_args_is_help=True)
    whp.command("anchors")(anchors_command)
    whp.command("generate")(generate_command)
    app.add_typer(whp, name="whp")
