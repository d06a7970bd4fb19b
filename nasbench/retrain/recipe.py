"""The retraining recipe: one frozen ``RetrainConfig``, and its pieces (EMA of weights, mixup/cutmix, loss).

Every model of a comparison, found or hand-designed, is trained with exactly this recipe and the same
budget, so differences in test accuracy come from the architectures, not from tuning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasbench.errors import NasbenchError
from nasbench.training.config import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, DictConfig


@dataclass(frozen=True)
class RetrainConfig(DictConfig):
    """How a network is trained from scratch. ``None`` means "the default for the chosen optimizer"."""

    LABEL = "retraining recipe"  # names it in from_dict's errors (not a field)

    batch_size: int = 128  # images per step; CIFAR recipes use 128, small enough for a CPU step to stay short
    optimizer: str = "sgd-nesterov"  # SGD-Nesterov is the CIFAR/ImageNet ConvNet standard; AdamW for attention
    lr: float | None = None  # peak lr after warm-up; None: 0.1 for SGD (batch 128), 2e-3 for AdamW
    momentum: float = 0.9  # SGD momentum, or AdamW's beta1
    weight_decay: float | None = None  # conv/linear weights only; None: 5e-4 SGD (CIFAR), 0.05 AdamW
    warmup_share: float = 0.05  # linear warm-up over this share of the steps: stabilises the first updates
    label_smoothing: float = 0.1  # softens one-hot targets; +0.2-0.5% top-1 in EfficientNet-style recipes
    mixup_alpha: float = 0.0  # Beta(a, a) mixing of image pairs; 0 = off (short CPU budgets underfit already)
    cutmix_alpha: float = 0.0  # Beta(a, a) box pasting; 0 = off; when both are on, each batch picks one
    ema_decay: float = 0.9998  # EMA of weights (timm), warmed up as (1+t)/(10+t) so short runs track too
    drop_path: float = 0.1  # stochastic depth at the last block, linear in depth (EfficientNet uses 0.2)
    dropout: float = 0.1  # before the classifier (EfficientNet-B0 uses 0.2; small data, short runs: less)
    dynconv_temperature: float = 30.0  # dynamic convs' softmax temperature at step 0, annealed to 1 (Chen et al.)
    dynconv_anneal: float = 0.1  # share of the run over which that temperature falls linearly to 1
    channels_last: bool = True  # NHWC: faster depthwise and 1x1 convs with oneDNN (CPU) and cuDNN (GPU)
    bf16: bool = True  # bf16 autocast on CUDA; CPU always trains in float32
    checkpoint_every: int = 200  # steps between checkpoints (one is always written at the end)
    timing_steps: int = 5  # steps timed (on a throwaway copy) to turn a time budget into a step count

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise NasbenchError(f"optimizer {self.optimizer!r} is not known; valid are {', '.join(OPTIMIZERS)}")
        if self.lr is None:
            object.__setattr__(self, "lr", 0.1 if self.optimizer == "sgd-nesterov" else DEFAULT_LR["adamw"])
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])
        _check(self)


def _check(c: RetrainConfig) -> None:
    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise NasbenchError(f"retraining recipe: {name} must be {what}, got {getattr(c, name)!r}")

    for name in ("batch_size", "checkpoint_every", "timing_steps"):
        need(isinstance(getattr(c, name), int) and getattr(c, name) >= 1, name, "a positive integer")
    need(c.lr > 0, "lr", "positive")
    need(c.weight_decay >= 0, "weight_decay", "non-negative")
    need(0 <= c.momentum < 1, "momentum", "in [0, 1)")
    need(0 <= c.warmup_share < 1, "warmup_share", "in [0, 1)")
    need(0 <= c.label_smoothing < 1, "label_smoothing", "in [0, 1)")
    need(c.mixup_alpha >= 0, "mixup_alpha", "non-negative")
    need(c.cutmix_alpha >= 0, "cutmix_alpha", "non-negative")
    need(0 <= c.ema_decay < 1, "ema_decay", "in [0, 1)")
    need(0 <= c.drop_path < 1, "drop_path", "in [0, 1)")
    need(0 <= c.dropout < 1, "dropout", "in [0, 1)")
    need(c.dynconv_temperature >= 1, "dynconv_temperature", "at least 1")
    need(0 <= c.dynconv_anneal <= 1, "dynconv_anneal", "in [0, 1]")


# --- EMA of weights -------------------------------------------------------------------------------------


class WeightEma:
    """An exponential moving average of a model's parameters and float buffers (BN statistics), kept in a
    copy of the model; integer buffers (BN's batch counters) are copied.

    Written here rather than ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``: that
    one's decay is fixed, and with the usual 0.9998 a run of a few hundred CPU steps would report weights
    still mostly at their initialisation. The decay here warms up as ``min(decay, (1 + t) / (10 + t))``
    (timm's ``ModelEmaV3`` warm-up), a function of the step alone, so a resumed run matches.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = _frozen_copy(model)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model`` after optimizer step ``step`` (0-based)."""
        weight = 1.0 - self.decay_at(step)
        mine, theirs = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        torch._foreach_lerp_([mine[k] for k in floats], [theirs[k].detach() for k in floats], weight)
        for k, v in mine.items():
            if not v.is_floating_point():
                v.copy_(theirs[k])

    def state_dict(self) -> dict[str, Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.module.load_state_dict(state)


def _frozen_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


# --- mixup / cutmix -------------------------------------------------------------------------------------


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    return F.one_hot(labels, num_classes).float()


def mix_batch(
    images: Tensor, targets: Tensor, config: RetrainConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Mixup or cutmix of a batch with its reverse (timm's pairing), with probability-vector ``targets``.

    Written here because the library versions (torchvision ``MixUp``/``CutMix``) are not a dependency and
    draw from the global generator; these draw only from ``generator`` (saved in checkpoints). The targets
    are mixed in the proportion of pixels each image contributes, so every row still sums to 1.
    Returns the inputs unchanged when both alphas are 0.
    """
    modes = [m for m, a in (("mixup", config.mixup_alpha), ("cutmix", config.cutmix_alpha)) if a > 0]
    if not modes:
        return images, targets
    pick = int(torch.randint(len(modes), (1,), generator=generator)) if len(modes) > 1 else 0
    mode = modes[pick]
    alpha = config.mixup_alpha if mode == "mixup" else config.cutmix_alpha
    lam = _beta(alpha, generator)
    flipped_images, flipped_targets = images.flip(0), targets.flip(0)
    if mode == "mixup":
        mixed = images * lam + flipped_images * (1 - lam)
    else:
        mixed, lam = _paste_box(images, flipped_images, lam, generator)
    return mixed, targets * lam + flipped_targets * (1 - lam)


def _beta(alpha: float, generator: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw from ``generator``, as X / (X + Y) of two Gamma(alpha) draws."""
    gammas = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    return float(gammas[0] / gammas.sum())


def _paste_box(images: Tensor, others: Tensor, lam: float, generator: torch.Generator) -> tuple[Tensor, float]:
    """Cutmix: paste a box covering ~(1 - lam) of the area from ``others``; returns the exact kept share."""
    h, w = images.shape[-2:]
    cut_h, cut_w = round(h * (1 - lam) ** 0.5), round(w * (1 - lam) ** 0.5)
    cy = int(torch.randint(h, (1,), generator=generator))
    cx = int(torch.randint(w, (1,), generator=generator))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, w)
    mixed = images.clone()
    mixed[..., y0:y1, x0:x1] = others[..., y0:y1, x0:x1]
    return mixed, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def soft_cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float) -> Tensor:
    """Cross-entropy against probability targets, smoothed (``F.cross_entropy`` accepts both)."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
