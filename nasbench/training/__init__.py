"""Supernet training: the sandwich rule with in-place distillation, BN recalibration, checkpoints, resume.

Public API::

    train_supernet(space, dataset, budget, out_dir, *, config=TrainConfig(), seed=0, device=None,
                   resume=False, progress=True) -> TrainResult
    TrainConfig(...)                                   # the recipe; each field says why its default
    evaluate(supernet, arch, train_data, val_data, *, bn_batches, batch_size, seed, ...) -> EvalResult
    evaluate_model(model, arch, train_data, val_data, ...) -> EvalResult     # any model, e.g. an export
    recalibrate_bn(model, batches, num_batches) -> int
    sandwich_step(net, archs, images, labels, *, optimizer, ...) / sandwich_archs / distillation_loss
    param_groups(model, weight_decay) / make_optimizer / warmup_cosine
    steps.run_steps(task, checkpoint, *, total, warmup, ...) -> Session   # the one resumable step loop

Modules: ``config`` (TrainConfig), ``optim`` (parameter groups, schedules, channel re-ordering),
``sandwich`` (one step), ``evaluate`` (BN recalibration, top-1), ``state`` (batch stream, RNG states,
atomic checkpoints), ``steps`` (the step loop shared with retraining: plan, timing, checkpoints, resume,
progress), ``rundir`` (the run folder and its identity), ``loop`` (``train_supernet``, the supernet's
``StepTask``).
"""

from nasbench.training.config import TrainConfig
from nasbench.training.evaluate import EvalResult, evaluate, evaluate_model, recalibrate_bn
from nasbench.training.loop import TrainResult, train_supernet
from nasbench.training.optim import make_optimizer, param_groups, warmup_cosine
from nasbench.training.sandwich import distillation_loss, sandwich_archs, sandwich_step

__all__ = [
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "distillation_loss",
    "evaluate",
    "evaluate_model",
    "make_optimizer",
    "param_groups",
    "recalibrate_bn",
    "sandwich_archs",
    "sandwich_step",
    "train_supernet",
    "warmup_cosine",
]
