"""``TrainConfig``: the supernet-training recipe, one field per choice, each with the reason for its default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from nasbench.errors import NasbenchError

OPTIMIZERS = ("sgd-nesterov", "adamw")
DEFAULT_LR = {"sgd-nesterov": 0.1, "adamw": 2e-3}  # SGD: short budgets gain from a high peak
DEFAULT_WEIGHT_DECAY = {"sgd-nesterov": 5e-4, "adamw": 0.05}
TEACHER_RESOLUTIONS = ("cycle", "largest")
# What a recorded run that predates a field did, where that is not the field's default today: a record without
# the field is read with this value, so an older run resumes (and is described) as it was trained.
LEGACY_DEFAULTS = {"teacher_resolution": "largest", "sampling": "sandwich"}
SAMPLINGS = ("sandwich", "uniform")


class DictConfig:
    """``to_dict``/``from_dict`` for the frozen config dataclasses stored with runs (``LABEL`` names them)."""

    LABEL = "config"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NasbenchError(f"{cls.LABEL} has unknown fields {unknown}; valid are {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    """How a supernet is trained. ``None`` means "the default for the chosen optimizer" (lr, weight decay) or
    "a share of the run" (warm-up); the run folder records the resolved values."""

    LABEL = "training config"  # names it in from_dict's errors (not a field)
    # Images per step; every subnet of the sandwich sees the same batch (BigNAS). Small: at a fixed budget a
    # supernet needs many updates more than large batches (bench/supernet_coverage.py: on digits, 515 steps
    # of 32 made random subnets reach 0.83x the largest's accuracy, 228 steps of 64 0.66x).
    batch_size: int = 32
    lr: float | None = None  # peak learning rate after warm-up; None: 0.1 for SGD, 2e-3 for AdamW
    optimizer: str = "sgd-nesterov"  # OFA and BigNAS train supernets with SGD-Nesterov; AdamW suits attention
    momentum: float = 0.9  # SGD momentum, or AdamW's beta1
    weight_decay: float | None = None  # on conv/linear weights only; None: 5e-4 for SGD, 0.05 for AdamW
    warmup_steps: int | None = None  # linear warm-up from ~0 to the peak lr; None: 5% of the run's steps
    label_smoothing: float = 0.1  # on the largest subnet's hard-label loss only; the others distil (BigNAS)
    num_random: int = 2  # random subnets per step between the largest and the smallest (OFA, BigNAS: 2)
    train_smallest: bool = True  # the sandwich's lower bread: the smallest subnet every step (BigNAS)
    # The teacher's input resolution: "largest" (BigNAS), or "cycle": each of the space's resolutions in turn,
    # from the sampler's seeded cycle, as OFA trains its full network at elastic resolution. At any resolution
    # the teacher trains all of its weights; it is two thirds of a step's compute, and the other subnets'
    # accuracy follows the steps a run gets through, not the teacher's accuracy (bench/supernet_coverage.py on
    # CIFAR-10: at 1,758 steps the median random architecture is 42.5% with a cycling teacher, 42.8% without;
    # in 10 minutes on two CPU cores, 3,174-3,450 steps instead of 2,716 give it 50.1-52.0% instead of 48.6%,
    # the largest at the largest resolution 62.3-65.1% against 65.3%, at the smallest 58-61% against 47.4%).
    teacher_resolution: str = "cycle"
    # "sandwich": the largest subnet learns from the labels and teaches the others (BigNAS, OFA). "uniform":
    # every step trains ``num_random`` subnets drawn as the coverage sampler draws them, each from the labels
    # alone, with no teacher and no smallest (single-path one-shot, Guo et al. 2020): about four times the
    # steps in a budget, and the ranking a search chooses by rather than the largest subnet's accuracy
    # (bench/macro_rank.py on NAS-Bench-Macro).
    sampling: str = "sandwich"
    kd_temperature: float = 1.0  # softening of the largest subnet's soft labels; BigNAS distils at 1
    # Share of the label loss in the other subnets' loss, the rest distilled from the largest: early in a short
    # run the largest is no teacher yet, and labels teach every subnet directly (0.5: +0.06 of the largest's
    # accuracy for the median random subnet at 228 steps; 1.0, labels only, was worse).
    student_label_weight: float = 0.5
    zero_init_residual: bool = True  # BigNAS: residual blocks start as identities, so every depth starts alike
    checkpoint_every: int = 200  # steps between checkpoints (one is always written at the end)
    bn_batches: int = 16  # training batches that re-estimate BN statistics before a subnet is evaluated
    channels_last: bool = True  # NHWC: faster depthwise and 1x1 convs with oneDNN (CPU) and cuDNN (GPU)
    bf16: bool = True  # bf16 autocast on CUDA (no loss scaling needed); CPU always runs float32
    # OFA re-orders hidden channels by importance between progressive-shrinking phases, so that a narrower
    # subnet starts from the most useful channels. The sandwich trains every width from the first step, so a
    # re-ordering mid-run would hand every narrower subnet other channels: off by default (BigNAS does none).
    reorder_every: int = 0  # steps between re-orderings; 0 = never
    dynconv_temperature: float = 30.0  # initial softmax temperature of dynamic convs, annealed to 1 (Chen et al.)
    dynconv_anneal: float = 0.1  # share of the run over which that temperature falls linearly to 1
    val_fraction: float = 0.1  # share of the training split held out for validation; never trained on
    timing_steps: int = 10  # steps timed (then undone) to turn a time budget into a fixed step count

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise NasbenchError(f"optimizer {self.optimizer!r} is not known; valid are {', '.join(OPTIMIZERS)}")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])
        _check(self)


def _check(c: TrainConfig) -> None:
    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise NasbenchError(f"training config: {name} must be {what}, got {getattr(c, name)!r}")

    positive_ints = ("batch_size", "bn_batches", "checkpoint_every", "timing_steps")
    for name in positive_ints:
        value = getattr(c, name)
        need(isinstance(value, int) and value >= 1, name, "a positive integer")
    for name in ("num_random", "reorder_every"):
        value = getattr(c, name)
        need(isinstance(value, int) and value >= 0, name, "a non-negative integer")
    need(c.warmup_steps is None or c.warmup_steps >= 0, "warmup_steps", "a non-negative integer or None")
    need(c.lr > 0, "lr", "positive")
    need(c.weight_decay >= 0, "weight_decay", "non-negative")
    need(0 <= c.momentum < 1, "momentum", "in [0, 1)")
    need(0 <= c.label_smoothing < 1, "label_smoothing", "in [0, 1)")
    need(c.teacher_resolution in TEACHER_RESOLUTIONS, "teacher_resolution", f"one of {', '.join(TEACHER_RESOLUTIONS)}")
    need(c.kd_temperature > 0, "kd_temperature", "positive")
    need(c.sampling in SAMPLINGS, "sampling", f"one of {', '.join(SAMPLINGS)}")
    need(c.sampling == "sandwich" or c.num_random >= 1, "num_random", "at least 1 with uniform sampling")
    need(0 <= c.student_label_weight <= 1, "student_label_weight", "in [0, 1]")
    need(c.dynconv_temperature >= 1, "dynconv_temperature", "at least 1")
    need(0 <= c.dynconv_anneal <= 1, "dynconv_anneal", "in [0, 1]")
    need(0 < c.val_fraction < 1, "val_fraction", "in (0, 1)")
