"""``nasbench retrain RUN``: retrain a run's Pareto winners and the reference networks from scratch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from nasbench.cli.common import console, device_option, emit_json, interrupt_hint, json_option, parse_device
from nasbench.textfmt import split_list

app = typer.Typer()
DEFAULT_EPOCHS = 20  # retrain.run.DEFAULT_EPOCHS (a test keeps them equal; that module imports torch)


@app.command("retrain")
def retrain_command(
    run: Path = typer.Argument(..., help="The search run folder (or its id under results/runs/)."),
    top: int = typer.Option(3, "--top", "-k", help="Pareto winners to retrain, spread along the acc-vs-MACs front."),
    budget: str = typer.Option(None, "--budget", "-b", help="Per model: a time (20min), 500steps or 3epochs."),
    epochs: int = typer.Option(
        None, "--epochs", "-e", help=f"Per model, instead of --budget (default {DEFAULT_EPOCHS})."
    ),
    baselines: str = typer.Option(
        None, "--baselines", help="Reference networks to retrain too, comma-separated (default: the space's first)."
    ),
    parallel: int = typer.Option(1, "--parallel", help="Models trained at once as Ray Tune trials (1: in process)."),
    ray_address: str = typer.Option(None, "--ray-address", help="An existing Ray cluster (with --parallel)."),
    device: str = device_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars (on stderr)."),
    as_json: bool = json_option("Print the report as JSON."),
) -> None:
    """Train K Pareto winners and the baselines from scratch with one recipe; report test top-1 in RUN/retrain/.

    Run it again after a kill: finished models are skipped, the others resume from their checkpoints.
    """
    from nasbench.retrain.run import resolve_budget, retrain_run

    interrupt_hint(f"run the same command again to resume {run}")
    dev = str(parse_device(device))  # checked before anything is read or written
    names = list(split_list(baselines)) if baselines is not None else None
    report = retrain_run(
        run,
        top=top,
        budget=resolve_budget(budget, epochs),
        baselines=names,
        parallel=parallel,
        device=dev,
        ray_address=ray_address,
        progress=progress,
    )
    if as_json:
        emit_json(report)
    else:
        _print(report, run)


def _print(report: dict[str, Any], run: Path) -> None:
    from nasbench.retrain.report import display_frame, markdown_table, report_frame, retrain_dir
    from nasbench.runs import resolve_run

    frame = report_frame(report["rows"])
    console.print(markdown_table(display_frame(frame)))
    tau = report["kendall_tau"]
    text = "undefined" if math.isnan(tau) else f"{tau:+.3f} (p = {report['kendall_p']:.3g})"
    console.print(f"Kendall's tau, supernet estimate vs from scratch, over {report['winners']} winners: {text}")
    console.print(f"report: {retrain_dir(resolve_run(run)) / 'report.md'}")
