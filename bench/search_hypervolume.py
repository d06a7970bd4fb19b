"""Hypervolume of each searcher's front, as a ratio to random search's, on one supernet and one budget.

Loads a trained supernet (a finished ``nasbench train-supernet`` folder), then for each seed runs every
searcher with the same number of evaluations on the same supernet and the same validation split, and
prints the hypervolume of each front (accuracy vs MACs, reference point fixed for all: accuracy 0 and
1.1 x the largest architecture's MACs) and its ratio to random's for that seed.

    .venv/bin/python bench/search_hypervolume.py --supernet RUN_DIR --data /work/shared/data/cifar10 \
        --space tiny --evals 20 --seeds 0,1,2 [--searchers proximal,nsga2,random] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from nasbench.budget import Budget, parse_budget
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.pareto import hypervolume, pareto_front
from nasbench.runs import RunDir
from nasbench.search.evaluator import EvalSettings
from nasbench.search.orchestrate import SearchConfig, search_context, search_phase
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, train_supernet


def run_seed(args, space, dataset, trained, seed: int, out: Path) -> dict[str, float]:
    searchers = tuple(args.searchers.split(","))
    config = SearchConfig(
        space=args.space,
        data=args.data,
        budget=f"{args.evals * len(searchers)}trials",
        searchers=searchers,
        seed=seed,
        train_budget="0steps",
        proximal_targets=args.targets,
        proximal_steps=args.proximal_steps,
        concurrency=1,  # trial searchers evaluate in this process, on the same supernet
    )
    run = RunDir.create(
        {"bench": "search_hypervolume", "seed": seed, "searchers": list(searchers)}, out=out / f"seed{seed}"
    )
    with run:
        ctx = search_context(config, trained, dataset.num_classes, run)
        ctx.evaluate.settings = EvalSettings(val_fraction=TrainConfig().val_fraction, data_seed=args.train_seed)
        search_phase(run, ctx, searchers, Budget("trials", float(args.evals * len(searchers))))
        records = run.records()
    ok = records[records.status == "ok"]
    reference = {"acc": 0.0, "macs": 1.1 * count(space.largest(), dataset.num_classes).macs}
    volumes = {}
    for searcher in searchers:
        front = pareto_front(ok[ok.searcher == searcher], {"acc": "max", "macs": "min"})
        volumes[searcher] = hypervolume(
            front[["acc", "macs"]].to_numpy(float), [reference["acc"], reference["macs"]], ["max", "min"]
        )
    return volumes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", required=True, help="a finished train-supernet folder")
    ap.add_argument("--data", required=True)
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--evals", type=int, default=20, help="evaluations per searcher and seed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--searchers", default="proximal,nsga2,random")
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--proximal-steps", type=int, default=40)
    ap.add_argument("--train-seed", type=int, default=0, help="the seed the supernet was trained with")
    ap.add_argument("--out", default="results/runs/bench-hypervolume")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    dataset = load_dataset(args.data)
    stored = json.loads((Path(args.supernet) / "train_config.json").read_text())
    budget = parse_budget(stored["identity"]["budget"])
    trained = train_supernet(
        space,
        dataset,
        budget,
        args.supernet,
        seed=args.train_seed,
        resume=True,
        config=TrainConfig.from_dict(stored["identity"]["config"]),
        progress=False,
    )
    out = Path(args.out)
    rows = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        rows[seed] = run_seed(args, space, dataset, trained, seed, out)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[seed].items()), flush=True)
    searchers = args.searchers.split(",")
    print(f"\nhypervolume (acc vs MACs), ratio to random's, {args.evals} evaluations per searcher and seed")
    print(f"{'seed':<6}" + "".join(f"{s:>12}" for s in searchers))
    for seed, vols in rows.items():
        print(f"{seed:<6}" + "".join(f"{vols[s] / vols['random']:>12.3f}" for s in searchers))
    means = {s: statistics.mean(v[s] / v["random"] for v in rows.values()) for s in searchers}
    print(f"{'mean':<6}" + "".join(f"{means[s]:>12.3f}" for s in searchers))


if __name__ == "__main__":
    main()
