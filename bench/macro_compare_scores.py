"""Two rank reports of one supernet, compared on the networks both scored: what a setting changes.

``nasbench benchmark rank`` with two settings (e.g. ``--val-images 2000`` and ``5000``) writes two
``scores.csv``; this prints the rank report of the supernet's accuracy and loss from each, on the networks
both hold (a report stopped early still compares on what it scored).

    .venv/bin/python bench/macro_compare_scores.py RANK2000/scores.csv RANK5000/scores.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nasbench.benchmarks.ranking import format_report
from nasbench.benchmarks.report import read_scores, report_frame
from nasbench.benchmarks.truth import load_benchmark

COLUMNS = ["supernet_acc", "supernet_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores", type=Path, nargs="+", help="scores.csv files of rank reports")
    ap.add_argument("--benchmark", default="nas-bench-macro")
    args = ap.parse_args()
    truth = load_benchmark(args.benchmark)
    frames = []
    for path in args.scores:
        if not path.is_file():
            sys.exit(f"{path}: no such scores file")
        frames.append(read_scores(path))
    keys = [k for k in frames[0].index if all(k in f.index for f in frames[1:])]
    if len(keys) < 10:
        sys.exit(f"only {len(keys)} networks are scored in every file: too few to compare")
    print(f"{len(keys)} networks scored in all {len(frames)} files")
    for path, frame in zip(args.scores, frames, strict=True):
        print(f"\n{path}:\n{format_report(report_frame(truth, frame.loc[keys, COLUMNS], seed=0))}")


if __name__ == "__main__":
    main()
