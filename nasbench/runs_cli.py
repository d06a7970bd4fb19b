"""``nasbench pareto RUN``: the Pareto front of a search run, finished or still running.

Kept apart from ``cli.py``, which merges it in with ``app.add_typer(runs_cli.app)`` (no name: the command
stays ``nasbench pareto``). Reads the run's
journal, so it shows what a running search has recorded so far and writes nothing into the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from nasbench.errors import NasbenchError
from nasbench.pareto import pareto_front
from nasbench.runs import RunDir, objective_frame, parse_objectives, plot_fronts
from nasbench.runs.outputs import FRONT_COLUMNS, LABELS
from nasbench.textfmt import human_count

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console()
DEFAULT_OBJECTIVES = "acc,macs"
WIDE = 120  # terminal columns from which the table also shows each architecture's compact string


@app.command("pareto")
def pareto(
    run: str = typer.Argument(..., help="A run folder, or a run id under results/runs/."),
    objectives: str = typer.Option(
        None, "--objectives", help="Comma-separated, among acc, macs, params, latency; default: the run's own."
    ),
    plot: Path = typer.Option(None, "--plot", help="Also write the Pareto plot (PNG) to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the front's rows as JSON instead of a table."),
) -> None:
    """Print the Pareto front of a run; each row's arch id is what `nasbench export RUN --arch ID` takes."""
    rundir = RunDir.open(run)
    obj = parse_objectives(objectives or rundir.config.get("objectives") or DEFAULT_OBJECTIVES)
    records = rundir.records()
    ok = objective_frame(records)
    if ok.empty:
        raise NasbenchError(
            f"run {rundir.run_id} has no successful evaluations yet ({len(records)} recorded); "
            "try again once some have finished"
        )
    front = pareto_front(ok, obj)
    if plot is not None:
        plot_fronts(records, plot, title=f"run {rundir.run_id}")
    if as_json:
        rows = json.loads(front[FRONT_COLUMNS].to_json(orient="records"))
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        if plot is not None:
            print(f"plot: {plot}", file=sys.stderr)
        return
    console.print(_front_table(rundir.run_id, front, obj, len(ok)))
    console.print(f"Export one with: nasbench export {rundir.path} --arch ID")
    if plot is not None:
        console.print(f"plot: {plot}")


def _front_table(run_id: str, front: pd.DataFrame, objectives: dict[str, str], n_ok: int) -> Table:
    arrows = ", ".join(f"{LABELS[o]} {'↑' if s == 'max' else '↓'}" for o, s in objectives.items())
    table = Table(title=f"Pareto front of {run_id} ({arrows}): {len(front)} of {n_ok} successful evaluations")
    with_latency = "latency" in objectives or front["latency"].notna().any()
    columns = ["arch id", "searcher", "trial", "acc", "MACs", "params"] + (["latency ms"] if with_latency else [])
    for col in columns:  # never squeezed: the arch id is what users copy
        table.add_column(col, justify="left" if col in ("arch id", "searcher") else "right", no_wrap=True)
    with_arch = console.width >= WIDE  # the compact strings are long; --json always carries them
    if with_arch:
        table.add_column("arch", overflow="fold", ratio=1)
    for row in front.itertuples(index=False):
        cells = [row.arch_id, row.searcher, str(row.trial), f"{row.acc:.4f}"]
        cells += [human_count(row.macs), human_count(row.params)]
        if with_latency:
            cells.append("" if pd.isna(row.latency) else f"{row.latency:.3g}")
        table.add_row(*cells, *([row.arch] if with_arch else []))
    return table
