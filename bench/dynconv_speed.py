"""The dynamic convolution's two batch formulations, timed side by side: per layer and per sandwich step.

``mixed_depthwise_conv`` mixes the K experts' outputs per sample. It can run them as one depthwise conv
with K outputs per channel followed by a batched mat-vec over the experts (``multiplier``, the previous
formulation, kept here as the reference), or as K plain depthwise convs, each scaled per sample and summed
(``k_plain``, the one ``nasbench.blocks`` uses). Both give the same outputs; the bench checks it, then times
forward + backward of each at the dynamic-conv shapes of ``tiny`` at batch ``--batch``, interleaved call for
call. Last, whole sandwich steps of a ``tiny`` supernet (teacher, smallest, 2 random subnets; the same
subnets for both formulations, alternating which goes first). Prints medians and ratios (multiplier / k_plain).

    .venv/bin/python bench/dynconv_speed.py [--threads 2] [--steps 60]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch
import torch.nn.functional as F

import nasbench
import nasbench.blocks
import nasbench.supernet.blocks
from nasbench.supernet import Supernet
from nasbench.training.config import TrainConfig
from nasbench.training.coverage import CoverageSampler
from nasbench.training.optim import make_optimizer
from nasbench.training.sandwich import sandwich_archs, sandwich_step

k_plain = nasbench.blocks.mixed_depthwise_conv


def multiplier(x: torch.Tensor, pi: torch.Tensor, experts: torch.Tensor, stride: int) -> torch.Tensor:
    """The previous formulation: one depthwise conv with K outputs per channel, then a mat-vec per sample."""
    b, c = x.shape[:2]
    k, size = experts.shape[0], experts.shape[-1]
    if b == 1:
        return k_plain(x, pi, experts, stride)
    weight = experts.transpose(0, 1).reshape(c * k, 1, size, size)
    y = F.conv2d(x, weight, None, stride, size // 2, groups=c)
    h, w = y.shape[2:]
    y = y.contiguous(memory_format=torch.channels_last)
    mixed = torch.bmm(y.permute(0, 2, 3, 1).reshape(b, h * w * c, k), pi.to(y.dtype).unsqueeze(2))
    return mixed.view(b, h, w, c).permute(0, 3, 1, 2)


# (hidden channels, input size, stride) of tiny's dynamic convs at 32 px: stage 2's first layer (input 8 or
# 16 wide, expand 3 or 6) and second (16 or 24), stage 3's first (16 or 24) and second (32 or 40)
SHAPES = [(96, 32, 2), (144, 16, 1), (144, 16, 2), (240, 8, 1), (96, 8, 1)]


def layer_inputs(channels: int, size: int, batch: int, gen: torch.Generator) -> tuple:
    x = torch.randn(batch, channels, size, size, generator=gen).contiguous(memory_format=torch.channels_last)
    pi = torch.softmax(torch.randn(batch, 4, generator=gen), dim=1)
    return x, pi, torch.randn(4, channels, 5, 5, generator=gen)


def time_layer(fn, inputs: tuple, stride: int):
    leaves = [t.clone().requires_grad_() for t in inputs]  # each formulation its own leaves and gradients

    def call() -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        y = fn(leaves[0], leaves[1], leaves[2], stride)
        y.square().sum().backward()
        return time.perf_counter() - start, y.detach()

    return call


def set_formulation(fn) -> None:
    nasbench.blocks.mixed_depthwise_conv = fn
    nasbench.supernet.blocks.mixed_depthwise_conv = fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--calls", type=int, default=30, help="timed calls per layer shape and formulation")
    ap.add_argument("--steps", type=int, default=60, help="timed sandwich steps per formulation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"dynamic conv, batch {args.batch}, kernel 5, K=4, channels_last; {args.threads} thread(s)")
    print("channels size stride | multiplier ms | k_plain ms | ratio | max |diff|")
    for channels, size, stride in SHAPES:
        inputs = layer_inputs(channels, size, args.batch, gen)
        old, new = time_layer(multiplier, inputs, stride), time_layer(k_plain, inputs, stride)
        old_t, new_t = [], []
        for i in range(args.calls + 3):  # alternating which goes first
            if i % 2:
                (a, ya), (b, yb) = old(), new()
            else:
                (b, yb), (a, ya) = new(), old()
            if i >= 3:
                old_t.append(a)
                new_t.append(b)
        diff = (ya - yb).abs().max().item()
        mo, mn = statistics.median(old_t) * 1e3, statistics.median(new_t) * 1e3
        row = f"{channels:8d} {size:4d} {stride:6d} | {mo:13.2f} | {mn:10.2f} | {mo / mn:5.2f} | {diff:.1e}"
        print(row, flush=True)

    space = nasbench.load_space("tiny")
    torch.manual_seed(0)
    net = Supernet(space, 10).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(net, TrainConfig())
    images = torch.randn(args.batch, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (args.batch,), generator=gen)
    sampler = CoverageSampler(space, 0)
    rng = random.Random(0)
    times = {"multiplier": [], "k_plain": []}
    for i in range(args.steps + 5):
        archs = sandwich_archs(space, sampler, 2, teacher_resolution="cycle")
        order = [("multiplier", multiplier), ("k_plain", k_plain)]
        rng.shuffle(order)
        for name, fn in order:
            set_formulation(fn)
            start = time.perf_counter()
            sandwich_step(net, archs, images, labels, optimizer=optimizer, student_label_weight=0.5, channels_last=True)
            if i >= 5:
                times[name].append(time.perf_counter() - start)
    set_formulation(k_plain)
    mo, mn = (statistics.median(times[k]) * 1e3 for k in ("multiplier", "k_plain"))
    print(f"sandwich step of tiny (median of {args.steps}): multiplier {mo:.1f} ms, k_plain {mn:.1f} ms, "
          f"ratio {mo / mn:.2f}")  # fmt: skip
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}")


if __name__ == "__main__":
    main()
