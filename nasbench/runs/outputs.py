"""What a run shows: its Pareto front (CSV), a plot of it (PNG) and a one-page summary (Markdown).

Functions of a run's records (a DataFrame, ``records.SCHEMA``) and the paths to write: they know nothing of
the run folder (``RunDir.write_outputs`` names the files). The objectives and where a record holds each
come from the one table, ``nasbench.objectives.table`` (``latency``: measured where a record has it, else
predicted). Fronts and hypervolumes come from the pure functions of ``nasbench.pareto``; this module only
selects, formats and draws.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nasbench import atomic
from nasbench.objectives.table import OBJECTIVES, QUALITY, parse_objectives
from nasbench.pareto import hypervolume, pareto_front
from nasbench.status import STATUSES, Status
from nasbench.textfmt import human_count, split_list

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The corner normalized hypervolume uses: accuracy (the one maximised objective, a fraction) 1, costs 0.
IDEAL = {name: 1.0 if o.maximise else 0.0 for name, o in OBJECTIVES.items()}
REFERENCE_MARGIN = 1.1  # default reference: costs at 1.1 x the largest seen, so the costliest point counts
FRONT_COLUMNS = ["arch_id", "searcher", "trial", "seed", "acc", "score", "macs", "params", "latency"]
FRONT_COLUMNS += ["latency_ms", "latency_pred_ms", "resolution", "arch"]
LABELS = {name: o.label for name, o in OBJECTIVES.items()}
INFEASIBLE_LABEL = "infeasible (over a limit)"


def with_objectives(records: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``records`` with one column per objective of the table, each its record fields' first
    present value in the table's order (``latency``: measured, else predicted; NaN if neither)."""
    out = records.copy()
    for name, objective in OBJECTIVES.items():
        first, *rest = objective.fields
        column = out[first]
        for field in rest:
            column = column.fillna(out[field])
        out[name] = column
    return out


def objective_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The ok records, with a column per objective (see ``with_objectives``)."""
    return with_objectives(records[records["status"] == Status.OK])


def run_front(records: pd.DataFrame, objectives: str | Sequence[str]) -> pd.DataFrame:
    """The Pareto front of a run's ok records (records without a value for an objective are left out)."""
    return pareto_front(objective_frame(records), parse_objectives(objectives))


def default_reference(ok: pd.DataFrame, objectives: str | Sequence[str]) -> dict[str, float]:
    """Accuracy 0; each cost at ``REFERENCE_MARGIN`` x its largest value among ``ok``, so that every
    evaluated point adds to the hypervolume. Fixed per run, so the searchers' fronts compare."""
    ref = {}
    for name, sense in parse_objectives(objectives).items():
        largest = ok[name].max() if len(ok) else math.nan
        ref[name] = 0.0 if sense == "max" else float(REFERENCE_MARGIN * largest)
    return ref


def hypervolume_table(
    ok: pd.DataFrame, objectives: str | Sequence[str], reference: Mapping[str, float]
) -> pd.DataFrame:
    """Per searcher (and ``all``): front size, hypervolume, and hypervolume divided by the volume of the box
    between the reference point and the ideal point (acc 1, costs 0), which lies in [0, 1]."""
    obj = parse_objectives(objectives)
    ref = [float(reference[name]) for name in obj]
    box = float(np.prod([abs(r - IDEAL[name]) for name, r in zip(obj, ref, strict=True)]))
    rows = []
    usable = not any(math.isnan(r) for r in ref)  # e.g. no latency figures at all
    groups = [(s, ok[ok["searcher"] == s]) for s in sorted(ok["searcher"].unique())] + [("all", ok)]
    for searcher, group in groups:
        front = pareto_front(group, obj)
        hv = hypervolume(front[list(obj)].to_numpy(dtype=float), ref, list(obj.values())) if usable else math.nan
        rows.append(
            {"searcher": searcher, "front": len(front), "hypervolume": hv, "normalized": hv / box if box else math.nan}
        )
    return pd.DataFrame(rows, columns=["searcher", "front", "hypervolume", "normalized"])


# --- files --------------------------------------------------------------------------------------------


def write_outputs(
    records: pd.DataFrame,
    paths: Mapping[str, Path],
    *,
    run_id: str,
    config: Mapping[str, Any],
    objectives: str | Sequence[str],
    budget: Mapping[str, Any] | None = None,
    reference: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """The front of ``records`` to ``paths["pareto_csv"]``, its plot to ``paths["pareto_png"]`` and the run's
    summary to ``paths["summary"]``, each written atomically; returns those three paths by name.

    ``budget`` is shown in the summary as given; ``reference`` is the hypervolume reference point
    (default: ``default_reference``); ``notes`` are lines the summary shows under "Notes"."""
    obj = parse_objectives(objectives)
    ok = objective_frame(records)
    front = run_front(records, obj)
    reference = dict(reference) if reference is not None else default_reference(ok, obj)
    written = {key: Path(paths[key]) for key in ("pareto_csv", "pareto_png", "summary")}
    atomic.write_text(written["pareto_csv"], front[FRONT_COLUMNS].to_csv(index=False))
    plot_fronts(records, written["pareto_png"], title=f"run {run_id}", quality=next(iter(obj)))
    atomic.write_text(
        written["summary"], summary_markdown(run_id, config, records, obj, budget or {}, reference, notes, front)
    )
    return written


def plot_fronts(records: pd.DataFrame, path: str | os.PathLike, title: str = "", quality: str = "acc") -> Path:
    """``fronts_figure`` of ``records`` as a PNG at ``path``, written atomically."""
    fig = fronts_figure(records, title, quality)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)


def fronts_figure(records: pd.DataFrame, title: str = "", quality: str = "acc") -> Figure:
    """``quality`` (the run's maximised objective: accuracy, or the ranker's score) vs MACs (log scale), and
    vs latency when the run has latency figures: every ok
    record faint, one colour per searcher, each panel's own front bold and joined as a staircase.
    Infeasible records (over a ``--max-*`` limit) are grey crosses and never on a front: at the accuracy
    measured before the limit was checked (``extra["acc_measured"]``), else along the panel's bottom edge."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and touches no pyplot state

    ok = objective_frame(records)
    infeasible = infeasible_frame(records)
    panels = ["macs"] + (["latency"] if ok["latency"].notna().any() else [])
    fig = Figure(figsize=(6.4 * len(panels), 4.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    searchers = sorted(records["searcher"].unique())
    colours = {s: f"C{i % 10}" for i, s in enumerate(searchers)}
    for ax, cost in zip(axes, panels, strict=True):
        _draw_infeasible(ax, infeasible, cost, quality)
        _draw_panel(ax, ok, cost, colours, quality)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def infeasible_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The infeasible records with a column per objective; ``acc`` and ``score`` are those measured before
    the record was found over a limit (``extra["acc_measured"]``...), NaN where none was measured."""
    out = with_objectives(records[records["status"] == Status.INFEASIBLE])
    for quality in QUALITY:
        out[quality] = out["extra"].map(lambda e, q=quality: _measured(e, q)).astype(float)
    return out


def _measured(extra: str, quality: str) -> float:
    try:
        value = json.loads(extra or "{}").get(f"{quality}_measured")
        return math.nan if value is None else float(value)
    except (ValueError, TypeError, AttributeError):  # not JSON, not an object, not a number
        return math.nan


def _draw_infeasible(ax: Axes, infeasible: pd.DataFrame, cost: str, quality: str) -> None:
    data = infeasible[infeasible[cost].notna()]
    style = {"marker": "x", "s": 18, "color": "grey", "alpha": 0.7, "linewidths": 1}
    label: str | None = INFEASIBLE_LABEL
    measured, unmeasured = data[data[quality].notna()], data[data[quality].isna()]
    if len(measured):
        ax.scatter(measured[cost], measured[quality], label=label, **style)
        label = None
    if len(unmeasured):  # y in axes coordinates: at the bottom edge, whatever the accuracies shown
        ax.scatter(unmeasured[cost], [0.02] * len(unmeasured), transform=ax.get_xaxis_transform(), label=label, **style)


def _draw_panel(ax: Axes, ok: pd.DataFrame, cost: str, colours: dict[str, str], quality: str) -> None:
    ax.set_xlabel("MACs (log scale)" if cost == "macs" else "latency, ms (measured, else predicted)")
    ax.set_ylabel("validation top-1 accuracy" if quality == "acc" else "ranker score (supernet loss + NASWOT)")
    ax.grid(True, alpha=0.3)
    data = ok[ok[cost].notna() & ok[quality].notna()]
    if data.empty:
        ax.text(0.5, 0.5, "no successful evaluations yet", ha="center", va="center", transform=ax.transAxes)
        return
    if cost == "macs":
        ax.set_xscale("log")
    front = pareto_front(data, parse_objectives([quality, cost]))
    for searcher, colour in colours.items():
        mine = data[data["searcher"] == searcher]
        ax.scatter(mine[cost], mine[quality], s=12, alpha=0.3, color=colour, label=searcher)
        on_front = front[front["searcher"] == searcher]
        ax.scatter(on_front[cost], on_front[quality], s=40, color=colour, edgecolors="black", zorder=3)
    ax.step(front[cost], front[quality], where="post", color="black", linewidth=1.2, label="Pareto front")


# --- summary ------------------------------------------------------------------------------------------


def summary_markdown(
    run_id: str,
    config: Mapping[str, Any],
    records: pd.DataFrame,
    objectives: Mapping[str, str],
    budget: Mapping[str, Any],
    reference: Mapping[str, float],
    notes: Sequence[str] = (),
    front: pd.DataFrame | None = None,
) -> str:
    """The run on one page: what was searched, how the budget went, the front (``run_front``'s, given by
    ``write_outputs``, which wrote it), and each searcher's hypervolume against the stated reference point."""
    ok = objective_frame(records)
    front = run_front(records, objectives) if front is None else front
    searchers = config.get("searchers") or sorted(records["searcher"].unique())
    if isinstance(searchers, str):
        searchers = split_list(searchers)
    arrows = ", ".join(f"{LABELS[o]} {'↑' if s == 'max' else '↓'}" for o, s in objectives.items())
    lines = [f"# Search run {run_id}", ""]
    lines += [f"- space: {_describe(config.get('space', '?'))}", f"- data: {_describe(config.get('data', '?'))}"]
    lines += [f"- searchers: {', '.join(map(str, searchers))}", f"- objectives: {arrows}", ""]
    lines += ["## Budget", ""] + (_bullets(budget) or ["- (not given)"]) + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    lines += ["## Evaluations", "", _markdown_table(_status_counts(records)), ""]
    lines += [f"## Pareto front ({arrows})", ""]
    if front.empty:
        lines += ["No successful evaluations, so no front.", ""]
    else:
        lines += [f"{len(front)} architectures; `nasbench export {run_id} --arch ID` exports one.", ""]
        lines += [_markdown_table(_front_display(front, objectives)), ""]
    quality = next(iter(objectives))
    winners = true_winners(records, quality)
    if not winners.empty:
        lines += [
            "## Ground truth",
            "",
            f"Each searcher's winner (its feasible record of best {quality}, as it saw it)",
        ]
        lines += ["beside its true accuracy and rank in the benchmark's table (1 = best).", ""]
        lines += [_markdown_table(_winners_display(winners)), ""]
    ref_text = ", ".join(f"{LABELS[o]} = {_fmt_value(o, reference[o])}" for o in objectives)
    lines += ["## Hypervolume", "", f"Reference point: {ref_text}. Normalized: hypervolume divided by the"]
    lines += [f"volume of the box between the reference point and the ideal one ({quality} 1, costs 0).", ""]
    if not ok.empty:
        table = hypervolume_table(ok, objectives, reference)
        table["hypervolume"] = table["hypervolume"].map(lambda v: f"{v:.4g}")
        table["normalized"] = table["normalized"].map(lambda v: f"{v:.4f}")
        lines += [_markdown_table(table), ""]
    return "\n".join(lines)


def true_winners(records: pd.DataFrame, quality: str = "acc") -> pd.DataFrame:
    """Per searcher (and ``all``), the ok record with the best ``quality`` (the run's maximised objective)
    the searcher saw, with the true accuracy and rank a benchmark space records in ``extra``; empty when the
    run has no ground truth."""
    ok = records[(records["status"] == Status.OK) & records[quality].notna()]
    if ok.empty:
        return pd.DataFrame()
    truth = pd.DataFrame([json.loads(e) if isinstance(e, str) else dict(e or {}) for e in ok["extra"]], index=ok.index)
    if "true_acc" not in truth.columns:
        return pd.DataFrame()
    ok = ok.assign(true_acc=truth["true_acc"], true_rank=truth["true_rank"], bench_key=truth["bench_key"])
    rows = []
    for searcher, group in [*ok.groupby("searcher", sort=False), ("all", ok)]:
        best = group.loc[group[quality].idxmax()]
        rows.append({"searcher": searcher, "feasible": len(group), **best[["arch_id", "bench_key", "acc", "score"]]})
        rows[-1].update(true_acc=best["true_acc"], true_rank=int(best["true_rank"]), best_true=group["true_acc"].max())
    return pd.DataFrame(rows)


def _winners_display(winners: pd.DataFrame) -> pd.DataFrame:
    shown = winners[["searcher", "feasible", "arch_id", "bench_key"]].rename(columns={"arch_id": "arch id"})
    shown["acc seen"] = winners["acc"].map(lambda v: f"{v:.4f}")
    if winners["score"].notna().any():
        shown["score seen"] = winners["score"].map(lambda v: f"{v:.4f}")
    shown["true acc %"] = winners["true_acc"].map(lambda v: f"{v:.2f}")
    shown["true rank"] = winners["true_rank"]
    shown["best true acc evaluated %"] = winners["best_true"].map(lambda v: f"{v:.2f}")
    return shown


def _status_counts(records: pd.DataFrame) -> pd.DataFrame:
    counts = pd.crosstab(records["searcher"], records["status"]).reindex(columns=list(STATUSES))
    counts = counts.fillna(0).astype(int)
    counts.loc["all"] = counts.sum()
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index().rename(columns={"index": "searcher"})


def _front_display(front: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    shown = pd.DataFrame({"arch id": front["arch_id"], "searcher": front["searcher"], "trial": front["trial"]})
    if "score" in objectives or front["score"].notna().any():
        shown["score"] = front["score"].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    shown["acc"] = front["acc"].map(lambda v: f"{v:.4f}")
    shown["MACs"] = front["macs"].map(human_count)
    shown["params"] = front["params"].map(human_count)
    if "latency" in objectives or front["latency"].notna().any():
        shown["latency ms"] = front["latency"].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    shown["arch"] = front["arch"].map(lambda a: f"`{a}`")
    return shown


def _markdown_table(df: pd.DataFrame) -> str:
    # Hand-written: DataFrame.to_markdown needs tabulate, which nasbench does not depend on.
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _bullets(data: Mapping[str, Any], indent: str = "") -> list[str]:
    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}- {key}:"] + _bullets(value, indent + "  ")
        else:
            lines.append(f"{indent}- {key}: {value}")
    return lines


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        name = value.get("name", "?")
        rest = ", ".join(f"{k} {v}" for k, v in value.items() if k != "name" and not isinstance(v, (dict, list)))
        return f"{name} ({rest})" if rest else str(name)
    return str(value)


def _fmt_value(objective: str, value: float) -> str:
    if objective in ("macs", "params"):
        return human_count(value)
    return f"{value:g}"
