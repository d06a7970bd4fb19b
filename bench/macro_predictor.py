"""A learned predictor against the score: does fitting the supernet's signal, NASWOT and FLOPs to ground truth
rank NAS-Bench-Macro better than the score's fixed equal weights?

Issue 18's last lever: "combining the supernet's signal with FLOPs or a zero-cost proxy in a learned
predictor". The score (``nasbench.search.ranker``) already adds the supernet's loss and NASWOT with weights
fixed in advance, on spreads measured on the calibration draw; it uses no ground truth. A learned predictor
needs some: on a user's own data, each training label is a network trained in full. This bench reads one rank
report (``nasbench benchmark rank``: ``scores.csv`` and ``calibration/scores.csv``) and ranks the report's
networks with:

- ``score``: the ranker a search chooses by, as the report computes it;
- ``score+flops``: the score's standardised sum plus log-FLOPs standardised the same way, equal weights, still
  no ground truth;
- ``ridge@calibration``: a ridge regression of true accuracy on the three standardised features, fitted on the
  calibration draw's networks (what labelling the search's own calibration would cost: that many full
  trainings), applied to the report's networks that are not among them;
- ``ridge@cv``: the same regression cross-fitted on the report's own networks (each predicted by a fit on the
  other folds, ``--folds``): a predictor given hundreds of labels, an upper bound for this family.

All are judged on the same networks (the report's, less any the calibration labelled) with the rank report's
statistics.

    .venv/bin/python bench/macro_predictor.py results/benchmarks/macro/supernet-60min-uniform
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from nasbench.benchmarks.ranking import format_report
from nasbench.benchmarks.report import apply_ranker, read_scores, report_frame
from nasbench.benchmarks.truth import load_benchmark
from nasbench.search.ranker import CALIBRATION, Ranker, calibration_archs

FEATURES = ["z_loss", "z_naswot", "z_flops"]


def standardised(frame: pd.DataFrame, flops: pd.Series, ranker: Ranker, ref_flops: pd.Series) -> pd.DataFrame:
    """The three features, signed higher = better: loss and NASWOT standardised as the score standardises
    them (``ranker``, fitted on the calibration draw), log FLOPs by the calibration draw's mean and spread."""
    log_flops = np.log(ref_flops)
    return pd.DataFrame(
        {
            "z_loss": (ranker.loss_mean - frame["supernet_loss"]) / ranker.loss_std,
            "z_naswot": (frame["naswot"] - ranker.naswot_mean) / ranker.naswot_std,
            "z_flops": (np.log(flops) - log_flops.mean()) / log_flops.std(),
        },
        index=frame.index,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a rank report folder (scores.csv and calibration/scores.csv)")
    ap.add_argument("--benchmark", default="nas-bench-macro")
    ap.add_argument("--alpha", type=float, default=1.0, help="ridge penalty on the standardised features")
    ap.add_argument("--folds", type=int, default=5, help="folds of the cross-fitted predictor")
    ap.add_argument("--seed", type=int, default=0, help="the report's seed: its calibration draw and bootstrap")
    args = ap.parse_args()
    if args.alpha < 0 or args.folds < 2:
        sys.exit("--alpha must be >= 0 and --folds >= 2")
    scores = read_scores(args.report / "scores.csv")
    calibration = read_scores(args.report / "calibration" / "scores.csv")
    if len(scores) < 10 or len(calibration) < 3:
        sys.exit(f"{args.report}: not a finished rank report with its calibration (benchmark rank writes both)")
    truth = load_benchmark(args.benchmark)
    table = truth.table
    draw = {truth.to_key(a) for a in calibration_archs(truth.space, CALIBRATION, args.seed)}  # as the report drew
    if not draw <= set(calibration.index):
        sys.exit(f"{args.report}/calibration lacks networks of seed {args.seed}'s calibration draw: another --seed?")
    calibration = calibration.loc[sorted(draw)]
    scored, ranker = apply_ranker(scores, calibration, args.seed)
    keys = [k for k in scores.index if k not in calibration.index]  # the labels of ridge@calibration are not judged
    cal_flops = table.loc[calibration.index, "flops"]
    x = standardised(scores.loc[keys], table.loc[keys, "flops"], ranker, cal_flops)
    x_cal = standardised(calibration, cal_flops, ranker, cal_flops)
    acc, acc_cal = table.loc[keys, "acc"].to_numpy(float), table.loc[calibration.index, "acc"].to_numpy(float)

    on_calibration = Ridge(alpha=args.alpha).fit(x_cal[FEATURES], acc_cal)
    cross = np.empty(len(keys))
    for train, test in KFold(args.folds, shuffle=True, random_state=args.seed).split(x):
        fit = Ridge(alpha=args.alpha).fit(x.iloc[train][FEATURES], acc[train])
        cross[test] = fit.predict(x.iloc[test][FEATURES])
    rankers = pd.DataFrame(
        {
            "score": scored.loc[keys, "score"],
            "score+flops": x["z_loss"] + x["z_naswot"] + x["z_flops"],
            "ridge@calibration": on_calibration.predict(x[FEATURES]),
            "ridge@cv": cross,
        },
        index=pd.Index(keys, name="key"),
    )
    report = report_frame(truth, rankers, seed=args.seed)
    weights = ", ".join(f"{f} {w:+.3f}" for f, w in zip(FEATURES, on_calibration.coef_, strict=True))
    labelled = len(scores) - len(keys)
    print(f"{args.report}: {len(keys)} networks judged ({labelled} of the report's were calibration labels)")
    print(f"ridge@calibration: {len(calibration)} labelled networks, alpha {args.alpha}, weights {weights}")
    print(f"ridge@cv: {args.folds} folds of the judged networks, each predicted by a fit on the others\n")
    print(format_report(report))


if __name__ == "__main__":
    main()
