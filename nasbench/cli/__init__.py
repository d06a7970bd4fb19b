"""The ``nasbench`` command line (typer + rich): every command module, merged into one ``app``.

Every command takes ``--help`` and ``--json``. A ``NasbenchError`` (bad input) prints one line on stderr and
exits with code 2, an interrupt prints how to continue and exits with 130 (``common.HandledGroup``);
anything else is a bug and keeps its traceback. Command modules import torch, pandas and the engines inside
their commands, so ``nasbench --help`` stays fast.
"""

from __future__ import annotations

import typer

from nasbench.cli import arch, benchmark, latency, retrain, runs, search, spaces, train, zoo
from nasbench.cli.common import HandledGroup

app = typer.Typer(
    cls=HandledGroup,
    help="nasbench: neural-architecture search for image classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(spaces.app, name="spaces")  # nasbench spaces [show SPACE]
app.add_typer(arch.app, name="arch")  # nasbench arch describe ARCH
app.add_typer(runs.app)  # nasbench pareto RUN (no name: the command is merged in)
app.add_typer(train.app)  # nasbench train-supernet ...
app.add_typer(search.app)  # nasbench search ...
app.add_typer(latency.app, name="latency")  # nasbench latency measure|lut|predict|validate
app.add_typer(zoo.export_app)  # nasbench export RUN --arch ID --name NAME
app.add_typer(zoo.zoo_app, name="zoo")  # nasbench zoo list|show
app.add_typer(retrain.app)  # nasbench retrain RUN --top K
app.add_typer(benchmark.app, name="benchmark")  # nasbench benchmark show|rank


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default: the process's arguments); always exits (``SystemExit``)."""
    app(args=argv)


def entry() -> None:
    """The ``nasbench`` console script."""
    main()
