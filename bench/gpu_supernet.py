"""Supernet training speed against the same subnets trained as static models, side by side on one device.

Per space (``tiny`` and ``efficientnet`` by default), in one run on one device:

* sandwich: ``--warmup`` (<= 50) untimed ``sandwich_step``s, then ``--steps`` timed ones (largest, smallest
  and 2 coverage-sampled subnets each, as in training), each followed, untimed for the supernet, by a
  training step of each of the same subnets exported as a static model (``supernet.export``; 1 untimed
  warm-up step each, then 1 timed). Reported: the median sandwich step against the median of the static
  sums, their ratio, the sandwich's p90 / median spread, images per second (batch / step), peak memory
  (CUDA: ``torch.cuda.max_memory_allocated`` per step, the max; CPU: the process's peak RSS) and the
  distinct conv shapes the supernet ran (``ConvShapeRecorder`` replaying the same subnets' forwards on the
  meta device, so nothing is computed and the timing is not slowed).
* subnet ratio: for ``--archs`` (>= 6) subnets, one training step with the subnet active in the supernet
  against the exported model, interleaved step for step, ``--ratio-steps`` each after ``--ratio-warmup``.

Both sides run the project's recipe: the training's optimizer (``make_optimizer``, SGD with momentum),
bf16 autocast on CUDA (``--no-bf16`` to turn off), channels_last, the batch fetched at the space's largest
resolution and resized per subnet inside the step. Timing: CUDA events around each step, one synchronize
before it (the GPU starts idle, so host launch time counts) and one at the end to read it; no sync inside.
CPU: ``time.perf_counter``.

cuDNN autotuning: ``--cudnn-benchmark`` is off by default. With it, cuDNN times every candidate algorithm
the first time it meets a conv shape (forward and both backward convs), which pays once per shape; the
supernet's shapes are bounded by the space's choices (``possible_conv_shapes``) but number in the
thousands for the big spaces (``bench/conv_shapes.py``), and random subnets keep meeting new ones for
hundreds of steps, so the autotuning cost lands inside a search's budget and in the step-time spread.
Measure both on a GPU before changing the default.

    .venv/bin/python bench/gpu_supernet.py --device cuda
    .venv/bin/python bench/gpu_supernet.py --device cpu --batch 4 --steps 3 --warmup 1 --archs 6 \\
        --ratio-steps 3 --ratio-warmup 1 --threads 1     # a CPU dry run, a few minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import nasbench
from nasbench.supernet import Supernet
from nasbench.supernet.shapes import forward_conv_shapes
from nasbench.training import TrainConfig, make_optimizer, sandwich_archs, sandwich_step
from nasbench.training.coverage import CoverageSampler
from nasbench.training.sandwich import at_resolution, autocast

DEFAULT_BATCH = {"tiny": 256, "efficientnet": 32}  # the batches the issue measured with
MAX_WARMUP = 50


class Timer:
    """Times ``fn()``: CUDA events on CUDA (read later, one sync each), ``perf_counter`` elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self, fn):
        if not self.cuda:
            begin = time.perf_counter()
            fn()
            return time.perf_counter() - begin
        torch.cuda.synchronize()  # the GPU starts idle: the step's own host time counts
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        return begin, end

    def seconds(self, handle) -> float:
        if not self.cuda:
            return handle
        handle[1].synchronize()
        return handle[0].elapsed_time(handle[1]) / 1e3


class PeakMemory:
    """Peak bytes over the steps it wraps (CUDA); the process's peak RSS on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda, self.peak = device.type == "cuda", 0

    def wrap(self, fn):
        def run():
            if self.cuda:
                torch.cuda.reset_peak_memory_stats()
            fn()
            if self.cuda:
                self.peak = max(self.peak, torch.cuda.max_memory_allocated())  # allocator state: no sync

        return run

    def describe(self) -> str:
        if self.cuda:
            return f"{self.peak / 2**30:.2f} GiB (max_memory_allocated)"
        return f"n/a per step; process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"


def static_step(model, images, labels, arch, args):
    """One training step of a static model, as the sandwich runs a subnet: resize, forward, loss, backward."""
    opt = make_optimizer(model, TrainConfig())
    cast = autocast(images.device, args.bf16)

    def step():
        opt.zero_grad(set_to_none=True)
        with cast:
            logits = model(at_resolution(images, arch.resolution, True))
        F.cross_entropy(logits.float(), labels).backward()
        opt.step()

    return step


def exported(net: Supernet, arch):
    return net.export(arch).train().to(memory_format=torch.channels_last)


def batch_of(space, args, device):
    gen = torch.Generator().manual_seed(0)
    res = max(space.resolutions)
    images = torch.randn(args.batch or DEFAULT_BATCH.get(space.name, 32), 3, res, res, generator=gen)
    return images.to(device), torch.randint(0, 10, (len(images),), generator=gen).to(device)


def sandwich_vs_static(space, args, device) -> dict:
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).to(device).to(memory_format=torch.channels_last).train()
    opt = make_optimizer(net, TrainConfig())
    images, labels = batch_of(space, args, device)
    sampler, timer = CoverageSampler(space, 0), Timer(device)
    sup_mem, sta_mem = PeakMemory(device), PeakMemory(device)
    seen = []

    def sandwich(archs):
        seen.extend(archs)
        return sup_mem.wrap(
            lambda: sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True, bf16=args.bf16)
        )

    for _ in range(min(args.warmup, MAX_WARMUP)):
        sandwich(sandwich_archs(space, sampler, 2))()
    sup, sta = [], []
    for _ in range(args.steps):
        archs = sandwich_archs(space, sampler, 2)
        sup.append(timer.seconds(timer.start(sandwich(archs))))
        total = 0.0
        for arch in archs:
            step = sta_mem.wrap(static_step(exported(net, arch), images, labels, arch, args))
            step()  # its first step: the static model is warm when timed, as it would be in its own training
            total += timer.seconds(timer.start(step))
        sta.append(total)
    median, static = statistics.median(sup), statistics.median(sta)
    return {
        "space": space.name,
        "batch": len(images),
        "sandwich_ms": 1e3 * median,
        "static_sum_ms": 1e3 * static,
        "sandwich_over_static": median / static,
        "p90_over_median": percentile(sup, 0.9) / median,
        "images_per_s": len(images) / median,
        "peak_memory_sandwich": sup_mem.describe(),
        "peak_memory_static": sta_mem.describe(),
        "conv_shapes": len(forward_conv_shapes(space, seen, len(images))),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def subnet_ratios(space, args, device) -> list[dict]:
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).to(device).to(memory_format=torch.channels_last).train()
    images, labels = batch_of(space, args, device)
    timer = Timer(device)
    archs = [("largest", space.largest()), ("smallest", space.smallest())]
    archs += [(f"sample:{s}", space.sample(s)) for s in range(args.archs - 2)]
    rows = []
    for name, arch in archs:
        net.set_active(arch)
        sup = static_step(net, images, labels, arch, args)  # the supernet, subnet active: the same step
        sta = static_step(exported(net, arch), images, labels, arch, args)
        for _ in range(args.ratio_warmup):
            sup(), sta()
        times = {"sup": [], "sta": []}
        for i in range(args.ratio_steps):  # interleaved, alternating which goes first
            for key, fn in (("sup", sup), ("sta", sta)) if i % 2 else (("sta", sta), ("sup", sup)):
                times[key].append(timer.seconds(timer.start(fn)))
        s, t = statistics.median(times["sup"]), statistics.median(times["sta"])
        rows.append(
            {
                "arch": name,
                "id": arch.id,
                "resolution": arch.resolution,
                "supernet_ms": 1e3 * s,
                "static_ms": 1e3 * t,
                "ratio": s / t,
            }
        )
    return rows


def context(args, device) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "dtype": "bf16 autocast" if cuda and args.bf16 else "float32",
        "memory_format": "channels_last",
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "warmup": min(args.warmup, MAX_WARMUP),
        "command": " ".join(["python", *sys.argv]),
    }


def report(space_name: str, result: dict, rows: list[dict]) -> None:
    r = result
    print(f"\n== {space_name}  (batch {r['batch']})")
    print(f"sandwich step       {r['sandwich_ms']:10.1f} ms   (median)")
    print(f"static sum          {r['static_sum_ms']:10.1f} ms   (same 4 subnets, exported; median)")
    print(f"sandwich / static   {r['sandwich_over_static']:10.3f}      (target <= 1.25 on a GPU)")
    print(f"p90 / median        {r['p90_over_median']:10.3f}      (target <= 1.3)")
    print(f"images / s          {r['images_per_s']:10.1f}")
    if r["peak_memory_sandwich"] == r["peak_memory_static"]:  # the CPU: one figure for the process
        print(f"peak memory         {r['peak_memory_sandwich']}")
    else:
        print(f"peak memory         sandwich {r['peak_memory_sandwich']}; static {r['peak_memory_static']}")
    print(f"distinct conv shapes {r['conv_shapes']:9d}")
    print(f"{'arch':<10} {'id':<11} {'res':>4} {'supernet ms':>12} {'static ms':>10} {'ratio':>6}")
    for w in rows:
        print(
            f"{w['arch']:<10} {w['id']:<11} {w['resolution']:>4} {w['supernet_ms']:>12.1f} "
            f"{w['static_ms']:>10.1f} {w['ratio']:>6.3f}"
        )
    ratios = [w["ratio"] for w in rows]
    print(
        f"subnet ratio: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}; "
        f"target <= 1.10)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--spaces", default="tiny,efficientnet")
    ap.add_argument("--batch", type=int, default=None, help=f"default per space: {DEFAULT_BATCH}")
    ap.add_argument("--steps", type=int, default=50, help="timed sandwich steps")
    ap.add_argument("--warmup", type=int, default=MAX_WARMUP, help=f"untimed sandwich steps first (<= {MAX_WARMUP})")
    ap.add_argument("--archs", type=int, default=6, help="subnets for the subnet-in-supernet ratio (>= 6)")
    ap.add_argument("--ratio-steps", type=int, default=20)
    ap.add_argument("--ratio-warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)
    out = {"context": context(args, device), "spaces": {}}
    if not args.json:
        print(f"context: {out['context']}")
    for name in args.spaces.split(","):
        space = nasbench.load_space(name)
        result, rows = sandwich_vs_static(space, args, device), subnet_ratios(space, args, device)
        out["spaces"][name] = {**result, "subnets": rows}
        if not args.json:
            report(name, result, rows)
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
