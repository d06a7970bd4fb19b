"""The retraining report: one row per retrained model, the rank correlation between the supernet's estimate
and the from-scratch accuracy, and how the winners compare with the baselines at equal MACs.

::

    RUN/retrain/report.csv    the table (one row per model, cheapest first)
    RUN/retrain/report.json   the table plus Kendall's tau and its p-value
    RUN/retrain/report.md     the same on a page
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from scipy.stats import kendalltau

from nasbench.atomic import write_json, write_text
from nasbench.runs.rundir import RETRAIN_DIR
from nasbench.textfmt import human_count

RESULT_FILE = "result.json"  # the same name as nasbench.retrain.train.RESULT_FILE (kept import-light here)
COLUMNS = [
    "role",
    "name",
    "arch_id",
    "test_top1",
    "supernet_acc",
    "macs",
    "params",
    "latency_ms",
    "latency_pred_ms",
    "resolution",
    "epochs",
    "steps",
    "seconds",
]


def retrain_dir(run_path: str | os.PathLike) -> Path:
    """``RUN/retrain/`` (``RunDir.retrain_dir``) for a run given by its path."""
    return Path(run_path) / RETRAIN_DIR


def read_results(run_path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished model's ``result.json`` under ``RUN/retrain/``, in folder order."""
    root = retrain_dir(run_path)
    if not root.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(root.glob(f"*/{RESULT_FILE}"))]


def report_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model with ``COLUMNS``, winners and baselines together, cheapest first."""
    rows = [{**r, "name": r.get("name") or r.get("reference") or r["arch_id"]} for r in results]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("test_top1", "supernet_acc", "latency_ms", "latency_pred_ms", "epochs", "seconds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame.sort_values(["macs", "role"], kind="stable").reset_index(drop=True)


def rank_correlation(frame: pd.DataFrame) -> dict[str, Any]:
    """Kendall's tau between supernet-estimated and from-scratch top-1 over the winners that have both
    (NaN with fewer than two, or when either side is constant)."""
    both = frame[(frame["role"] == "winner") & frame["supernet_acc"].notna() & frame["test_top1"].notna()]
    if len(both) < 2:
        return {"kendall_tau": math.nan, "kendall_p": math.nan, "winners": len(both)}
    tau, p = kendalltau(both["supernet_acc"], both["test_top1"])
    return {"kendall_tau": float(tau), "kendall_p": float(p), "winners": len(both)}


def equal_macs_comparison(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per baseline: the most accurate winner whose MACs are at most the baseline's, and the difference."""
    winners = frame[frame["role"] == "winner"]
    out = []
    for base in frame[frame["role"] == "baseline"].itertuples():
        cheaper = winners[winners["macs"] <= base.macs]
        best = cheaper.loc[cheaper["test_top1"].idxmax()] if len(cheaper) else None
        out.append(
            {
                "baseline": base.name,
                "baseline_top1": base.test_top1,
                "baseline_macs": int(base.macs),
                "winner": None if best is None else best["arch_id"],
                "winner_top1": None if best is None else float(best["test_top1"]),
                "winner_macs": None if best is None else int(best["macs"]),
            }
        )
    return out


def write_report(run_path: str | os.PathLike, *, title: str = "") -> dict[str, Any]:
    """Write report.csv, report.json and report.md from the finished results; returns the JSON report."""
    root = retrain_dir(run_path)
    root.mkdir(parents=True, exist_ok=True)
    frame = report_frame(read_results(run_path))
    report = {
        **rank_correlation(frame),
        "equal_macs": equal_macs_comparison(frame),
        "rows": json.loads(frame.to_json(orient="records")),
    }
    write_text(root / "report.csv", frame.to_csv(index=False))
    write_json(root / "report.json", report)
    write_text(root / "report.md", report_markdown(frame, report, title=title))
    return report


def report_markdown(frame: pd.DataFrame, report: dict[str, Any], *, title: str = "") -> str:
    lines = [f"# {title or 'Retraining from scratch'}", ""]
    if frame.empty:
        return "\n".join(lines + ["No model has finished retraining yet.", ""])
    first = frame.iloc[0]
    lines += [f"Every model trained from scratch with the same recipe and budget ({_budget_line(frame, first)});"]
    lines += ["test top-1 of the EMA weights on the dataset's test split, which the search never saw.", ""]
    lines += [markdown_table(display_frame(frame)), ""]
    tau, n = report["kendall_tau"], report["winners"]
    if math.isnan(tau):
        lines += [f"Kendall's tau (supernet estimate vs from scratch): not defined for {n} winner(s).", ""]
    else:
        p = report["kendall_p"]
        lines += [f"Kendall's tau (supernet estimate vs from scratch) over {n} winners: {tau:+.3f} (p = {p:.3g}).", ""]
    for c in report["equal_macs"]:
        if c["winner"] is None:
            lines.append(
                f"- {c['baseline']}: no retrained winner at or below its {human_count(c['baseline_macs'])} MACs."
            )
        else:
            delta = 100 * (c["winner_top1"] - c["baseline_top1"])
            lines.append(
                f"- at most {c['baseline']}'s {human_count(c['baseline_macs'])} MACs, the best winner "
                f"{c['winner']} ({human_count(c['winner_macs'])} MACs) scores {100 * c['winner_top1']:.2f}% vs "
                f"{100 * c['baseline_top1']:.2f}% ({delta:+.2f} points)."
            )
    return "\n".join(lines + [""])


def _budget_line(frame: pd.DataFrame, first: pd.Series) -> str:
    epochs = sorted({f"{e:g}" for e in frame["epochs"].dropna()})
    return f"{', '.join(epochs)} epochs" if epochs else f"{int(first['steps'])} steps"


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The report table as strings for people: percentages, short counts, blanks for missing values."""

    def pct(v: float) -> str:
        return "" if pd.isna(v) else f"{100 * v:.2f}%"

    def ms(v: float) -> str:
        return "" if pd.isna(v) else f"{v:.2f}"

    return pd.DataFrame(
        {
            "role": frame["role"],
            "name": frame["name"],
            "test top-1": frame["test_top1"].map(pct),
            "supernet acc": frame["supernet_acc"].map(pct),
            "MACs": frame["macs"].map(human_count),
            "params": frame["params"].map(human_count),
            "latency ms": frame["latency_ms"].fillna(frame["latency_pred_ms"]).map(ms),
            "res": frame["resolution"],
            "epochs": frame["epochs"].map(lambda v: "" if pd.isna(v) else f"{v:g}"),
            "seconds": frame["seconds"].map(lambda v: f"{v:.0f}"),
        }
    )


def markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)  # tabulate, a pandas optional dependency
