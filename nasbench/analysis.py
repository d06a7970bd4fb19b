"""Helpers for the analysis notebooks (``notebooks/pareto.ipynb``): find runs, load their records, place the
space's reference networks, and draw the fronts. The notebooks hold no logic of their own; it lives here,
where the tests reach it.

::

    find_runs(spec=None, root="results/runs") -> list[Path]   # $NASBENCH_RUNS, else the newest run
    load_records(paths) -> DataFrame                          # ok records of every run, with run and latency
    reference_points(path) -> DataFrame                       # name, macs, params, acc (retrained), ...
    plot_fronts(records, references) -> Figure                # acc vs MACs (and vs latency), per searcher
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.objectives.table import parse_objectives
from nasbench.pareto import pareto_front
from nasbench.retrain.report import read_results, report_frame
from nasbench.runs import DEFAULT_ROOT, RunDir, Status, objective_frame
from nasbench.runs.rundir import CONFIG_FILE
from nasbench.spaces import load_space

RUNS_ENV = "NASBENCH_RUNS"


def find_runs(spec: str | None = None, root: str | os.PathLike = DEFAULT_ROOT) -> list[Path]:
    """Run folders from ``spec`` (paths separated by ``os.pathsep`` or commas; a folder holding runs counts
    as all of them), else from ``$NASBENCH_RUNS``, else the newest run under ``root``."""
    spec = spec if spec is not None else os.environ.get(RUNS_ENV)
    if spec:
        parts = [p for chunk in spec.split(os.pathsep) for p in chunk.split(",") if p.strip()]
        paths = [p for part in parts for p in _runs_in(Path(part.strip()))]
    else:
        paths = sorted(_runs_in(Path(root)), key=lambda p: (p / CONFIG_FILE).stat().st_mtime)[-1:]
    if not paths:
        where = spec or f"{root} (set ${RUNS_ENV} to choose runs)"
        raise NasbenchError(f"no search run folders found in {where}")
    return paths


def _runs_in(path: Path) -> list[Path]:
    if (path / CONFIG_FILE).is_file():
        return [path]
    if not path.is_dir():
        raise NasbenchError(f"{path} is neither a search run folder nor a folder of runs")
    return sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())


def load_records(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The ok records of every run, one row each, with ``run`` (its folder name) and ``latency`` (measured,
    else predicted) columns."""
    frames = []
    for path in paths:
        run = RunDir.open(path)
        frames.append(objective_frame(run.records()).assign(run=run.path.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def reference_points(path: str | os.PathLike) -> pd.DataFrame:
    """The run's space's reference networks at the run's largest searched resolution: analytic MACs and
    params, and, when ``RUN/retrain/`` holds them, from-scratch test top-1 (``acc``) beside the retrained
    winners' (``role`` tells them apart). ``acc`` is NaN for references not retrained."""
    run = RunDir.open(path)
    space = load_space(run.config["space"])
    records = run.records()
    searched = records.loc[records["status"] == Status.OK, "resolution"]
    num_classes = _num_classes(run)
    rows = []
    for name in space.references:
        arch = space.reference(name)
        arch = arch.with_resolution(int(searched.max())) if len(searched) else arch
        cost = count(arch, num_classes)
        rows.append({"role": "reference", "name": name, "arch_id": arch.id, "macs": cost.macs, "params": cost.params})
    refs = pd.DataFrame(rows, columns=["role", "name", "arch_id", "macs", "params"])
    retrained = report_frame(read_results(run.path))
    scratch = retrained.set_index("arch_id")["test_top1"]
    refs["acc"] = refs["arch_id"].map(scratch).astype(float)
    winners = retrained[retrained["role"] == "winner"].rename(columns={"test_top1": "acc"})
    return pd.concat([refs, winners[["role", "name", "arch_id", "macs", "params", "acc"]]], ignore_index=True)


def _num_classes(run: RunDir) -> int:
    """The classes of the run's data, for the classifier's share of MACs (1000 when it cannot be loaded)."""
    try:
        return load_dataset(run.config["data"]).num_classes
    except NasbenchError:
        return 1000


def plot_fronts(records: pd.DataFrame, references: pd.DataFrame | None = None, title: str = "") -> Figure:
    """Accuracy vs MACs (log scale), and vs latency when the records have any: every record faint, one colour
    per searcher, the front as a black staircase; reference networks as stars at their from-scratch
    accuracy (or as dashed lines at their MACs when not retrained), retrained winners as crosses."""
    panels = ["macs"] + (["latency"] if "latency" in records and records["latency"].notna().any() else [])
    fig = Figure(figsize=(6.4 * len(panels), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    searchers = sorted(records["searcher"].unique()) if len(records) else []
    for ax, cost in zip(axes, panels, strict=True):
        data = records[records[cost].notna()] if len(records) else records
        for i, searcher in enumerate(searchers):
            mine = data[data["searcher"] == searcher]
            ax.scatter(mine[cost], mine["acc"], s=14, alpha=0.5, color=f"C{i % 10}", label=searcher)
        if len(data):
            front = pareto_front(data, parse_objectives(["acc", cost]))
            ax.step(front[cost], front["acc"], where="post", color="black", linewidth=1.2, label="Pareto front")
        if cost == "macs":
            ax.set_xscale("log")
            if references is not None:
                _mark_references(ax, references)
        ax.set_xlabel("MACs (log scale)" if cost == "macs" else "latency, ms (measured, else predicted)")
        ax.set_ylabel("top-1 accuracy (search: validation; retrained: test)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def _mark_references(ax, references: pd.DataFrame) -> None:
    labelled: set[str] = set()

    def label(kind: str) -> str | None:  # one legend entry per kind of mark
        return None if kind in labelled or labelled.add(kind) else kind

    for row in references.itertuples():
        if row.role == "winner":
            ax.scatter(
                [row.macs], [row.acc], marker="X", s=70, color="black", zorder=4, label=label("retrained winner")
            )
        elif pd.notna(row.acc):
            ax.scatter(
                [row.macs],
                [row.acc],
                marker="*",
                s=160,
                color="gold",
                edgecolors="black",
                zorder=5,
                label=label("reference, retrained"),
            )
            ax.annotate(row.name, (row.macs, row.acc), textcoords="offset points", xytext=(6, 4), fontsize="small")
        else:
            ax.axvline(row.macs, color="grey", linestyle="--", linewidth=1, label=label("reference MACs"))
            ax.annotate(row.name, (row.macs, 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize="small")
