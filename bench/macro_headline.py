"""The headline at CPU scale: does `nasbench search` on NAS-Bench-Macro beat the obvious choices at equal cost?

Reads finished `nasbench search --space nas-bench-macro` runs and prints, per run and per searcher, the winner
(its feasible record of best score, or of best accuracy in a run started with --objectives acc, as it saw it)
with its TRUE accuracy and rank in the table, and the winner each signal (accuracy, score, validation loss,
NASWOT) would choose from all of the run's evaluations, beside the baselines under the run's `--max-macs`
limit: the reference network (all MBConv k3e3 at the 53.2 M limit, all k5e6 without one), the table's best,
the largest network (MACs alone: "bigger is better") and the median
network. Then the mean over runs with the same limit. The limit is nasbench's MACs (which count batch norm and
pooling); the table's FLOPs of the same networks are a little lower.

    nasbench search --space nas-bench-macro --data CIFAR10_DIR --budget 30min --max-macs 54434304 --seed 0 --out R0
    .venv/bin/python bench/macro_headline.py R0 [R1 ...]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

import nasbench
from nasbench.benchmarks.truth import load_benchmark
from nasbench.runs.outputs import true_winners


def baselines(truth, max_macs: float | None) -> dict[str, tuple[str, float]]:
    """(key, true accuracy) of the reference, best, largest and median network under the limit."""
    rows = truth.feasible(max_macs, column="macs")
    reference = "11111111" if max_macs is not None and max_macs < truth.table.loc["22222222", "macs"] else "22222222"
    largest = rows.loc[rows["macs"].idxmax()]
    median = rows["acc"].median()
    middle = rows.iloc[(rows["acc"] - median).abs().argmin()]
    best = rows.loc[rows["acc"].idxmax()]
    return {
        "reference": (reference, float(truth.table.loc[reference, "acc"])),
        "best under limit": (best["key"], float(best["acc"])),
        "largest under limit (MACs alone)": (largest["key"], float(largest["acc"])),
        "median under limit": (middle["key"], float(median)),
    }


def choosers(records) -> dict[str, float]:
    """The true accuracy of the feasible record each signal would choose from all of a run's evaluations:
    the supernet's accuracy, its validation loss, NASWOT, and the score (loss + NASWOT) where recorded."""
    ok = records[records["status"] == "ok"]
    if ok.empty:
        return {}
    extra = pd.DataFrame([json.loads(e) for e in ok["extra"]], index=ok.index)
    signals = {"acc": ok["acc"]}
    if "score" in ok and ok["score"].notna().all():
        signals["score"] = ok["score"]
    if "val_loss" in extra:
        signals["val loss"] = -extra["val_loss"]
    if "naswot" in extra:
        signals["naswot"] = extra["naswot"]
    return {name: float(extra.loc[values.idxmax(), "true_acc"]) for name, values in signals.items()}


def spend_line(path, records) -> str:
    """What the run's time budget bought: supernet steps and seconds, calibration and search seconds, and
    the evaluations (over-limit proposals recorded without one are counted apart)."""
    folder = Path(path)
    if not (folder / "supernet" / "train_result.json").is_file():  # a copy of the run's records only
        return "(no supernet record in this folder)"
    trained = json.loads((folder / "supernet" / "train_result.json").read_text())
    state = json.loads((folder / "search_state.json").read_text())
    skipped = records["error"].str.endswith("not evaluated").sum()
    evaluated = len(records) - skipped
    return (
        f"supernet {trained['steps']} steps in {trained['spent']:.0f} s; calibration"
        f" {state.get('ranker', {}).get('seconds', 0):.0f} s; search {sum(state['spent'].values()):.0f} s:"
        f" {evaluated} evaluations, {skipped} over the limit not evaluated"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="finished search run folders on nas-bench-macro")
    args = ap.parse_args()
    truth = load_benchmark("nas-bench-macro")
    by_limit: dict[float | None, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in args.runs:
        run = nasbench.load_run(path)
        limit = run.config.get("max_macs")
        quality = run.objectives[0]
        winners = true_winners(run.records, quality)
        budget = run.config.get("budget")
        print(f"\n{path}: seed {run.config.get('seed')}, budget {budget}, max MACs {limit or 'none'}, by {quality}")
        print(f"  {spend_line(path, run.records)}")
        under = truth.feasible(limit, column="macs").set_index("key")["acc"].rank(ascending=False, method="min")
        for _, w in winners.iterrows():
            print(f"  {w['searcher']:>9}: {w['bench_key']} seen {w[quality]:.4f}  true {w['true_acc']:.2f}%"
                  f"  rank {w['true_rank']:4d} ({int(under[w['bench_key']])} of {len(under)} under the limit)"
                  f"  ({w['feasible']} feasible evaluated)")  # fmt: skip
            by_limit[limit][w["searcher"]].append(float(w["true_acc"]))
        for name, acc in choosers(run.records).items():  # the same evaluated pool, chosen by each signal
            print(f"  {'all, chosen by ' + name:>26}: true {acc:.2f}%")
            by_limit[limit]["all, chosen by " + name].append(acc)
    for limit, searchers in by_limit.items():
        feasible = len(truth.feasible(limit, column="macs"))
        print(f"\nmax MACs {limit or 'none'} ({feasible} of {len(truth.table)} networks feasible):")
        for name, (key, acc) in baselines(truth, limit).items():
            print(f"  {name:>34}: {key}  {acc:.2f}%")
        for name, accs in searchers.items():
            spread = f" +- {np.std(accs, ddof=1):.2f}" if len(accs) > 1 else ""
            mean = float(np.mean(accs)) if accs else math.nan
            print(f"  {'winner of ' + name:>34}: mean {mean:.2f}%{spread} over {len(accs)} runs")


if __name__ == "__main__":
    main()
