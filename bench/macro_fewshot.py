"""Few-shot splitting on NAS-Bench-Macro: does splitting a trained supernet on one early decision, and fine-tuning
each part on its own sub-space, rank the table better than fine-tuning the one supernet for as many steps?

Few-shot NAS (Zhao et al. 2021) splits a one-shot supernet on one decision into one sub-supernet per choice, each
starting from the one-shot weights and trained only on the architectures with its choice, so that no weight is
shared across that decision any more. Here, from a finished ``train-supernet`` folder (uniform single-path):

- ``fewshot``: for each choice of ``--split`` (default ``s1.l1.op``, the first layer's operation: 3 choices),
  a copy of the supernet fine-tuned ``--steps`` uniform single-path steps on architectures with that choice;
- ``control``: one copy fine-tuned ``choices x --steps`` steps on the whole space: the same compute, no split.

Both use the supernet's own recipe (batch, optimizer, label smoothing) with a cosine from ``--lr`` down to 0.
Then each scores the same networks: ``--n`` of the rank report's 300-network sample (``--sample``, stratified
again over FLOPs), plus the ranker's calibration architectures, each network with the copy of its choice, with
the supernet's evaluation settings and ``--val-images`` (as ``nasbench benchmark rank``). It prints the rank
report (Kendall tau overall, within FLOPs quintiles) of supernet accuracy, loss and the score nasbench chooses
by, for the variant. ``--parent-scores`` adds the supernet as trained, read from a rank report's scores.csv made
with the same settings. Fine-tuned weights and scores live in ``--out`` (resumable); run the two variants side
by side with ``--variant``.

    .venv/bin/python bench/macro_fewshot.py /work/runs/macro-60min-uniform --variant fewshot --out FS
    .venv/bin/python bench/macro_fewshot.py /work/runs/macro-60min-uniform --variant control --out FS
    .venv/bin/python bench/macro_fewshot.py /work/runs/macro-60min-uniform --report --out FS \\
        --parent-scores RANK/scores.csv
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from nasbench.benchmarks.ranking import format_report, stratified_sample
from nasbench.benchmarks.report import (
    SCORES,
    apply_ranker,
    open_trained,
    read_scores,
    report_frame,
    sample_keys,
    score_networks,
    subset,
    trained_truth,
)
from nasbench.errors import NasbenchError
from nasbench.search.ranker import CALIBRATION, calibration_archs
from nasbench.seeds import fork
from nasbench.training.optim import make_optimizer
from nasbench.training.sandwich import sandwich_step
from nasbench.training.state import BatchStream

VARIANTS = ("fewshot", "control")


def fine_tune(net, space, train, config, *, steps: int, lr: float, seed: int, fixed: tuple[str, object] | None):
    """``steps`` uniform single-path steps on ``net`` (in place), every architecture with ``fixed`` when given."""
    resolution = max(space.resolutions)
    stream = BatchStream(train, config.batch_size, resolution, seed=seed, channels_last=config.channels_last)
    optimizer = make_optimizer(net, config)
    rng = random.Random(seed)
    net.train()
    start = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        arch = space.sample(rng)
        if fixed is not None:
            arch = space.decode({**space.encode(arch), fixed[0]: fixed[1]})
        images, labels = stream.next()
        sandwich_step(net, [arch], images, labels, optimizer=optimizer, label_smoothing=config.label_smoothing,
                      channels_last=config.channels_last, distill=False)  # fmt: skip
        if (step + 1) % 200 == 0 or step + 1 == steps:
            spent = time.perf_counter() - start
            print(f"    step {step + 1}/{steps}, {spent / (step + 1):.2f} s each, "
                  f"about {spent / (step + 1) * (steps - step - 1) / 60:.1f} min left", flush=True)  # fmt: skip
    return net


def the_keys(truth, n: int, sample: int, seed: int) -> list[str]:
    """``n`` of the rank report's ``sample``-network sample (the same seed), stratified over FLOPs again."""
    keys = sample_keys(truth, sample, seed)
    flops = truth.table.loc[keys, "flops"].to_numpy()
    return [keys[i] for i in stratified_sample(flops, n, seed)] if n < len(keys) else keys


def run_variant(args, space, trained, info, truth, keys, calib) -> None:
    config = info["config"]
    folder = args.out / args.variant
    folder.mkdir(parents=True, exist_ok=True)
    choices = dict((d.label, d.choices) for d in space.dimensions())[args.split]
    parts = [(i, (args.split, c)) for i, c in enumerate(choices)] if args.variant == "fewshot" else [(0, None)]
    steps = args.steps if args.variant == "fewshot" else args.steps * len(choices)
    settings = info["settings"]
    val = subset(trained.val, args.val_images)
    for index, fixed in parts:
        weights = folder / f"part{index}.pt"
        net = copy.deepcopy(trained.supernet)
        if weights.is_file():
            net.load_state_dict(torch.load(weights, weights_only=True))
        else:
            print(f"{args.variant} part {index} ({fixed or 'whole space'}): {steps} steps", flush=True)
            seed = fork(args.seed, "fewshot-bench", args.variant, index)
            fine_tune(net, space, trained.train, config, steps=steps, lr=args.lr, seed=seed, fixed=fixed)
            tmp = weights.with_suffix(".tmp")
            torch.save(net.state_dict(), tmp)
            tmp.replace(weights)
        mine = [k for k in keys if fixed is None or space.encode(truth.arch(k))[fixed[0]] == fixed[1]]
        mine_calib = [k for k in calib if fixed is None or space.encode(truth.arch(k))[fixed[0]] == fixed[1]]
        done = SimpleNamespace(supernet=net.eval(), train=trained.train, val=val)
        for name, todo in (("scores", mine), ("calibration", mine_calib)):
            out = folder / name
            out.mkdir(exist_ok=True)
            print(f"  scoring {len(todo)} networks into {out}", flush=True)
            score_networks(truth, todo, done, settings, out, proxies=("naswot",), seed=args.seed,
                           on_progress=lambda i, n, left: print(f"    {i}/{n}, about {left / 60:.1f} min left",
                                                                flush=True))  # fmt: skip


def scored(scores: Path, calibration: Path, keys: list[str], calib: list[str], seed: int) -> pd.DataFrame:
    """Accuracy, loss and the score of ``keys`` from a scores file, the score calibrated on ``calibration``'s."""
    frame, _ = apply_ranker(read_scores(scores).loc[keys], read_scores(calibration).loc[calib], seed)
    return frame[["supernet_acc", "supernet_loss", "score"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("supernet", type=Path, help="a finished train-supernet folder on nas-bench-macro")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", choices=VARIANTS, help="fine-tune and score this variant")
    ap.add_argument("--report", action="store_true", help="print the rank report of the variants scored")
    ap.add_argument("--split", default="s1.l1.op", help="the decision to split on")
    ap.add_argument("--steps", type=int, default=1000, help="fine-tuning steps per part (control: x choices)")
    ap.add_argument("--lr", type=float, default=0.01, help="fine-tuning peak lr (cosine to 0)")
    ap.add_argument("--n", type=int, default=100, help="networks scored, out of the report's sample")
    ap.add_argument("--sample", type=int, default=300, help="the rank report's sample size (--n of it)")
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parent-scores", type=Path, help="a rank report's scores.csv of the supernet as trained")
    args = ap.parse_args()
    if not args.variant and not args.report:
        ap.error("give --variant fewshot|control, --report, or both")
    if args.steps < 1 or args.lr <= 0 or not 5 <= args.n <= args.sample:
        ap.error(f"need --steps >= 1, --lr > 0 and 5 <= --n <= --sample, got {args.steps}, {args.lr}, {args.n}")
    torch.set_num_threads(args.threads)
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads")
    try:
        space, trained, info = open_trained(args.supernet)
    except NasbenchError as e:
        sys.exit(str(e))
    truth = trained_truth(space)
    if args.split not in {d.label for d in space.dimensions()}:
        sys.exit(f"--split {args.split} is not a decision of {space.name}")
    keys = the_keys(truth, args.n, args.sample, args.seed)
    calib = [truth.to_key(a) for a in calibration_archs(truth.space, CALIBRATION, args.seed)]
    print(f"supernet {args.supernet}: {info['steps']} steps; {len(keys)} networks, {len(calib)} calibration")
    if args.variant:
        run_variant(args, space, trained, info, truth, keys, calib)
    if not args.report:
        return
    for variant in VARIANTS:
        if not (args.out / variant / "calibration" / "scores.csv").is_file():
            print(f"\n{variant}: not scored yet")
            continue
        folder = args.out / variant
        frame = scored(folder / "scores" / SCORES, folder / "calibration" / SCORES, keys, calib, args.seed)
        frame = report_frame(truth, frame, seed=args.seed)
        parts = "per part" if variant == "fewshot" else "x the choices, one part"
        print(f"\n{variant} ({args.steps} steps {parts}):\n{format_report(frame)}")
    if args.parent_scores:
        missing = [k for k in keys if k not in read_scores(args.parent_scores).index]
        if missing:
            sys.exit(f"{args.parent_scores} lacks {len(missing)} of the networks, e.g. {missing[0]}")
        calibration = args.parent_scores.parent / "calibration" / SCORES
        frame = report_frame(truth, scored(args.parent_scores, calibration, keys, calib, args.seed), seed=args.seed)
        print(f"\nthe supernet as trained ({info['steps']} steps):\n{format_report(frame)}")


if __name__ == "__main__":
    main()
