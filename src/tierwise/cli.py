"""The `tierwise` command line: a thin typer app; each command lives with its component."""

from __future__ import annotations

import typer

from tierwise.evaluation.cli import eval_command
from tierwise.gateway.cli import serve
from tierwise.planning.cli import plan_app, profile_app, simulate_cmd
from tierwise.routing.cli import route, train, train_cascade_command
from tierwise.traffic.cli import label_command

app = typer.Typer(
    name="tierwise",
    help="One OpenAI-compatible gateway in front of device, edge and cloud tiers.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(serve)
app.command("eval")(eval_command)
app.command()(train)
app.command()(route)
app.command("train-cascade")(train_cascade_command)
app.command("label")(label_command)
app.add_typer(plan_app, name="plan")
app.add_typer(profile_app, name="profile")
app.command("simulate")(simulate_cmd)
