"""Optimizer, learning-rate schedule and the dynamic-conv temperature schedule, as small pure pieces."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from nasbench.supernet.blocks import permute_
from nasbench.supernet.supernet import Move, Supernet
from nasbench.training.config import TrainConfig

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: conv/linear weights decay; norm parameters and every bias do not.

    Decaying a norm's scale or a bias only shrinks the output range without regularising the function
    (the usual ImageNet recipe since Goyal et al. 2017; OFA and timm do the same).
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            (no_decay if isinstance(module, NORM_TYPES) or name == "bias" else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


def warmup_cosine(step: int, *, warmup: int, total: int) -> float:
    """Multiplier of the peak lr at ``step`` (0-based): linear warm-up to 1, then cosine down to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, *, warmup: int, total: int, step: int = 0) -> LambdaLR:
    """A per-step ``LambdaLR`` of ``warmup_cosine``; its state (the step) goes into checkpoints. ``step`` > 0
    continues a run at that step (the learning rates set for it) over a re-planned ``total``."""
    return LambdaLR(optimizer, partial(warmup_cosine, warmup=warmup, total=total), last_epoch=step - 1)


def resolve_warmup(config: TrainConfig, total: int) -> int:
    """Warm-up steps for a run of ``total`` steps: the configured number (at most half the run), else 5%."""
    if config.warmup_steps is None:
        return max(1, round(0.05 * total))
    return min(config.warmup_steps, total // 2)


def dynconv_temperature(step: int, *, total: int, start: float, anneal: float) -> float:
    """Chen et al.'s schedule: linear from ``start`` to 1 over the first ``anneal`` share of the run, then 1."""
    anneal_steps = round(anneal * total)
    if step >= anneal_steps:
        return 1.0
    return start + (1.0 - start) * step / anneal_steps


def set_temperature(model: nn.Module, temperature: float) -> int:
    """Set ``temperature`` on every module that has a float one (the dynamic convs); returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(getattr(m, "temperature", None), float):
            m.temperature = float(temperature)
            n += 1
    return n


def reorder_channels(
    model: Supernet, optimizer: torch.optim.Optimizer, orders: dict[str, Tensor] | None = None
) -> list[Move]:
    """The supernet's importance re-ordering (or the given ``orders``), with the optimizer state in tow.

    Re-ordering permutes parameters in place; their momentum (SGD) or moments (AdamW's exp_avg,
    exp_avg_sq) are per-element, so they are permuted by the same order, and a step after re-ordering
    equals the re-ordered step. Every state tensor shaped like its parameter is such a per-element
    buffer; the rest (AdamW's step count) is kept as it is. Returns the moves (tensor, order, dim).
    """
    moves = model.permute_channels(model.channel_orders() if orders is None else orders)
    for tensor, order, dim in moves:
        for value in optimizer.state.get(tensor, {}).values():
            if isinstance(value, Tensor) and value.shape == tensor.shape:
                permute_(value, order, dim)
    return moves
