"""``retrain_model``: one network trained from scratch with the fixed recipe, resumable, into its own folder.

::

    RUN/retrain/<arch_id>/plan.json           the job, budget, recipe, seed and step plan (written first)
    RUN/retrain/<arch_id>/checkpoint.pt       model, EMA, optimizer, scheduler, step, batch stream, RNGs
    RUN/retrain/<arch_id>/weights.safetensors the EMA weights (``build(arch, num_classes)``'s state dict)
    RUN/retrain/<arch_id>/result.json         written last: its presence means the model is finished

The steps run in the shared loop (``nasbench.training.steps``): a budget in epochs or steps is a step count
directly; a time budget is turned into one by timing a few steps on throwaway state. The plan is saved
before the first step, so a run killed at any point resumes from its last checkpoint and ends bitwise where
an uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress
from safetensors.torch import save_file

from nasbench.atomic import atomic_path, write_json
from nasbench.budget import EPOCHS, STEPS, WALL_TIME, Budget, BudgetClock, require_kind
from nasbench.build import build
from nasbench.data import DeviceData, ImageDataset
from nasbench.errors import NasbenchError
from nasbench.retrain.pick import Job, cost_of
from nasbench.retrain.recipe import RetrainConfig, WeightEma, mix_batch, one_hot, soft_cross_entropy
from nasbench.seeds import fork
from nasbench.training.evaluate import accuracy
from nasbench.training.optim import dynconv_temperature, make_optimizer, set_temperature
from nasbench.training.sandwich import autocast
from nasbench.training.state import BatchStream, load_checkpoint, seed_everything
from nasbench.training.steps import TIMING_SEED, Session, plan_steps, run_steps

PLAN_FILE, CHECKPOINT_FILE = "plan.json", "checkpoint.pt"
WEIGHTS_FILE, RESULT_FILE = "weights.safetensors", "result.json"


def retrain_data(dataset: ImageDataset, device: str | torch.device = "cpu") -> tuple[DeviceData, DeviceData]:
    """The dataset's whole training split (retraining holds nothing out) and its test split, on ``device``."""
    stats = {"mean": dataset.mean, "std": dataset.std, "device": device}
    return (
        DeviceData(dataset.train_x, dataset.train_y, **stats),
        DeviceData(dataset.test_x, dataset.test_y, **stats),
    )


@dataclass
class _Trainer:
    """The mutable state of one model's training (a ``StepTask`` of ``nasbench.training.steps``)."""

    model: torch.nn.Module
    ema: WeightEma
    optimizer: torch.optim.Optimizer
    stream: BatchStream
    mix: torch.Generator
    config: RetrainConfig
    num_classes: int
    device: torch.device

    def step(self, step: int, total: int) -> torch.Tensor:
        c = self.config
        self.model.train()
        set_temperature(
            self.model, dynconv_temperature(step, total=total, start=c.dynconv_temperature, anneal=c.dynconv_anneal)
        )
        images, labels = self.stream.next()
        images, targets = mix_batch(images, one_hot(labels, self.num_classes), c, self.mix)
        with autocast(self.device, c.bf16):
            logits = self.model(images).float()
        loss = soft_cross_entropy(logits, targets, c.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.ema.update(self.model, step)
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stream": self.stream.state_dict(),
            "mix": self.mix.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        self.mix.set_state(state["mix"])

    def throwaway(self) -> _Trainer:
        c = self.config
        stream = BatchStream(
            self.stream.data, c.batch_size, self.stream.resolution, seed=TIMING_SEED, channels_last=c.channels_last
        )
        mix = torch.Generator().manual_seed(TIMING_SEED)
        optimizer = make_optimizer(self.model, c)
        return _Trainer(self.model, self.ema, optimizer, stream, mix, c, self.num_classes, self.device)


def retrain_model(
    job: Job,
    train: DeviceData,
    test: DeviceData,
    num_classes: int,
    budget: Budget,
    out_dir: str | Path,
    *,
    config: RetrainConfig = RetrainConfig(),
    seed: int = 0,
    context: dict[str, Any] | None = None,
    bar: Progress | None = None,
) -> dict[str, Any]:
    """Train ``job``'s architecture from scratch on ``train`` and report its EMA weights' top-1 on ``test``.

    Skips a finished model (returns its stored result); continues one with a checkpoint. ``context``
    (e.g. the run id and data name) is stored in the result. Returns the result as written.
    """
    require_kind(budget, (WALL_TIME, STEPS, EPOCHS), "retraining (a per-model budget)")
    out = Path(out_dir)
    identity = {"job": job.to_dict(), "budget": str(budget), "recipe": config.to_dict(), "seed": seed}
    _refuse_other_settings(out, identity)  # before a stored result is reused: it must be this model's
    if (out / RESULT_FILE).is_file():
        return json.loads((out / RESULT_FILE).read_text())
    trainer = _build(job, train, num_classes, config, seed)
    plan = _open_plan(out, identity, trainer, budget, len(train))
    state = load_checkpoint(out / CHECKPOINT_FILE) if (out / CHECKPOINT_FILE).is_file() else None
    session = run_steps(
        trainer,
        out / CHECKPOINT_FILE,
        total=plan["total_steps"],
        warmup=plan["warmup_steps"],
        state=state,
        bar=bar,
        description=_label(job),
    )
    result = _finish(job, trainer, test, plan, session, identity, context or {})
    _write_weights(out / WEIGHTS_FILE, trainer.ema.module, job)
    write_json(out / RESULT_FILE, result)
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    return result


def _label(job: Job) -> str:
    return f"{job.role} {job.reference or job.arch_id}"


def _build(job: Job, train: DeviceData, num_classes: int, config: RetrainConfig, seed: int) -> _Trainer:
    arch, device = job.arch, train.device
    if config.batch_size > len(train):
        raise NasbenchError(f"batch size {config.batch_size} is larger than the {len(train)} training images")
    seed_everything(seed)  # initial weights come from torch's global generator
    model = build(arch, num_classes, drop_path=config.drop_path, dropout=config.dropout).to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    stream = BatchStream(train, config.batch_size, arch.resolution, seed=seed, channels_last=config.channels_last)
    mix = torch.Generator().manual_seed(fork(seed, "retrain-mix"))  # apart from the data order
    optimizer = make_optimizer(model, config)  # duck-typed: reads optimizer, lr, momentum, weight_decay
    return _Trainer(model, WeightEma(model, config.ema_decay), optimizer, stream, mix, config, num_classes, device)


def _open_plan(out: Path, identity: dict[str, Any], trainer: _Trainer, budget: Budget, images: int) -> dict[str, Any]:
    """The stored plan when it is this model's with the same budget and recipe; else a new one, written
    before any checkpoint can exist. A folder planned with other settings is refused, not mixed."""
    path = out / PLAN_FILE
    stored = _refuse_other_settings(out, identity)
    if stored is not None:
        return stored["plan"]
    per_epoch = images // trainer.config.batch_size
    steps = plan_steps(trainer, budget, BudgetClock(budget), per_epoch)  # a clock not started: timing is free
    plan = {
        "total_steps": steps.total_steps,
        "warmup_steps": round(trainer.config.warmup_share * steps.total_steps),
        "steps_per_epoch": per_epoch,
        "step_seconds": steps.step_seconds,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, {"identity": identity, "plan": plan})
    return plan


def _refuse_other_settings(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The folder's stored plan when it was made for ``identity`` (None when there is none); a folder made
    with other settings (budget, recipe, seed or architecture) is refused in one line, naming the budget."""
    path = out / PLAN_FILE
    if not path.is_file():
        if (out / RESULT_FILE).is_file():
            raise NasbenchError(f"{out} holds a result without its plan ({PLAN_FILE}); delete that folder to retrain")
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NasbenchError(f"{path} cannot be read ({e}); delete that folder to retrain this model") from None
    if stored.get("identity") != json.loads(json.dumps(identity)):
        raise NasbenchError(
            f"{out} holds a retraining with other settings (budget {stored.get('identity', {}).get('budget')},"
            f" asked {identity['budget']}); repeat them, or delete that folder to start this model afresh"
        )
    return stored


def _finish(
    job: Job,
    trainer: _Trainer,
    test: DeviceData,
    plan: dict[str, Any],
    session: Session,
    identity: dict[str, Any],
    context: dict[str, Any],
) -> dict[str, Any]:
    ema, arch, c = trainer.ema.module, job.arch, trainer.config
    set_temperature(ema, 1.0)  # the end of the annealing schedule, whatever the run's length
    top1, loss = accuracy(ema, test, arch.resolution, channels_last=c.channels_last, bf16=c.bf16)
    total, per_epoch = plan["total_steps"], plan["steps_per_epoch"]
    return {
        **context,
        "arch_id": job.arch_id,
        "arch": str(arch),
        "arch_json": json.loads(job.arch_json),
        "role": job.role,
        "reference": job.reference,
        "resolution": arch.resolution,
        "num_classes": trainer.num_classes,
        "test_top1": top1,
        "test_loss": loss,
        "test_images": len(test),
        "supernet_acc": job.supernet_acc,
        **cost_of(job, trainer.num_classes),
        "latency_ms": job.latency_ms,
        "latency_pred_ms": job.latency_pred_ms,
        "steps": total,
        "epochs": round(total / per_epoch, 3) if per_epoch else None,
        "seconds": round(session.run_seconds, 3),
        "resumed_at": session.resumed_at,
        "budget": identity["budget"],
        "seed": identity["seed"],
        "recipe": identity["recipe"],
        "weights": "ema",
        "device": str(trainer.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _write_weights(path: Path, model: torch.nn.Module, job: Job) -> None:
    """The model's state dict as safetensors (contiguous copies), written atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        metadata = {"arch_id": job.arch_id, "weights": "ema", "format": "nasbench-retrain-1"}
        save_file(tensors, str(tmp), metadata=metadata)
