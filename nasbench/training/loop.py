"""``train_supernet``: the training loop, its step plan, checkpoints and progress bar.

A run is a fixed number of steps. A steps or epochs budget gives it directly; a time budget is converted
once, at the start, by timing a few sandwich steps on the real model (then undone) and dividing the
budget by their mean time. The step count is saved with the run, so a resumed run ends at the same step
as an uninterrupted one, and the warm-up/cosine schedule, the temperature schedule and every random draw
are functions of the step and the seed alone.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nasbench.budget import DEVICE_TIME, EPOCHS, STEPS, WALL_TIME, Budget, BudgetClock, device_note, require_kind
from nasbench.data import DeviceData, ImageDataset, search_data
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace
from nasbench.supernet import Supernet
from nasbench.training import rundir
from nasbench.training.config import TrainConfig
from nasbench.training.optim import (
    dynconv_temperature,
    make_optimizer,
    make_scheduler,
    reorder_channels,
    resolve_warmup,
    set_temperature,
)
from nasbench.training.sandwich import sandwich_archs, sandwich_step
from nasbench.training.state import (
    BatchStream,
    capture_rng,
    load_checkpoint,
    load_sampler_state,
    restore_rng,
    sampler_state,
    save_checkpoint,
    seed_everything,
)

TIMING_SEED = 7919  # seeds the throwaway batches and subnets of the timing steps (any fixed value)
TIMING_SHARE = 0.1  # the timing stops early once it has used this share of a time budget (at least 1 step)
TIME_MARGIN = 0.95  # share of a time budget planned for steps; the rest absorbs checkpoints and timing noise
EMA = 0.9  # smoothing of the loss and throughput shown on the progress bar


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


@dataclass
class Trainer:
    """The mutable pieces of one training session, built once by ``train_supernet``."""

    space: SearchSpace
    config: TrainConfig
    net: Supernet
    optimizer: torch.optim.Optimizer
    stream: BatchStream
    sampler: random.Random
    device: torch.device

    def step(self, step: int, total: int) -> torch.Tensor:
        c = self.config
        set_temperature(
            self.net, dynconv_temperature(step, total=total, start=c.dynconv_temperature, anneal=c.dynconv_anneal)
        )
        images, labels = self.stream.next()
        archs = sandwich_archs(self.space, self.sampler, c.num_random)
        losses = sandwich_step(
            self.net,
            archs,
            images,
            labels,
            optimizer=self.optimizer,
            label_smoothing=c.label_smoothing,
            kd_temperature=c.kd_temperature,
            channels_last=c.channels_last,
            bf16=c.bf16,
        )
        return losses.largest

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


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
    dev = torch.device(device) if device is not None else default_device()
    train, val = _splits(data, config, seed, dev)
    out = Path(out_dir)
    identity = rundir.run_identity(space, rundir.data_identity(data, train, val), budget, seed, config)
    record = rundir.open_run(out, identity, resume=resume)  # raises before anything is written
    trainer = _build(space, data.num_classes, train, config, seed, dev)
    checkpoint_path = out / rundir.CHECKPOINT_FILE
    state = load_checkpoint(checkpoint_path) if record is not None and checkpoint_path.is_file() else None
    clock = BudgetClock(budget, spent_before=float(state["spent"]) if state else 0.0).start()
    plan = record.get("plan") if record is not None else None
    if plan is None:
        record = {"identity": identity, "origin": origin or {}, "environment": rundir.environment(dev, config)}
        plan = _start_run(out, record, trainer, budget, train, clock)
    note = device_note(budget, dev.type)
    if note and progress:
        Console(stderr=True).print(f"[yellow]{note}")
    scheduler = make_scheduler(trainer.optimizer, warmup=plan["warmup_steps"], total=plan["total_steps"])
    start = _restore(trainer, scheduler, state) if state else 0
    seconds, images = _run_steps(trainer, scheduler, clock, plan, start, checkpoint_path, progress)
    set_temperature(trainer.net, 1.0)  # the end of the annealing schedule, whatever the run's length
    clock.stop()
    result = TrainResult(
        supernet=trainer.net,
        train=train,
        val=val,
        out_dir=out,
        steps=plan["total_steps"],
        resumed_at=start if state else None,
        seconds=seconds,
        spent=clock.spent,
        images_per_second=images / seconds if seconds > 0 else 0.0,
        note=note,
    )
    if start < result.steps or not (out / rundir.RESULT_FILE).is_file():
        rundir.write_json(out / rundir.RESULT_FILE, _result_record(result, budget))
    return result


def _splits(data: ImageDataset, config: TrainConfig, seed: int, device: torch.device) -> tuple[DeviceData, DeviceData]:
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
    rundir.write_json(out / rundir.CONFIG_FILE, record)
    plan = plan_steps(trainer, budget, train, clock)
    rundir.write_json(out / rundir.CONFIG_FILE, {**record, "plan": plan})
    return plan


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def _build(
    space: SearchSpace, num_classes: int, train: DeviceData, config: TrainConfig, seed: int, device: torch.device
) -> Trainer:
    seed_everything(seed)  # the supernet's initial weights come from torch's global generator
    net = Supernet(space, num_classes=num_classes).to(device)
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    stream = BatchStream(
        train, config.batch_size, max(space.resolutions), seed=seed, channels_last=config.channels_last
    )
    return Trainer(space, config, net, make_optimizer(net, config), stream, random.Random(seed), device)


def plan_steps(trainer: Trainer, budget: Budget, train: DeviceData, clock: BudgetClock) -> dict[str, Any]:
    """The run's fixed step count (and warm-up), from the budget; time budgets time real steps first."""
    config = trainer.config
    per_step = 1.0  # budget units one step spends: 1 for steps, a fraction of an epoch, 0 for time (clocked)
    if budget.kind == STEPS:
        total, how, step_seconds = budget.count, "the budget in steps", None
    elif budget.kind == EPOCHS:
        per_epoch = train.batches_per_epoch(config.batch_size)
        total, how, step_seconds = budget.count * per_epoch, f"{budget.count} x {per_epoch} batches", None
        per_step = 1.0 / per_epoch
    else:
        per_step = 0.0
        limit = TIMING_SHARE * clock.remaining / clock.devices
        step_seconds, timed = time_steps(trainer, config.timing_steps, max_seconds=limit)
        total = max(1, int(clock.remaining * TIME_MARGIN / (step_seconds * clock.devices)))
        how = f"{TIME_MARGIN:.0%} of the budget left after timing {timed} steps, at their mean"
    return {
        "total_steps": total,
        "warmup_steps": resolve_warmup(config, total),
        "step_seconds": step_seconds,
        "budget_per_step": per_step,
        "how": how,
    }


def time_steps(trainer: Trainer, n: int, *, max_seconds: float = float("inf")) -> tuple[float, int]:
    """(mean seconds per sandwich step, steps timed): ``n`` steps after one untimed warm-up step, fewer
    when they would take more than ``max_seconds`` (at least one is timed).

    It runs on throwaway state: the weights, BN statistics and every generator are put back afterwards,
    and the optimizer and batch stream used here are separate ones. The mean, not the median: step times
    are skewed by the random subnets' sizes, and it is their sum that must fit the budget.
    """
    config = trainer.config
    weights = copy.deepcopy(trainer.net.state_dict())
    rng = capture_rng()
    probe = Trainer(
        trainer.space,
        config,
        trainer.net,
        make_optimizer(trainer.net, config),
        BatchStream(
            trainer.stream.data,
            config.batch_size,
            trainer.stream.resolution,
            seed=TIMING_SEED,
            channels_last=config.channels_last,
        ),
        random.Random(TIMING_SEED),
        trainer.device,
    )
    times, started = [], time.perf_counter()
    try:
        for i in range(n + 1):
            begin = time.perf_counter()
            probe.step(i, n + 1)
            probe.sync()
            times.append(time.perf_counter() - begin)
            if len(times) >= 2 and time.perf_counter() - started > max_seconds:
                break
    finally:
        trainer.net.load_state_dict(weights)
        trainer.optimizer.zero_grad(set_to_none=True)
        restore_rng(rng)
    return statistics.mean(times[1:]), len(times) - 1


def _restore(trainer: Trainer, scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any]) -> int:
    trainer.net.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    trainer.stream.load_state_dict(state["stream"])
    load_sampler_state(trainer.sampler, state["sampler"])
    restore_rng(state["rng"])
    return int(state["step"])


def _checkpoint(trainer: Trainer, scheduler: Any, step: int, clock: BudgetClock, path: Path) -> None:
    save_checkpoint(
        path,
        {
            "step": step,
            "model": trainer.net.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "stream": trainer.stream.state_dict(),
            "sampler": sampler_state(trainer.sampler),
            "rng": capture_rng(),
            "config": trainer.config.to_dict(),
            "budget": str(clock.budget),
            "spent": clock.spent,
        },
    )


def _run_steps(
    trainer: Trainer,
    scheduler: Any,
    clock: BudgetClock,
    plan: dict[str, Any],
    start: int,
    checkpoint_path: Path,
    show: bool,
) -> tuple[float, int]:
    """Steps ``start`` .. total-1, checkpointing on the interval and at the end; returns (seconds, images)."""
    total, config = plan["total_steps"], trainer.config
    bar = _progress_bar(show)
    task = bar.add_task("supernet", total=total, completed=start, loss="-", ips="-", budget=_left(clock, total, start))
    seconds, images, loss_avg, ips_avg = 0.0, 0, None, None
    with bar:
        for step in range(start, total):
            begin = time.perf_counter()
            loss = trainer.step(step, total)
            scheduler.step()
            done = step + 1
            if plan["budget_per_step"]:
                clock.add(plan["budget_per_step"])
            if config.reorder_every and done % config.reorder_every == 0 and done < total:
                reorder_channels(trainer.net, trainer.optimizer)
            if done % config.checkpoint_every == 0 or done == total:
                _checkpoint(trainer, scheduler, done, clock, checkpoint_path)
            elapsed = time.perf_counter() - begin
            seconds, images = seconds + elapsed, images + config.batch_size
            loss_avg = _ema(loss_avg, float(loss))
            ips_avg = _ema(ips_avg, config.batch_size / elapsed)
            bar.update(task, advance=1, loss=f"{loss_avg:.3f}", ips=f"{ips_avg:,.0f}", budget=_left(clock, total, done))
    return seconds, images


def _ema(avg: float | None, value: float) -> float:
    return value if avg is None else EMA * avg + (1 - EMA) * value


def _left(clock: BudgetClock, total: int, done: int) -> str:
    if clock.budget.is_time:
        return clock.describe_remaining()
    return f"{total - done} steps left"


def _progress_bar(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps · {task.fields[ips]} img/s · loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("· {task.fields[budget]}"),
        console=Console(stderr=True),
        disable=not show,
    )


def _result_record(result: TrainResult, budget: Budget) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "resumed_at": result.resumed_at,
        "session_seconds": round(result.seconds, 3),
        "images_per_second": round(result.images_per_second, 1),
        "budget": str(budget),
        "spent": round(result.spent, 3),
        "spent_unit": {DEVICE_TIME: "device-seconds", WALL_TIME: "seconds"}.get(budget.kind, budget.kind),
        "note": result.note,
    }
