"""``nasbench benchmark show|rank``: a benchmark's ground truth, and a trained supernet's ranking against it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from nasbench.cli.common import emit_json, json_option
from nasbench.errors import NasbenchError
from nasbench.textfmt import split_list

app = typer.Typer(no_args_is_help=True, help="Ground-truth benchmarks (NAS-Bench-Macro): the table and rank reports.")
console = Console(stderr=True)


@app.command("show")
def show(
    name: str = typer.Argument("nas-bench-macro", help="The benchmark (nasbench ships nas-bench-macro)."),
    max_flops: float = typer.Option(None, "--max-flops", help="Only networks with at most this many FLOPs."),
    as_json: bool = json_option(),
) -> None:
    """The benchmark's size, source, best network and true Pareto front (accuracy vs FLOPs)."""
    from nasbench.benchmarks.truth import load_benchmark

    truth = load_benchmark(name)
    rows = truth.feasible(max_flops)
    if rows.empty:
        raise NasbenchError(f"no network of {name} has at most {max_flops:,.0f} FLOPs")
    best, front = truth.best(max_flops), truth.front(max_flops)
    columns = ["key", "acc", "flops", "params", "arch"]
    info = {
        "name": name,
        "space": truth.space.name,
        "networks": len(rows),
        "source": truth.source,
        "best": best[columns].to_dict(),
        "front": front[columns].to_dict("records"),
    }
    if as_json:
        emit_json(info)
        return
    print(f"{name}: {len(rows):,} networks (space {truth.space.name}); {truth.source}")
    print(f"best: {best['key']}  {best['acc']:.2f}%  {best['flops'] / 1e6:.2f} M FLOPs  {best['arch']}")
    print(f"true Pareto front ({len(front)} networks, accuracy vs FLOPs):")
    for _, r in front.iterrows():
        print(f"  {r['key']}  {r['acc']:6.2f}%  {r['flops'] / 1e6:7.2f} M FLOPs  {r['params'] / 1e6:5.2f} M params")


@app.command("rank")
def rank(
    supernet: Path = typer.Argument(..., help="A finished train-supernet folder (or a search run's supernet/)."),
    data: str = typer.Option(None, "--data", help="The training data, if it moved since training."),
    n: int = typer.Option(400, "--n", help="Networks to score, stratified over FLOPs quintiles (3969: all)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the sample, BN recalibration batches and proxy weights."),
    val_images: int = typer.Option(None, "--val-images", help="Validation images per network (default: all)."),
    proxies: str = typer.Option("synflow,naswot", "--proxies", help="Zero-cost proxies: synflow, naswot, grad_norm."),
    out: Path = typer.Option(None, "--out", help="Where scores and the report go (default SUPERNET/rank-report)."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals."),
    calibration: int = typer.Option(
        None, "--calibration", help="Architectures the score is calibrated on (default 24, as a search's)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Rank a benchmark space's networks with the supernet (accuracy and loss), FLOPs, params and zero-cost
    proxies; Kendall tau (bootstrap 95% interval), Spearman, top-5% precision, overall and within FLOPs
    quintiles, against the table's true accuracy. A killed report continues where it stopped."""
    import dataclasses

    import torch

    from nasbench.benchmarks import report as rr
    from nasbench.benchmarks.proxies import PROXIES

    names = split_list(proxies)
    unknown = [p for p in names if p not in PROXIES]
    if unknown:
        raise NasbenchError(f"unknown proxy {unknown[0]!r}; valid are {', '.join(PROXIES)}")
    if calibration is not None and calibration < 2:
        raise NasbenchError(f"--calibration must be at least 2 architectures, got {calibration}")
    if n < 10:
        raise NasbenchError(f"--n must be at least 10 (two per FLOPs quintile), got {n}")
    if val_images is not None and val_images < 1:
        raise NasbenchError(f"--val-images must be positive, got {val_images}")
    if threads is not None:
        torch.set_num_threads(threads)
    space, trained, info = rr.open_trained(supernet, data)
    truth = rr.trained_truth(space)
    out = out or supernet / "rank-report"
    out.mkdir(parents=True, exist_ok=True)
    keys = rr.sample_keys(truth, n, seed)
    trained.val = rr.subset(trained.val, val_images)
    rr.claim_folder(out, dataclasses.replace(info["settings"], images=val_images), info["identity"])

    def progress(done: int, total: int, eta: float) -> None:
        if not as_json:
            console.print(f"scored {done}/{total} networks, about {eta / 60:.1f} min left", highlight=False)

    scores = rr.score_networks(
        truth, keys, trained, info["settings"], out, proxies=names, seed=seed, on_progress=progress
    )
    ranker_line = "score: not computed (it needs the naswot proxy)."
    if "naswot" in names:
        scores, ranker = rr.with_ranker_score(
            truth, scores, trained, info["settings"], out, seed=seed, calibration=calibration, on_progress=progress
        )
        ranker_line = (
            f"score: the ranker a search chooses by (supernet loss + NASWOT), calibrated as a seed-{seed} search"
            f" calibrates it, on {ranker.n} seeded architectures of the space."
        )
    report = rr.report_frame(truth, scores, n_boot=n_boot, seed=seed)
    header = [
        f"# Rank report: {supernet} ({space.name})",
        "",
        f"{len(keys)} networks of {truth.name}, seed {seed}, stratified over FLOPs quintiles; supernet trained"
        f" {info['budget']} ({info['steps']} steps, sampling {info['config'].sampling}); {len(trained.val)} validation"
        f" images per network; truth: the table's mean test accuracy. Higher is better for every ranker (losses"
        f" and FLOPs as given are negated only where lower means better: loss). table_run1 is the table's first"
        f" run against the mean of its other two: the ceiling. {ranker_line}",
    ]
    text = rr.write_report(out, report, header)
    if as_json:
        emit_json({"out": str(out), "report": report.to_dict("records")})
    else:
        print(text)
        print(f"scores: {out / rr.SCORES}   report: {out / rr.REPORT_CSV}")
