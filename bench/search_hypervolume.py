"""Searchers compared on equal terms: the same device-seconds each, everything charged, several seeds.

Loads a trained supernet (a finished ``nasbench train-supernet`` folder, or a search run's ``supernet/``),
then for each seed runs every searcher on the same supernet and validation split with the same time
budget: its clock runs while it does anything (the proximal searcher's weight and architecture steps
included); trial searchers evaluate in this process, so no Ray start-up enters any clock. Each front is
scored in (accuracy, log10 MACs) against ONE fixed reference point for all searchers and seeds (accuracy
0, log10 of 1.1 x the space's largest MACs), normalised by the box up to (accuracy 1, log10 of the
smallest's MACs). Prints per seed and the mean and spread over seeds, and each mean as a ratio to random
search's.

    .venv/bin/python bench/search_hypervolume.py --supernet RUN/supernet --data digits --space tiny \
        --seconds 60 --seeds 0,1,2 [--searchers proximal,nsga2,tpe,random] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
from pathlib import Path

import numpy as np
import torch

from nasbench.budget import WALL_TIME, Budget, parse_budget
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.pareto import hypervolume, pareto_front
from nasbench.pipeline.config import SearchConfig
from nasbench.pipeline.run import search_context, search_phase
from nasbench.runs import RunDir
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, train_supernet


def log_hypervolume(records, reference_log_macs: float, ideal_log_macs: float) -> tuple[float, int]:
    """Normalised hypervolume of the ok records' (acc, log10 MACs) front, and the front's size."""
    ok = records[records.status == "ok"].assign(log_macs=lambda d: np.log10(d.macs.astype(float)))
    front = pareto_front(ok, {"acc": "max", "log_macs": "min"})
    if front.empty:
        return 0.0, 0
    points = front[["acc", "log_macs"]].to_numpy(float)
    volume = hypervolume(points, [0.0, reference_log_macs], ["max", "min"])
    return volume / (reference_log_macs - ideal_log_macs), len(front)


def run_seed(args, trained, seed: int, reference: float, ideal: float) -> dict[str, tuple[float, int, int]]:
    searchers = tuple(args.searchers.split(","))
    config = SearchConfig(
        space=args.space, data=args.data, budget="1min", searchers=searchers, seed=seed,
        proximal_targets=args.targets, proximal_steps=args.proximal_steps, concurrency=1,
    )  # fmt: skip
    out = {}
    with RunDir.create({"bench": "search_hypervolume", "seed": seed}, out=Path(args.out) / f"seed{seed}") as run:
        ctx = search_context(config, trained, run)  # evaluated with the trained supernet's own record's settings
        built = {name: config.searcher(name) for name in searchers}
        search_phase(run, ctx, built, Budget(WALL_TIME, args.seconds * len(searchers)))
        records = run.records()
    for name in searchers:
        mine = records[records.searcher == name]
        volume, front = log_hypervolume(mine, reference, ideal)
        out[name] = (volume, front, len(mine))
        print(f"seed {seed} {name:>9}: hypervolume {volume:.4f}, front {front}, {len(mine)} evaluations", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", required=True, help="a finished train-supernet folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--seconds", type=float, default=60.0, help="device-seconds per searcher and seed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--searchers", default="proximal,nsga2,tpe,random")
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--proximal-steps", type=int, default=40)
    ap.add_argument("--train-seed", type=int, default=0, help="the seed the supernet was trained with")
    ap.add_argument("--out", default="results/runs/bench-hypervolume")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space, dataset = load_space(args.space), load_dataset(args.data)
    stored = json.loads((Path(args.supernet) / "train_config.json").read_text())["identity"]
    trained = train_supernet(space, dataset, parse_budget(stored["budget"]), args.supernet, seed=args.train_seed,
                             resume=True, config=TrainConfig.from_dict(stored["config"]), progress=False)  # fmt: skip
    reference = math.log10(1.1 * count(space.largest(), dataset.num_classes).macs)
    ideal = math.log10(count(space.smallest(), dataset.num_classes).macs)
    rows = {int(s): run_seed(args, trained, int(s), reference, ideal)
            for s in args.seeds.split(",")}  # fmt: skip
    searchers = args.searchers.split(",")
    random_mean = statistics.mean(r["random"][0] for r in rows.values()) if "random" in searchers else math.nan
    print(f"\nnormalised hypervolume in (acc, log10 MACs), reference (0, {reference:.3f}), {args.seconds:g} s each, "
          f"{len(rows)} seeds; {platform.processor() or platform.machine()}, torch {torch.__version__}")  # fmt: skip
    print(f"{'searcher':>9} {'mean':>8} {'stdev':>8} {'vs random':>10} {'evals':>6}")
    for name in searchers:
        volumes = [r[name][0] for r in rows.values()]
        spread = statistics.stdev(volumes) if len(volumes) > 1 else 0.0
        evals = statistics.mean(r[name][2] for r in rows.values())
        ratio = statistics.mean(volumes) / random_mean if random_mean else math.nan
        print(f"{name:>9} {statistics.mean(volumes):8.4f} {spread:8.4f} {ratio:10.3f} {evals:6.1f}")


if __name__ == "__main__":
    main()
