"""``nasbench pareto RUN``: the Pareto front of a search run, finished or still running.

``show_front`` prints a run's front; ``pareto`` and ``search`` both call it. It reads the run's journal, so
it shows what a running search has recorded so far, and writes nothing into the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from nasbench.cli.common import console, emit_json, json_option
from nasbench.errors import NasbenchError
from nasbench.objectives.table import OBJECTIVES, parse_objectives
from nasbench.textfmt import human_count

if TYPE_CHECKING:
    import pandas as pd

    from nasbench.runs import RunDir

app = typer.Typer()
WIDE = 120  # terminal columns from which the table also shows each architecture's compact string


@app.command("pareto")
def pareto(
    run: str = typer.Argument(..., help="A run folder, or a run id under results/runs/."),
    objectives: str = typer.Option(
        None, "--objectives", help="Comma-separated, among acc, macs, params, latency; default: the run's own."
    ),
    plot: Path = typer.Option(None, "--plot", help="Also write the Pareto plot (PNG) to this file."),
    as_json: bool = json_option("Print the front's rows as JSON instead of a table."),
) -> None:
    """Print the Pareto front of a run; each row's arch id is what `nasbench export RUN --arch ID` takes."""
    from nasbench.runs import RunDir

    show_front(RunDir.open(run), objectives, plot, as_json)


def show_front(rundir: RunDir, objectives: str | None, plot: Path | None, as_json: bool) -> None:
    """Print the front of ``rundir`` under ``objectives`` (default: the run's own) as a table or JSON rows,
    and with ``plot`` also write the plot there."""
    from nasbench.runs import objective_frame, plot_fronts
    from nasbench.runs.outputs import FRONT_COLUMNS

    obj = parse_objectives(objectives or rundir.objectives)
    records = rundir.records()
    ok = objective_frame(records)
    if ok.empty:
        raise NasbenchError(
            f"run {rundir.run_id} has no successful evaluations yet ({len(records)} recorded); "
            "try again once some have finished"
        )
    front = rundir.front(list(obj))  # the one the run wrote, unless records came after it
    if plot is not None:
        plot_fronts(records, plot, title=f"run {rundir.run_id}", quality=next(iter(obj)))
    if as_json:
        emit_json(json.loads(front[FRONT_COLUMNS].to_json(orient="records")))
        if plot is not None:
            print(f"plot: {plot}", file=sys.stderr)  # stdout holds only the JSON
        return
    console.print(_front_table(rundir.run_id, front, obj, len(ok)))
    console.print(f"Export one with: nasbench export {rundir.path} --arch ID")
    if plot is not None:
        console.print(f"plot: {plot}")


def _front_table(run_id: str, front: pd.DataFrame, objectives: dict[str, str], n_ok: int) -> Table:
    import pandas as pd

    arrows = ", ".join(f"{OBJECTIVES[o].label} {'↑' if s == 'max' else '↓'}" for o, s in objectives.items())
    table = Table(title=f"Pareto front of {run_id} ({arrows}): {len(front)} of {n_ok} successful evaluations")
    with_latency = "latency" in objectives or front["latency"].notna().any()
    with_score = "score" in objectives or front["score"].notna().any()
    columns = ["arch id", "searcher", "trial", *(["score"] if with_score else []), "acc", "MACs", "params"]
    columns += ["latency ms"] if with_latency else []
    for col in columns:  # never squeezed: the arch id is what users copy
        table.add_column(col, justify="left" if col in ("arch id", "searcher") else "right", no_wrap=True)
    with_arch = console.width >= WIDE  # the compact strings are long; --json always carries them
    if with_arch:
        table.add_column("arch", overflow="fold", ratio=1)
    for row in front.itertuples(index=False):
        cells = [row.arch_id, row.searcher, str(row.trial)]
        cells += [f"{row.score:.4f}"] if with_score else []
        cells.append(f"{row.acc:.4f}")
        cells += [human_count(row.macs), human_count(row.params)]
        if with_latency:
            cells.append("" if pd.isna(row.latency) else f"{row.latency:.3g}")
        table.add_row(*cells, *([row.arch] if with_arch else []))
    return table
