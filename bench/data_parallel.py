"""Data-parallel supernet training: throughput of 1, 2, ... workers side by side, and the scaling efficiency.

Each worker count trains the same supernet for the same number of sandwich steps with ``--batch-size``
images per worker (weak scaling: N workers step through N x B images per step). One worker is the plain
single-device ``train_supernet``; N > 1 is ``train_data_parallel`` (Ray Train, PyTorch DDP, gloo on CPU,
NCCL on CUDA), one CPU core or one GPU per worker. The rounds alternate the worker counts (1, 2, 1, 2, ...)
so that background load hits them alike; each figure is the median over ``--rounds``. Throughput counts the
steps' wall time only (Ray start-up and timing are outside it), in training images per second of the
global batch; efficiency = throughput(N) / (N x throughput(1)).

    .venv/bin/python bench/data_parallel.py --space tiny --data digits --workers 1,2 --steps 60 --rounds 2
    python3 bench/data_parallel.py --space efficientnet --data .device/cifar10-10k.npz --device cuda \
        --workers 1,2,4,8 --batch-size 64 --steps 100
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
from pathlib import Path

import torch

from nasbench.budget import parse_budget
from nasbench.data import load_dataset
from nasbench.spaces import load_space
from nasbench.training import TrainConfig
from nasbench.training.parallel import train_on_workers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; 1 is the single-device path")
    ap.add_argument("--batch-size", type=int, default=32, help="images per worker per step")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-norm", default="local", choices=("local", "sync"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the one-worker run (CPU)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    torch.set_num_threads(args.threads)
    space, data = load_space(args.space), load_dataset(args.data)
    config = TrainConfig(batch_size=args.batch_size, checkpoint_every=10**9)
    budget = parse_budget(f"{args.steps}steps")
    root = Path(tempfile.mkdtemp(prefix="nb-dp-"))
    ips: dict[int, list[float]] = {n: [] for n in counts}
    print(
        f"{args.space} on {data.name}, {args.steps} steps, batch {args.batch_size} per worker, {args.device}, "
        f"BN {args.batch_norm}",
        flush=True,
    )
    try:
        for r in range(args.rounds):
            for n in counts:
                out = root / f"r{r}-w{n}"
                result = train_on_workers(
                    space, data, budget, out, workers=n, batch_norm=args.batch_norm, config=config,
                    device=args.device, progress=False,
                )  # fmt: skip
                ips[n].append(result.images_per_second)
                print(
                    f"round {r}: {n} worker(s) {result.images_per_second:8.1f} img/s ({result.seconds:.1f} s of steps)",
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(ips[1]) if 1 in ips else None
    print("\nworkers | img/s (median) | speed-up | scaling efficiency")
    for n in counts:
        median = statistics.median(ips[n])
        if base:
            print(f"{n:7d} | {median:14.1f} | {median / base:8.2f} | {median / (n * base):.2f}")
        else:
            print(f"{n:7d} | {median:14.1f} |")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"machine: {name}, {torch.get_num_threads()} thread(s) for one worker, torch {torch.__version__}")


if __name__ == "__main__":
    main()
