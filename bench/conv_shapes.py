"""Distinct convolution shapes the supernet runs over N sandwich steps of each shipped space.

cuDNN does per-shape work the first time it meets a conv shape (input shape, weight shape, stride,
groups); this counts the shapes the training actually meets (``ConvShapeRecorder`` around
``sandwich_step``, subnets from the training's ``CoverageSampler``, the batch fetched at the largest
resolution and resized per subnet, channels_last) against ``possible_conv_shapes``, every shape the
space's choices allow. Shapes do not depend on values, so ``--device meta`` counts them without computing
anything (the same code runs; only the kernels are skipped).

    .venv/bin/python bench/conv_shapes.py [--spaces tiny,efficientnet] [--steps 200] [--batch 2] [--device meta]
"""

from __future__ import annotations

import argparse
import time

import torch

import nasbench
from nasbench.supernet import Supernet
from nasbench.supernet.shapes import ConvShapeRecorder, possible_conv_shapes
from nasbench.training import sandwich_archs, sandwich_step
from nasbench.training.coverage import CoverageSampler


def count_shapes(space_name: str, steps: int, batch: int, device: str, num_random: int = 2) -> dict:
    """Run ``steps`` sandwich steps of the space's supernet and count the conv shapes they met."""
    space = nasbench.load_space(space_name)
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    res = max(space.resolutions)
    images = torch.randn(batch, 3, res, res, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    sampler = CoverageSampler(space, 0)
    start = time.perf_counter()
    first_seen = []  # distinct shapes met after each step: how fast the set saturates
    with ConvShapeRecorder() as rec:
        for _ in range(steps):
            archs = sandwich_archs(space, sampler, num_random)
            sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True)
            first_seen.append(len(rec.shapes))
    possible = possible_conv_shapes(space, batch)
    return {
        "space": space_name,
        "observed": len(rec.shapes),
        "after_10_steps": first_seen[min(9, steps - 1)],
        "after_half": first_seen[steps // 2 - 1] if steps > 1 else first_seen[0],
        "possible": len(possible),
        "outside_possible": len(rec.shapes - possible),
        "conv_calls_per_step": rec.calls / steps,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default=",".join(nasbench.shipped_spaces()))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="meta")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"context: steps={args.steps} batch={args.batch} device={args.device} torch={torch.__version__}")
    header = ("space", "observed", "@10", "@half", "possible", "outside", "convs/step", "s")
    print("{:<14} {:>8} {:>5} {:>6} {:>8} {:>7} {:>10} {:>6}".format(*header))
    for name in args.spaces.split(","):
        r = count_shapes(name, args.steps, args.batch, args.device)
        print(
            f"{r['space']:<14} {r['observed']:>8} {r['after_10_steps']:>5} {r['after_half']:>6} {r['possible']:>8} "
            f"{r['outside_possible']:>7} {r['conv_calls_per_step']:>10.0f} {r['seconds']:>6.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
