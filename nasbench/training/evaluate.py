"""Batch-norm recalibration and evaluation of subnets with inherited weights.

A subnet of a supernet inherits weights but not batch-norm statistics: the running averages kept during
training mix every subnet that ran. Before it is evaluated, a subnet's statistics are therefore reset and
re-estimated on a fixed number of training batches (OFA, BigNAS), then top-1 is measured on the validation
split. The batches are drawn from a seeded generator, so the same subnet always gets the same statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasbench.arch import Arch
from nasbench.data import DeviceData
from nasbench.training.sandwich import autocast

BN_TYPES = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class EvalSettings:
    """How a trained supernet's subnets are evaluated: the one set a search, an export and a rank report use,
    given by the supernet's training record (``rundir.TrainingRecord.eval_settings``)."""

    bn_batches: int = 16  # training batches that re-estimate a subnet's batch-norm statistics
    batch_size: int = 64  # batch size of those calibration batches
    seed: int = 0  # picks the calibration batches: the same for every arch of a run
    val_fraction: float = 0.1  # share of the training split held out for validation (as in training)
    data_seed: int = 0  # seeds that split (the run's seed)
    channels_last: bool = True  # the supernet training's memory format (TrainConfig.channels_last)
    bf16: bool = True  # the supernet training's autocast: bf16 on CUDA; the CPU runs float32 regardless
    images: int | None = None  # validation images per evaluation (the split's first); None: all of them

    def evaluate_options(self) -> dict[str, Any]:
        """The keyword arguments of ``evaluate`` / ``evaluate_model`` these settings fix."""
        return {"bn_batches": self.bn_batches, "batch_size": self.batch_size, "seed": self.seed,
                "channels_last": self.channels_last, "bf16": self.bf16}  # fmt: skip


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor | tuple[Tensor, ...]], num_batches: int) -> int:
    """Reset every batch norm's running statistics and re-estimate them as an exact average over
    ``num_batches`` batches (momentum None), forwarding in train mode without gradients.

    Each batch is an image tensor or a tuple whose first item is one. Momenta are restored afterwards and
    the model is left in eval mode. Returns the number of batches used (fewer if ``batches`` runs out).
    Nothing is read back from the device: the statistics stay where the model is.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be positive, got {num_batches}")
    norms = [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
    model.train()
    used = 0
    try:
        for batch in islice(batches, num_batches):
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return used


@dataclass(frozen=True)
class EvalResult:
    """Validation figures of one subnet after BN recalibration."""

    arch: str  # compact string of the architecture
    arch_id: str
    resolution: int
    top1: float  # fraction of validation images classified correctly
    loss: float  # mean cross-entropy on the validation split
    images: int  # validation images seen
    bn_batches: int  # training batches that re-estimated the BN statistics

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_batches(
    data: DeviceData, batch_size: int, resolution: int, *, seed: int, channels_last: bool = False
) -> Iterator[Tensor]:
    """An endless stream of augmented training images from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(data))
    while True:
        for images, _ in data.train_batches(batch_size, resolution, generator=generator, channels_last=channels_last):
            yield images


@torch.no_grad()
def accuracy(
    model: nn.Module,
    data: DeviceData,
    resolution: int,
    *,
    batch_size: int = 256,
    channels_last: bool = False,
    bf16: bool = True,
) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of ``model`` in eval mode over every image of ``data``.

    The counts and the loss sum accumulate on the data's device and are read once, at the end: no host
    sync per batch, so the GPU never waits for the host between batches."""
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=data.device)  # correct, loss sum
    n = 0
    cast = autocast(data.device, bf16)
    for images, labels in data.eval_batches(batch_size, resolution, channels_last=channels_last):
        with cast:
            logits = model(images).float()
        totals[0] += (logits.argmax(1) == labels).sum()
        totals[1] += F.cross_entropy(logits, labels, reduction="sum")
        n += len(labels)
    correct, loss_sum = totals.tolist()  # the one host sync
    return correct / n, loss_sum / n


def evaluate_model(
    model: nn.Module,
    arch: Arch,
    train_data: DeviceData,
    val_data: DeviceData,
    *,
    bn_batches: int = 16,
    batch_size: int = 64,
    seed: int = 0,
    channels_last: bool = False,
    bf16: bool = True,
) -> EvalResult:
    """Recalibrate ``model``'s BN on ``bn_batches`` seeded training batches, then top-1 on ``val_data``."""
    stream = calibration_batches(train_data, batch_size, arch.resolution, seed=seed, channels_last=channels_last)
    with autocast(train_data.device, bf16):
        used = recalibrate_bn(model, stream, bn_batches)
    eval_batch = max(batch_size, 256)  # no gradients: larger batches are cheaper per image
    top1, loss = accuracy(
        model, val_data, arch.resolution, batch_size=eval_batch, channels_last=channels_last, bf16=bf16
    )
    return EvalResult(str(arch), arch.id, arch.resolution, top1, loss, len(val_data), used)


def evaluate(
    supernet: nn.Module, arch: Arch, train_data: DeviceData, val_data: DeviceData, **options: Any
) -> EvalResult:
    """Select ``arch`` in ``supernet``, then ``evaluate_model`` (same keyword options): recalibrate its BN
    statistics and measure validation top-1.

    This overwrites the supernet's running statistics with those of ``arch`` (they are per-subnet anyway).
    """
    supernet.set_active(arch)
    return evaluate_model(supernet, arch, train_data, val_data, **options)
