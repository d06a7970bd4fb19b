"""``train_supernet``: the supernet's training run, as a ``StepTask`` of the shared step loop.

The loop (``nasbench.training.steps``) plans the run's fixed step count from the budget (a time budget by
timing a few sandwich steps on the real model, then undone), checkpoints, resumes and shows progress. The
plan is saved with the run, so a resumed run ends at the same step as an uninterrupted one, and the
warm-up/cosine schedule, the temperature schedule and every random draw are functions of the step and the
seed alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

import nasbench.training.rundir as rundir
from nasbench.atomic import write_json
from nasbench.budget import DEVICE_TIME, EPOCHS, STEPS, WALL_TIME, Budget, BudgetClock, device_note, require_kind
from nasbench.data import DeviceData, ImageDataset, search_data
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace
from nasbench.supernet import Supernet
from nasbench.training.config import TrainConfig
from nasbench.training.coverage import CoverageSampler, coverage_table
from nasbench.training.optim import (
    dynconv_temperature,
    make_optimizer,
    reorder_channels,
    resolve_warmup,
    set_temperature,
)
from nasbench.training.sandwich import sandwich_archs, sandwich_step
from nasbench.training.state import BatchStream, load_checkpoint, resolve_device, seed_everything
from nasbench.training.steps import (
    LOCAL,
    TIMING_SEED,
    Consensus,
    Session,
    StepPlan,
    plan_steps,
    progress_bar,
    run_steps,
)


@dataclass
class TrainResult:
    """A trained supernet and the splits it was trained and is to be validated on."""

    supernet: Supernet
    train: DeviceData
    val: DeviceData
    out_dir: Path
    steps: int  # the run's planned and completed step count
    resumed_at: int | None  # the step a resumed run started from, else None
    seconds: float  # wall time of this session's training steps
    spent: float  # budget spent by the whole run, in the budget's unit (device-seconds, seconds, steps, epochs)
    images_per_second: float  # training images per second over this session (each seen by every subnet)
    note: str | None = None  # how the budget was counted, when that needs saying (gpu-h without a GPU)
    coverage: dict[str, dict[str, int]] | None = None  # how often each choice of each dimension was trained
    session_spent: float = 0.0  # budget this session spent (timing, steps, checkpoints), in the budget's unit
    wall_seconds: float = 0.0  # this session's wall time, from the clock's start to its stop (perf_counter)


@dataclass
class Trainer:
    """The mutable pieces of one training session (a ``StepTask`` of ``nasbench.training.steps``)."""

    space: SearchSpace
    config: TrainConfig
    net: Supernet
    optimizer: torch.optim.Optimizer
    stream: BatchStream
    sampler: CoverageSampler
    device: torch.device
    reorder: bool = True  # OFA's channel re-ordering every ``config.reorder_every`` steps (off while timing)
    model: torch.nn.Module | None = None  # what runs the forward passes, when not ``net`` (data-parallel: DDP)

    def step(self, step: int, total: int) -> torch.Tensor:
        c = self.config
        set_temperature(
            self.net, dynconv_temperature(step, total=total, start=c.dynconv_temperature, anneal=c.dynconv_anneal)
        )
        images, labels = self.stream.next()
        sandwich = c.sampling == "sandwich"
        archs = sandwich_archs(
            self.space,
            self.sampler,
            c.num_random,
            smallest=c.train_smallest,
            teacher_resolution=c.teacher_resolution,
            teacher=sandwich,
        )
        for arch in archs:
            self.sampler.count(arch)
        losses = sandwich_step(
            self.net,
            archs,
            images,
            labels,
            optimizer=self.optimizer,
            label_smoothing=c.label_smoothing,
            kd_temperature=c.kd_temperature,
            student_label_weight=c.student_label_weight,
            channels_last=c.channels_last,
            bf16=c.bf16,
            model=self.model,
            distill=sandwich,
        )
        done = step + 1
        if self.reorder and c.reorder_every and done % c.reorder_every == 0 and done < total:
            reorder_channels(self.net, self.optimizer)
        return losses.largest

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stream": self.stream.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        self.sampler.load_state_dict(state["sampler"])

    def throwaway(self) -> Trainer:
        c = self.config
        stream = BatchStream(
            self.stream.data,
            c.batch_size,
            self.stream.resolution,
            seed=TIMING_SEED,
            channels_last=c.channels_last,
            shard=self.stream.shard,
        )
        optimizer, sampler = make_optimizer(self.net, c), CoverageSampler(self.space, TIMING_SEED)
        twin = Trainer(self.space, c, self.net, optimizer, stream, sampler, self.device, reorder=False)
        twin.model = self.model
        return twin


def train_supernet(
    space: SearchSpace,
    data: ImageDataset,
    budget: Budget,
    out_dir: str | Path,
    *,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    device: str | torch.device | None = None,
    resume: bool = False,
    progress: bool = True,
    origin: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a ``Supernet`` of ``space`` on ``data``'s training split (less the validation share) with the
    sandwich rule and in-place distillation, checkpointing into ``out_dir``.

    ``budget`` is a time (``10min``, ``1gpu-h``), ``500steps`` or ``3epochs``. With ``resume``, a run
    killed earlier continues from its last checkpoint and ends exactly where an uninterrupted run would.
    ``origin`` (e.g. the command's ``--space`` and ``--data`` as given) is recorded with the run.
    """
    require_kind(budget, (DEVICE_TIME, WALL_TIME, STEPS, EPOCHS), "supernet training")
    dev = resolve_device(device)
    train, val = training_splits(data, config, seed, dev)
    out = Path(out_dir)
    identity = rundir.run_identity(space, rundir.data_identity(data, train, val), budget, seed, config)
    record = rundir.open_run(out, identity, resume=resume)  # raises before anything is written
    trainer = build_trainer(space, data.num_classes, train, config, seed, dev)
    checkpoint_path = out / rundir.CHECKPOINT_FILE
    state = load_checkpoint(checkpoint_path) if record is not None and checkpoint_path.is_file() else None
    clock = BudgetClock(budget, spent_before=float(state["spent"]) if state else 0.0).start()
    spent_before, began = clock.spent_before, time.perf_counter()
    plan = record.get("plan") if record is not None else None
    if plan is None:
        record = {"identity": identity, "origin": origin or {}, "environment": rundir.environment(dev, config)}
        plan = _start_run(out, record, trainer, budget, train, clock)
    note = device_note(budget, dev.type)
    if note and progress:
        Console(stderr=True).print(f"[yellow]{note}")
    session = _train(trainer, plan, state, clock, checkpoint_path, progress)
    plan = {**plan, "total_steps": session.total}
    set_temperature(trainer.net, 1.0)  # the end of the annealing schedule, whatever the run's length
    clock.stop()
    wall = time.perf_counter() - began
    result = TrainResult(
        supernet=trainer.net,
        train=train,
        val=val,
        out_dir=out,
        steps=plan["total_steps"],
        resumed_at=session.resumed_at,
        seconds=session.seconds,
        spent=clock.spent,
        images_per_second=session.images / session.seconds if session.images else 0.0,
        note=note,
        coverage=coverage_table(trainer.sampler.counts, space),
        session_spent=clock.spent - spent_before,
        wall_seconds=wall,
    )
    if (session.resumed_at or 0) < result.steps or not (out / rundir.RESULT_FILE).is_file():
        write_json(out / rundir.RESULT_FILE, result_record(result, budget))
    return result


def _train(
    trainer: Trainer, plan: dict[str, Any], state: dict[str, Any] | None, clock: BudgetClock, path: Path, show: bool
) -> Session:
    with progress_bar(show) as bar:
        on_replan = partial(rundir.record_replan, path.parent)
        return run_plan(trainer, plan, path, state, clock, bar=bar, description="supernet", on_replan=on_replan)


def run_plan(
    trainer: Trainer,
    plan: dict[str, Any],
    checkpoint: Path | None,
    state: dict[str, Any] | None,
    clock: BudgetClock,
    *,
    bar: Any,
    description: str,
    on_replan: Callable[[int], None] | None,
    consensus: Consensus = LOCAL,
) -> Session:
    """The step loop over a recorded plan (``plan_record``), here and on every data-parallel rank."""
    return run_steps(
        trainer,
        checkpoint,
        total=plan["total_steps"],
        warmup=plan["warmup_steps"],
        state=state,
        clock=clock,
        budget_per_step=plan["budget_per_step"],
        bar=bar,
        description=description,
        replan_at=plan.get("replan_at"),
        on_replan=on_replan,
        consensus=consensus,
    )


def plan_record(steps: StepPlan, config: TrainConfig) -> dict[str, Any]:
    """A step plan as the run record keeps it."""
    return {
        "total_steps": steps.total_steps,
        "warmup_steps": resolve_warmup(config, steps.total_steps),
        "step_seconds": steps.step_seconds,
        "budget_per_step": steps.budget_per_step,
        "how": steps.how,
        "replan_at": steps.replan_at,
    }


def training_splits(
    data: ImageDataset, config: TrainConfig, seed: int, device: torch.device
) -> tuple[DeviceData, DeviceData]:
    """The search's train/validation split (the one ``nasbench.data.search_data`` gives every phase)."""
    train, val = search_data(data, config.val_fraction, seed, device=device)
    if config.batch_size > len(train):
        raise NasbenchError(
            f"batch size {config.batch_size} is larger than the {len(train)} training images of {data.name}; "
            "use a smaller --batch-size"
        )
    return train, val


def _start_run(
    out: Path, record: dict[str, Any], trainer: Trainer, budget: Budget, train: DeviceData, clock: BudgetClock
) -> dict[str, Any]:
    """Claim the folder (the record goes first, so a second command sees the run even while it is being
    timed), plan the step count, and record the plan before any checkpoint can exist."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / rundir.CONFIG_FILE, record)
    steps = plan_steps(trainer, budget, clock, train.batches_per_epoch(trainer.config.batch_size))
    plan = plan_record(steps, trainer.config)
    rundir.record_plan(out, plan)
    return plan


@torch.no_grad()
def build_trainer(
    space: SearchSpace,
    num_classes: int,
    train: DeviceData,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    shard: tuple[int, int] = (0, 1),
) -> Trainer:
    seed_everything(seed)  # the supernet's initial weights come from torch's global generator
    net = Supernet(space, num_classes=num_classes).to(device)
    if config.zero_init_residual:
        zero_init_residuals(net)
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    stream = BatchStream(
        train, config.batch_size, max(space.resolutions), seed=seed, channels_last=config.channels_last, shard=shard
    )
    return Trainer(space, config, net, make_optimizer(net, config), stream, CoverageSampler(space, seed), device)


@torch.no_grad()
def zero_init_residuals(net: Supernet) -> None:
    """Make every block after a stage's first (those always add to a skip connection) start as the identity:
    the scale of its last batch norm at zero (attention: also its attention and MLP output projections), so a
    subnet of any depth starts as the same function (BigNAS, Yu et al. 2020, section 3.1)."""
    for stage in net.stages:
        for position in list(stage)[1:]:
            for block in position.values():
                block.zero_init_residual()  # each block knows its own last layers


def result_record(result: TrainResult, budget: Budget) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "resumed_at": result.resumed_at,
        "session_seconds": round(result.seconds, 3),  # the steps' wall time (checkpoints included)
        "session_wall_seconds": round(result.wall_seconds, 3),  # the session's, timing and set-up included
        "session_spent": round(result.session_spent, 3),  # what the budget was charged for that session
        "images_per_second": round(result.images_per_second, 1),
        "budget": str(budget),
        "spent": round(result.spent, 3),
        "spent_unit": {DEVICE_TIME: "device-seconds", WALL_TIME: "seconds"}.get(budget.kind, budget.kind),
        "note": result.note,
        "coverage": result.coverage,  # per dimension, how many subnets trained each choice (whole run)
    }
