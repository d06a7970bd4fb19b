"""How high can a winner under a MACs limit score on NAS-Bench-Macro at all? The table's own noise, measured.

Every network in the table was trained three times. Suppose a ranker knew one whole 50-epoch training of
every network under the limit, and chose the best by it: how good is its choice on the other two trainings
(what a fresh training of the chosen network would give)? That is the most any search can expect, since no
supernet ranks better than a full training does. Choosing and scoring by the same run (or by the mean of
all three) counts the lucky noise that made the choice, and is shown beside it for contrast.

Prints, for each limit (nasbench's MACs, as ``--max-macs`` counts them): how many networks are feasible and
how many score at least the target, then per run k: the network chosen by run k, its score by run k, by the
other two runs, and by the three-run mean; then the mean over k of "by the other two" (the ceiling) and of
the top-5 by run k (a ranker good enough to put the best in its top 5).

    .venv/bin/python bench/macro_ceiling.py [--target 92.2]
"""

from __future__ import annotations

import argparse

import numpy as np

import nasbench

LIMITS = {"53.2 M (all k3e3)": "11111111", "whole space": "22222222"}


def ceiling(runs: np.ndarray, keys: list[str]) -> tuple[list[str], float, float]:
    """Lines per run k, the mean held-out accuracy of run k's choice, and of run k's top 5."""
    lines, best, top5 = [], [], []
    for k in range(runs.shape[1]):
        others = np.delete(runs, k, axis=1).mean(axis=1)
        order = np.argsort(-runs[:, k], kind="stable")
        i = order[0]
        best.append(others[i])
        top5.append(others[order[:5]].mean())
        lines.append(
            f"  chosen by run {k + 1}: {keys[i]}  run {k + 1} {runs[i, k]:.2f}  other two {others[i]:.2f}"
            f"  three-run mean {runs[i].mean():.2f}  (its top 5 on the other two: {top5[-1]:.2f})"
        )
    return lines, float(np.mean(best)), float(np.mean(top5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=92.2, help="the winner's target accuracy (percent)")
    args = ap.parse_args()
    truth = nasbench.load_benchmark("nas-bench-macro")
    table = truth.table
    for name, reference in LIMITS.items():
        limit = float(table.loc[reference, "macs"])
        rows = truth.feasible(limit, column="macs")
        runs = np.array(rows["acc_runs"].tolist(), dtype=float)
        print(f"\nlimit {name}: max MACs {limit:.0f}; {len(rows)} of {len(table)} networks feasible")
        print(f"  reference {reference}: {table.loc[reference, 'acc']:.2f}; best three-run mean "
              f"{rows['acc'].max():.2f} ({rows['acc'].idxmax()}); networks at >= {args.target}: "
              f"{int((rows['acc'] >= args.target).sum())}")  # fmt: skip
        lines, mean_best, mean_top5 = ceiling(runs, list(rows.index))
        print("\n".join(lines))
        print(f"  ceiling (mean over the three runs of the choice's accuracy on the other two): {mean_best:.2f}")
        print(f"  a ranker whose choice is one of run k's top 5, on average: {mean_top5:.2f}")


if __name__ == "__main__":
    main()
