"""Distinct convolution shapes the supernet runs over N sandwich steps of each shipped space.

cuDNN does per-shape work the first time it meets a conv shape (input shape, weight shape, stride,
groups); this counts the shapes the training meets: the forward convs of every subnet of N sandwich
steps (the teacher, at the resolutions the training's default gives it, the smallest and 2 from the
training's ``CoverageSampler``), each at its resolution, replayed on the meta device
(``forward_conv_shapes``: shapes need no values; backward convs repeat the forward's shapes). Beside them:
the shapes met after 10 steps and after half the steps (how fast the set saturates), and
``possible_conv_shapes``, every shape the space's choices allow (tests/test_shapes.py checks on real
sandwich steps that training stays inside it).

    .venv/bin/python bench/conv_shapes.py [--spaces tiny,efficientnet] [--steps 200] [--batch 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import nasbench
from nasbench.supernet.shapes import forward_conv_shapes, possible_conv_shapes
from nasbench.training import TrainConfig, sandwich_archs
from nasbench.training.coverage import CoverageSampler


def count_shapes(space_name: str, steps: int, batch: int, num_random: int = 2) -> dict:
    """The conv shapes met by ``steps`` sandwich steps' subnets (the training's sampler), step by step."""
    space = nasbench.load_space(space_name)
    sampler = CoverageSampler(space, 0)
    start = time.perf_counter()
    teacher = TrainConfig().teacher_resolution  # as training runs it: the teacher at each resolution in turn
    archs = [sandwich_archs(space, sampler, num_random, teacher_resolution=teacher) for _ in range(steps)]

    def met(n: int) -> set:  # the shapes of the first n steps' subnets
        return forward_conv_shapes(space, [a for step in archs[:n] for a in step], batch)

    shapes = met(steps)
    possible = possible_conv_shapes(space, batch)
    return {
        "space": space_name,
        "observed": len(shapes),
        "after_10_steps": len(met(10)),
        "after_half": len(met(max(1, steps // 2))),
        "possible": len(possible),
        "outside_possible": len(shapes - possible),
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default=",".join(nasbench.shipped_spaces()))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"context: steps={args.steps} batch={args.batch} torch={torch.__version__}")
    header = ("space", "observed", "@10", "@half", "possible", "outside", "s")
    print("{:<14} {:>8} {:>5} {:>6} {:>8} {:>7} {:>6}".format(*header))
    for name in args.spaces.split(","):
        r = count_shapes(name, args.steps, args.batch)
        print(
            f"{r['space']:<14} {r['observed']:>8} {r['after_10_steps']:>5} {r['after_half']:>6} {r['possible']:>8} "
            f"{r['outside_possible']:>7} {r['seconds']:>6.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
