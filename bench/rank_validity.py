"""Does the supernet rank architectures? Kendall tau between inherited-weight and from-scratch accuracy.

Picks ``--archs`` architectures spread over the space's MACs range (quantiles of log MACs among 500 seeded
samples), evaluates each with the trained supernet's weights (BN recalibrated, the search's validation
split), trains each from scratch for the same ``--epochs`` with one recipe (``nasbench.retrain``) and
tests it on the dataset's test split. Prints Kendall tau with a bootstrap 90% interval (archs resampled)
between supernet accuracy and from-scratch accuracy, next to the tau of MACs alone ("bigger is better")
against the same from-scratch accuracy. The supernet earns its keep only where it beats MACs alone.
Finished models are skipped when the command is repeated (each trains into ``--out``).

    .venv/bin/python bench/rank_validity.py --supernet RUN/supernet --data ../shared/data/cifar10 \
        --archs 10 --epochs 2 --train-images 10000 --out results/runs/rank-validity
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from nasbench.budget import EPOCHS, Budget, parse_budget
from nasbench.counting import count
from nasbench.data import DeviceData, load_dataset
from nasbench.retrain import Job, RetrainConfig, retrain_model
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, evaluate, train_supernet


def spread_archs(space, n: int, num_classes: int, seed: int = 0):
    """``n`` archs at evenly spaced quantiles of log MACs among 500 seeded samples."""
    pool = sorted({a.id: a for a in (space.sample(seed * 100_000 + i) for i in range(500))}.values(),
                  key=lambda a: count(a, num_classes).macs)  # fmt: skip
    return [pool[int((i + 0.5) / n * len(pool))] for i in range(n)]


def bootstrap_tau(x, y, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The 5th and 95th percentiles of Kendall tau over resampled pairs (NaN resamples dropped)."""
    rng = np.random.default_rng(seed)
    x, y, taus = np.asarray(x), np.asarray(y), []
    for _ in range(rounds):
        i = rng.integers(0, len(x), len(x))
        tau = kendalltau(x[i], y[i]).statistic
        if math.isfinite(tau):
            taus.append(tau)
    return float(np.percentile(taus, 5)), float(np.percentile(taus, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", required=True, help="a finished train-supernet folder (or a search run's supernet/)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=10000, help="from-scratch training subset (CPU time)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/runs/rank-validity")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    stored = json.loads((Path(args.supernet) / "train_config.json").read_text())
    identity = stored["identity"]
    space = load_space(stored["origin"].get("space") or identity["space"]["name"])
    dataset = load_dataset(args.data)
    config = TrainConfig.from_dict(identity["config"])
    trained = train_supernet(space, dataset, parse_budget(identity["budget"]), args.supernet, config=config,
                             seed=identity["seed"], resume=True, progress=False)  # fmt: skip
    archs = spread_archs(space, args.archs, dataset.num_classes)
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(len(dataset.train_y), min(args.train_images, len(dataset.train_y)), replace=False))
    stats = {"mean": dataset.mean, "std": dataset.std, "device": "cpu"}
    train = DeviceData(dataset.train_x[subset], dataset.train_y[subset], **stats)
    test = DeviceData(dataset.test_x, dataset.test_y, **stats)
    rows = []
    for i, arch in enumerate(archs):
        inherited = evaluate(trained.supernet, arch, trained.train, trained.val, bn_batches=config.bn_batches,
                             batch_size=config.batch_size, seed=identity["seed"]).top1  # fmt: skip
        job = Job(arch_json=arch.to_json(), arch_id=arch.id, role="winner", supernet_acc=inherited)
        result = retrain_model(job, train, test, dataset.num_classes, Budget(EPOCHS, args.epochs),
                               Path(args.out) / arch.id, config=RetrainConfig(), seed=0)  # fmt: skip
        rows.append((arch.id, count(arch, dataset.num_classes).macs, inherited, result["test_top1"]))
        print(f"{i + 1:2d}/{len(archs)} {arch.id} MACs {rows[-1][1] / 1e6:7.2f} M  supernet {inherited:.4f}  "
              f"scratch {result['test_top1']:.4f}", flush=True)  # fmt: skip
    _, macs, sup, scratch = map(list, zip(*rows, strict=True))
    for name, x in (("supernet accuracy", sup), ("MACs alone", macs)):
        low, high = bootstrap_tau(x, scratch)
        tau = kendalltau(x, scratch).statistic
        print(f"Kendall tau, {name} vs from-scratch accuracy: {tau:+.3f}  (90% bootstrap {low:+.3f} .. {high:+.3f})")
    machine = platform.processor() or platform.machine()
    print(
        f"{len(rows)} archs, {args.epochs} epochs on {len(train)} of {dataset.name}'s training images, tested on "
        f"{len(test)}; supernet: {trained.steps} steps ({identity['budget']}); "
        f"{machine}, torch {torch.__version__}, {args.threads} threads"
    )


if __name__ == "__main__":
    main()
