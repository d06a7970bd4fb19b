"""What channel re-ordering changes: the largest logit change it causes, per subnet kind, before and after the fix.

For each space, a supernet (seed 0) trained for a few sandwich steps on random images and labels, so that
weights and norm statistics are not at their initial values, runs three kinds of subnet in eval mode before
and after one ``reorder_channels``:

- ``full+e1``: every width and expand at its maximum, except expand 1 with MBConv / dynamic-conv MBConv
  wherever a stage allows it (the hidden channels are then the block's input channels);
- ``largest``;
- ``smallest``: a subnet that keeps only the leading hidden channels, so the sort *should* change it.

It prints the largest |logit change| with the old order (every hidden channel sorted, the input-tied ones
included, as before the fix) and with the current order, next to the logits' scale.

    PYTHONPATH=. .venv/bin/python bench/reorder_invariance.py [--spaces tiny,mobile] [--resolution 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import torch
import torch.nn.functional as F

import nasbench
from nasbench.arch import Arch
from nasbench.supernet import Supernet
from nasbench.training import TrainConfig, make_optimizer


def full_with_expand_one(space) -> Arch:
    largest = space.largest()
    stages = []
    for stage, choices in zip(largest.stages, space.stages, strict=True):
        tied = [b for b in ("mbconv", "dynconv") if b in choices.blocks] if 1 in choices.expands else []
        if tied:
            layers = tuple(replace(lay, block=tied[j % len(tied)], expand=1) for j, lay in enumerate(stage.layers))
            stage = replace(stage, layers=layers)
        stages.append(stage)
    return replace(largest, stages=tuple(stages))


def old_orders(net: Supernet) -> dict[str, torch.Tensor]:
    """The pre-fix orders: every MBConv's hidden channels sorted, the ones tied to its input included."""
    blocks = {name: copy.copy(block) for name, block in net.hidden_blocks().items()}
    for block in blocks.values():
        if hasattr(block, "has_expand_one"):
            block.has_expand_one = False  # a shallow copy: only this flag differs from the real block
    orders = {name: block.hidden_order() for name, block in blocks.items()}
    return {name: order for name, order in orders.items() if order is not None}


def logits(net: Supernet, arch: Arch, resolution: int | None) -> torch.Tensor:
    res = resolution or arch.resolution
    x = torch.randn(4, 3, res, res, generator=torch.Generator().manual_seed(1))
    net.set_active(arch)
    with torch.inference_mode():
        return net(x)


def warmed_up(space, steps: int, resolution: int | None) -> Supernet:
    """A few SGD steps of four subnets on random data (at ``resolution`` if given, else each arch's own)."""
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).train()
    optimizer = make_optimizer(net, TrainConfig(lr=0.01))
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for arch in (space.largest(), space.smallest(), full_with_expand_one(space), space.sample(step)):
            res = resolution or arch.resolution
            gen = torch.Generator().manual_seed(step)
            images, labels = torch.randn(8, 3, res, res, generator=gen), torch.randint(0, 10, (8,), generator=gen)
            net.set_active(arch)
            F.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return net.eval()


def measure(space_name: str, resolution: int | None, steps: int) -> None:
    space = nasbench.load_space(space_name)
    archs = {"full+e1": full_with_expand_one(space), "largest": space.largest(), "smallest": space.smallest()}
    fresh = warmed_up(space, steps, resolution)
    before = {kind: logits(fresh, arch, resolution) for kind, arch in archs.items()}
    for label, orders_of in (("old order", old_orders), ("fixed order", Supernet.channel_orders)):
        net = copy.deepcopy(fresh)
        net.permute_channels(orders_of(net))
        for kind, arch in archs.items():
            change = (logits(net, arch, resolution) - before[kind]).abs().max().item()
            scale = before[kind].abs().max().item()
            print(f"{space_name:15s} {label:12s} {kind:9s} max|d logit| {change:.2e}  logit scale {scale:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="tiny", help="comma-separated shipped spaces")
    parser.add_argument("--resolution", type=int, default=None, help="input side (default: each arch's own)")
    parser.add_argument("--steps", type=int, default=20, help="sandwich steps before re-ordering")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.spaces.split(","):
        measure(name, args.resolution, args.steps)


if __name__ == "__main__":
    main()
