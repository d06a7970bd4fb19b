"""One supernet training step under the sandwich rule with in-place distillation (Yu et al., BigNAS 2020).

Per step: the teacher, the largest subnet, learns from the labels (with label smoothing); the smallest and N
random subnets learn from its soft labels, detached so no gradient flows into the teacher, and partly from
the labels. The teacher runs at the largest resolution or, by default, at each resolution in turn (OFA's
elastic resolution; ``TrainConfig.teacher_resolution``). Every subnet runs at its own resolution (the batch
is fetched at the largest and resized down, antialiased); the gradients of all of them accumulate before one
optimizer step. Under data-parallel training (``model`` a ``DistributedDataParallel`` around ``net``) every
subnet but the last runs under ``no_sync``, so the gradients are all-reduced once per step, after all of
them have accumulated.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasbench.arch import Arch
from nasbench.data.augment import resize
from nasbench.spaces import SearchSpace
from nasbench.training.coverage import CoverageSampler


def sandwich_archs(
    space: SearchSpace,
    sampler: random.Random | CoverageSampler,
    num_random: int,
    *,
    smallest: bool = True,
    teacher_resolution: str = "largest",
    teacher: bool = True,
) -> list[Arch]:
    """The subnets of one step: the teacher first, then the smallest (unless ``smallest`` is False), then
    ``num_random`` samples (from a ``CoverageSampler``, which visits every choice regularly, or uniformly
    from a ``random.Random``). Without ``teacher``, only the ``num_random`` samples (uniform sampling).

    The teacher is the largest subnet, at the largest resolution (``teacher_resolution="largest"``) or at
    each of the space's resolutions in turn (``"cycle"``, see ``TrainConfig.teacher_resolution``)."""
    coverage = isinstance(sampler, CoverageSampler)
    draw = sampler.sample if coverage else lambda: space.sample(sampler)
    if not teacher:  # uniform single-path sampling: ``num_random`` subnets, nothing else
        return [draw() for _ in range(num_random)]
    teacher = space.largest()
    if teacher_resolution == "cycle":
        resolution = sampler.teacher_resolution() if coverage else sampler.choice(space.resolutions)
        teacher = replace(teacher, resolution=resolution)
    return [teacher, *([space.smallest()] if smallest else []), *(draw() for _ in range(num_random))]


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Cross-entropy against the teacher's softened probabilities; the teacher is detached here, always.

    Scaled by ``temperature**2`` so its gradient keeps the same magnitude at any temperature (Hinton et al.).
    """
    target = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=1)
    return -(target * log_probs).sum(1).mean() * temperature**2


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; a no-op elsewhere (CPU trains in float32)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def at_resolution(images: Tensor, resolution: int, channels_last: bool) -> Tensor:
    x = resize(images, resolution)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass(frozen=True)
class StepLosses:
    """Detached losses of one step (tensors, so reading them is the caller's choice of sync point)."""

    largest: Tensor  # the teacher's (the largest subnet's) label loss
    total: Tensor  # the sum over all subnets, which is what was back-propagated


def sandwich_step(
    net: nn.Module,
    archs: list[Arch],
    images: Tensor,
    labels: Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    label_smoothing: float = 0.1,
    kd_temperature: float = 1.0,
    student_label_weight: float = 0.0,
    channels_last: bool = False,
    bf16: bool = False,
    model: nn.Module | None = None,
    distill: bool = True,
) -> StepLosses:
    """Forward and backward every subnet in ``archs`` (the first is the teacher), then one optimizer step.

    ``model``, when given, is what runs the forward passes (a ``DistributedDataParallel`` wrapping ``net``);
    ``net`` is where the subnet is selected. Without ``distill`` every subnet learns from the labels alone,
    and the first is no teacher (uniform sampling)."""
    optimizer.zero_grad(set_to_none=True)
    cast = autocast(images.device, bf16)
    model = net if model is None else model
    no_sync = getattr(model, "no_sync", None)
    teacher_logits: Tensor | None = None
    largest = total = images.new_zeros(())
    for i, arch in enumerate(archs):
        net.set_active(arch)
        x = at_resolution(images, arch.resolution, channels_last)
        deferred = no_sync() if no_sync is not None and i < len(archs) - 1 else contextlib.nullcontext()
        with deferred:
            with cast:
                logits = model(x)
            if i == 0 or not distill:
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
                if i == 0:
                    teacher_logits = logits.detach()
                    largest = loss.detach()
            else:
                loss = distillation_loss(logits, teacher_logits, kd_temperature)
                if student_label_weight:
                    label_loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
                    loss = (1 - student_label_weight) * loss + student_label_weight * label_loss
            loss.backward()
        total = total + loss.detach()
    optimizer.step()
    return StepLosses(largest=largest, total=total)
