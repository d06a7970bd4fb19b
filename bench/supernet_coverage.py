"""Does the supernet know its whole space? Inherited-weight accuracy of random architectures vs the largest.

Trains a supernet (or continues / reuses a finished one in ``--out``), then evaluates, after BN
recalibration on the same seeded batches, the largest and smallest subnets and ``--archs`` seeded random
architectures, plus the largest with one dimension changed at a time. Prints each figure and the ratio
that issue 10 asks about: the median random architecture's validation accuracy over the largest's.

    .venv/bin/python bench/supernet_coverage.py --space tiny --data digits --budget 120s --out /tmp/cov
    .venv/bin/python bench/supernet_coverage.py --space tiny --data ../shared/data/cifar10 --budget 10min ...

Recipe options of ``TrainConfig`` can be set as ``--set name=value`` (e.g. ``--set num_random=3``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
from pathlib import Path

import torch

from nasbench.arch import Arch
from nasbench.budget import parse_budget
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, evaluate, train_supernet
from nasbench.training.rundir import CONFIG_FILE


def one_change(space, arch: Arch) -> dict[str, Arch]:
    """The largest arch with one dimension moved to its smallest choice (the issue's diagnostic)."""
    choices = space.encode(arch)
    smallest = space.encode(space.smallest())
    out = {}
    for kind in ("resolution", "kernel", "expand", "depth", "width", "block"):
        changed = {k: (smallest[k] if k.split(".")[-1] == kind else v) for k, v in choices.items()}
        if changed != choices:
            out[kind] = space.decode(changed)
    return out


def describe_randoms(archs: list[Arch], macs: list[int], accs: list[float]) -> None:
    """What the random architectures' accuracy follows: a least-squares slope on log10 MACs, and the mean
    by resolution and by how many layers are attention or dynamic conv (the block types only random subnets
    train)."""
    if len(archs) < 3:
        return
    macs = [math.log10(m) for m in macs]
    slope = statistics.linear_regression(macs, accs).slope if len(set(macs)) > 1 else float("nan")
    print(f"random architectures' accuracy vs log10 MACs: {slope:+.3f} per decade (least squares)")
    groups = {
        "resolution": [f"{a.resolution} px" for a in archs],
        "attention or dynconv layers": [
            str(sum(layer.block in ("attention", "dynconv") for stage in a.stages for layer in stage.layers))
            for a in archs
        ],
    }
    for name, keys in groups.items():
        means = {k: [acc for key, acc in zip(keys, accs, strict=True) if key == k] for k in sorted(set(keys))}
        cells = ", ".join(f"{k}: {statistics.mean(v):.4f} (n={len(v)})" for k, v in means.items())
        print(f"  mean by {name}: {cells}")


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:  # a bare word: a string (optimizer=adamw)
            out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--budget", default="120s", help="supernet training budget (time, steps or epochs)")
    ap.add_argument("--out", required=True, help="training folder (reused when it holds this run)")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="TrainConfig field=value (JSON value)")
    ap.add_argument("--bn-batches", type=int, default=None, help="BN recalibration batches (default: the recipe's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space, dataset = load_space(args.space), load_dataset(args.data)
    # built from the fields set, not replace()d into a default TrainConfig, whose lr and weight decay are already
    # resolved for SGD: --set optimizer=adamw must get AdamW's defaults
    try:
        config = TrainConfig.from_dict(parse_set(args.set))
    except NasbenchError as e:
        ap.error(str(e))
    out = Path(args.out)
    resume = (out / CONFIG_FILE).is_file()
    trained = train_supernet(
        space, dataset, parse_budget(args.budget), out, config=config, seed=args.seed, resume=resume, progress=False
    )

    bn_batches = args.bn_batches or config.bn_batches  # evaluation only: a finished run in --out is reused

    def acc(arch: Arch) -> float:
        return evaluate(trained.supernet, arch, trained.train, trained.val, bn_batches=bn_batches,
                        batch_size=config.batch_size, seed=args.seed).top1  # fmt: skip

    largest, smallest = acc(space.largest()), acc(space.smallest())
    print(f"{space.name} on {dataset.name}: {trained.steps} steps, {trained.seconds:.0f} s this session", flush=True)
    print(f"largest {largest:.4f}   smallest {smallest:.4f}", flush=True)
    for kind, arch in one_change(space, space.largest()).items():
        print(f"  largest with {kind} at its smallest: {acc(arch):.4f}", flush=True)
    samples = [space.sample(1000 + i) for i in range(args.archs)]
    macs, randoms = [count(a, dataset.num_classes).macs for a in samples], []
    for i, arch in enumerate(samples):
        randoms.append(acc(arch))
        print(f"  random {i:2d}: {randoms[-1]:.4f}   {macs[i] / 1e6:6.2f} M MACs  {arch.resolution} px", flush=True)
    median = statistics.median(randoms)
    print(f"median random {median:.4f}  (min {min(randoms):.4f}, max {max(randoms):.4f})")
    describe_randoms(samples, macs, randoms)
    print(f"RATIO median random / largest = {median / largest:.3f}")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}")


if __name__ == "__main__":
    main()
