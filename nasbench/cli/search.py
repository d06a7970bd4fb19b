"""``nasbench search``: train a supernet, search it, and print the Pareto front (see ``nasbench.pipeline``)."""

from __future__ import annotations

from pathlib import Path

import typer

from nasbench.budget import parse_shares
from nasbench.cli.common import console, device_option, interrupt_hint, json_option
from nasbench.cli.runs import show_front
from nasbench.textfmt import split_list

app = typer.Typer()


def _csv(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else split_list(text)


@app.command("search")
def search(
    space: str = typer.Option(None, "--space", "-s", help="A shipped space name or a YAML path."),
    data: str = typer.Option(None, "--data", "-d", help="digits, cifar10, cifar100, an ImageFolder tree or a .npz."),
    budget: str = typer.Option(None, "--budget", "-b", help="10gpu-h, 2h, 90min, or 300trials (with --train-budget)."),
    searcher: str = typer.Option(None, "--searcher", help="Comma-separated: proximal, nsga2, tpe, random, evolution."),
    objectives: str = typer.Option(
        None,
        "--objectives",
        help="score,macs (default: the supernet's loss and NASWOT as one calibrated score, which ranks better "
        "than its accuracy), acc,macs, or either with ,latency. --evaluator table: acc,macs (the true accuracy).",
    ),
    out: Path = typer.Option(None, "--out", help="Run folder (default results/runs/<run-id>/)."),
    resume: Path = typer.Option(None, "--resume", help="Continue a killed run; its stored settings are used."),
    seed: int = typer.Option(None, "--seed", help="Seed of every random choice of the run (default 0)."),
    shares: str = typer.Option(None, "--shares", help="Budget shares, e.g. supernet=0.5,search=0.5."),
    train_budget: str = typer.Option(None, "--train-budget", help="Supernet budget when --budget counts trials."),
    max_macs: float = typer.Option(None, "--max-macs", help="Constraint: at most this many MACs."),
    max_latency: float = typer.Option(None, "--max-latency", help="Constraint: at most this latency (ms)."),
    latency_table: str = typer.Option(None, "--latency-table", help="A latency table JSON (nasbench latency lut)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Supernet training batch size (default 32)."),
    sampling: str = typer.Option(
        None, "--sampling", help="Supernet training: sandwich (default) or uniform (one subnet per step, labels only)."
    ),
    targets: int = typer.Option(None, "--targets", help="Cost targets of the proximal searcher (default 4)."),
    proximal_steps: int = typer.Option(None, "--proximal-steps", help="Proximal steps per target (default 200)."),
    concurrency: int = typer.Option(None, "--concurrency", help="Trials at once (default 2)."),
    ray_address: str = typer.Option(None, "--ray-address", help="An existing Ray cluster, e.g. 10.0.0.1:6379."),
    device: str = device_option(),
    gpus_per_trial: float = typer.Option(
        None, "--gpus-per-trial", help="On CUDA, each Ray trial's share of a GPU (default 1 / --concurrency)."
    ),
    workers: int = typer.Option(
        None, "--workers", help="Data-parallel ranks for the supernet (Ray Train), one device each (default 1)."
    ),
    evaluator: str = typer.Option(
        None,
        "--evaluator",
        help="supernet (default), or table: a benchmark space's ground truth, no training (--budget Ntrials).",
    ),
    eval_images: int = typer.Option(
        None,
        "--eval-images",
        help="Validation images per supernet evaluation, the split's first (default: all). Fewer: faster, noisier.",
    ),
    calibration: int = typer.Option(
        None,
        "--calibration",
        help="Architectures the score (objective score) is calibrated on before the search (default 24).",
    ),
    as_json: bool = json_option("Print the front as JSON at the end."),
) -> None:
    """Train a supernet and search it under the budget; prints the Pareto front and the plot's path."""
    from nasbench.pipeline.config import search_config
    from nasbench.pipeline.run import run_search

    given = {
        "space": space,
        "data": data,
        "budget": budget,
        "searchers": _csv(searcher),
        "objectives": _csv(objectives),
        "seed": seed,
        "shares": parse_shares(shares) if shares else None,
        "train_budget": train_budget,
        "max_macs": max_macs,
        "max_latency": max_latency,
        "latency_table": latency_table,
        "batch_size": batch_size,
        "sampling": sampling,
        "proximal_targets": targets,
        "proximal_steps": proximal_steps,
        "concurrency": concurrency,
        "ray_address": ray_address,
        "device": device,
        "gpus_per_trial": gpus_per_trial,
        "workers": workers,
        "evaluator": evaluator,
        "eval_images": eval_images,
        "calibration": calibration,
    }
    config = search_config(given, resume=resume)
    folder = resume or out
    interrupt_hint(f"continue with: nasbench search --resume {folder or 'RUN (its folder under results/runs/)'}")
    run = run_search(config, out=out, resume=resume)
    show_front(run, None, None, as_json)
    if not as_json:
        console.print(f"Plot: {run.path / 'pareto.png'}   Summary: {run.path / 'summary.md'}")
