"""Training-step cost of a subnet run inside the supernet vs. the same subnet exported as a static model.

For each architecture: one SGD training step (forward + backward + optimizer, batch 64, channels_last)
on the supernet with the subnet active, and on ``supernet.export(arch)``; the two are timed interleaved,
step for step, so background load hits both alike. Prints the median of each and their ratio
(supernet / static); the issue's target is <= 1.10 on CPU.

    .venv/bin/python bench/supernet_overhead.py [--space tiny] [--archs 6] [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import nasbench
from nasbench.supernet import Supernet


def step_fn(model, params, x, y):
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-5)

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    return step


def measure(net: Supernet, arch, batch: int, steps: int, warmup: int = 5) -> tuple[float, float]:
    res = arch.resolution
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, net.num_classes, (batch,))
    net.set_active(arch)
    static = net.export(arch).train().to(memory_format=torch.channels_last)
    net.train()
    sup = step_fn(net, [p for p in net.parameters()], x, y)
    sta = step_fn(static, list(static.parameters()), x, y)
    for _ in range(warmup):
        sup(), sta()
    times_sup, times_sta = [], []
    for i in range(steps):  # interleaved, alternating which goes first
        if i % 2:
            times_sup.append(sup())
            times_sta.append(sta())
        else:
            times_sta.append(sta())
            times_sup.append(sup())
    return statistics.median(times_sup), statistics.median(times_sta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="tiny")
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=None, help="override every arch's resolution")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    space = nasbench.load_space(args.space)
    net = Supernet(space, num_classes=10)  # its weights are sliced per step; inputs are channels_last
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [(f"sample:{s}", space.sample(s)) for s in range(args.archs - 2)]
    rows = []
    for name, arch in archs:
        if args.resolution:
            arch = arch.with_resolution(args.resolution)
        sup, sta = measure(net, arch, args.batch, args.steps)
        rows.append(
            {
                "arch": name,
                "id": arch.id,
                "resolution": arch.resolution,
                "supernet_ms": 1e3 * sup,
                "static_ms": 1e3 * sta,
                "ratio": sup / sta,
            }
        )
    context = {
        "space": args.space,
        "batch": args.batch,
        "threads": args.threads,
        "steps": args.steps,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "memory_format": "channels_last",
    }
    if args.json:
        print(json.dumps({"context": context, "rows": rows}, indent=2))
        return
    print(f"context: {context}")
    print(f"{'arch':<10} {'id':<11} {'res':>4} {'supernet ms':>12} {'static ms':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['arch']:<10} {r['id']:<11} {r['resolution']:>4} {r['supernet_ms']:>12.1f} {r['static_ms']:>10.1f} "
            f"{r['ratio']:>6.3f}"
        )
    ratios = [r["ratio"] for r in rows]
    print(
        f"median ratio {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f}; target <= 1.10)"
    )


if __name__ == "__main__":
    main()
