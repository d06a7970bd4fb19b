"""The one resumable step loop: a step count planned from the budget, steps timed, run, checkpointed, restored.

Supernet training (``nasbench.training.loop``) and retraining (``nasbench.retrain.train``) both run here;
each gives a ``StepTask``, i.e. only what differs: how one step is made and what its state is. The loop
owns the rest: the warm-up/cosine scheduler, the global RNG states, the step counter and the wall time,
checkpoints on an interval and at the end, restoring from one, and the progress bar.

A run is a fixed number of steps. A steps or epochs budget gives it directly; a time budget is converted
once, at the start, by timing a few steps on throwaway state (the task's ``throwaway`` twin, then every
state put back) and dividing the time left by their mean. The timed steps come after untimed warm-up
steps that run until the step time settles: a GPU's first steps pay once for per-shape work (cuDNN plans,
allocator growth) and would plan a run of a few steps from them. Everything a step draws is a function of the
step and the seed, so a run resumed from a checkpoint ends bitwise where an uninterrupted one would.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from torch import Tensor

from nasbench.budget import EPOCHS, STEPS, Budget, BudgetClock, format_seconds
from nasbench.training.optim import make_scheduler
from nasbench.training.state import capture_rng, restore_rng, save_checkpoint

TIMING_SEED = 7919  # seeds the throwaway batches and draws of the timing steps (any fixed value)
TIMING_SHARE = 0.1  # the timing stops early once it has used this share of a time budget (at least 1 step)
WARMUP_SHARE = 0.1  # the untimed warm-up before it stops at this share of a time budget (at least 1 step)
WARMUP_MAX_STEPS = 20  # and after this many steps, settled or not
SETTLED = 0.25  # warm: the last two steps' mean is within this share of the two before's
TIME_MARGIN = 0.95  # share of a time budget planned for steps; the rest absorbs checkpoints and timing noise
REPLAN_SHARE = 0.1  # a time budget's run is re-planned once, from its own steps, after this share of them
REFRESH_SECONDS = 0.5  # the bar reads the loss (a host sync) at most this often, never every step


class StepSettings(Protocol):
    """The fields of a recipe the loop reads (``TrainConfig`` and ``RetrainConfig`` both have them)."""

    batch_size: int
    checkpoint_every: int
    timing_steps: int

    def to_dict(self) -> dict[str, Any]: ...


class StepTask(Protocol):
    """One training job as the loop sees it."""

    config: StepSettings
    optimizer: torch.optim.Optimizer  # the loop schedules its learning rate
    device: torch.device

    def step(self, i: int, total: int) -> Tensor:
        """Make optimizer step ``i`` (0-based) of ``total``; return its loss, detached, left on the device."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The task's part of a checkpoint (weights, optimizer, batch stream, its own generators)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def throwaway(self) -> StepTask:
        """A twin for timing: the same model, its own fresh optimizer, batches and draws seeded TIMING_SEED."""
        ...


class Consensus:
    """How the processes running one job agree on the timing's decisions: this one is a single process's.

    Data-parallel ranks (``nasbench.training.parallel``) step together, so each early stop of the warm-up
    or the timing, and the step time a plan is made from, must be the same on every rank."""

    step_time = "at their mean"  # which step time a plan is made from, as the plan's ``how`` says it

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank."""
        return flag

    def max(self, value: float) -> float:
        """The largest ``value`` over the ranks."""
        return value


LOCAL = Consensus()


@dataclass(frozen=True)
class StepPlan:
    """A run's step count, fixed at its start and saved with it."""

    total_steps: int
    step_seconds: float | None  # mean seconds of a timed step (time budgets only)
    budget_per_step: float  # budget units one step spends: 1 for steps, 1/epoch for epochs, 0 for time (clocked)
    how: str  # how the count was reached, for people
    replan_at: int | None = None  # time budgets: the step after which the count is re-planned from real steps


def plan_steps(
    task: StepTask, budget: Budget, clock: BudgetClock, steps_per_epoch: int, consensus: Consensus = LOCAL
) -> StepPlan:
    """The step count ``budget`` allows; a time budget times real steps first (on throwaway state), for
    at most ``TIMING_SHARE`` of what ``clock`` has left, and plans ``TIME_MARGIN`` of what is left after
    (data-parallel: at the slowest rank's step time)."""
    if budget.kind == STEPS:
        return StepPlan(budget.count, None, 1.0, "the budget in steps")
    if budget.kind == EPOCHS:
        how = f"{budget.count} x {steps_per_epoch} batches"
        return StepPlan(budget.count * steps_per_epoch, None, 1.0 / steps_per_epoch, how)
    share = clock.remaining / clock.devices
    timing = time_steps(
        task,
        task.config.timing_steps,
        max_seconds=TIMING_SHARE * share,
        warmup_seconds=WARMUP_SHARE * share,
        consensus=consensus,
    )
    step_seconds = consensus.max(timing.step_seconds)
    total = max(1, int(clock.remaining * TIME_MARGIN / (step_seconds * clock.devices)))
    how = (
        f"{TIME_MARGIN:.0%} of the budget left after {timing.warmup} warm-up steps and timing {timing.timed} steps, "
        f"{consensus.step_time}"
    )
    how += f"; re-planned once after {REPLAN_SHARE:.0%} of the steps, from what they cost"
    return StepPlan(total, step_seconds, 0.0, how, replan_at=max(1, round(REPLAN_SHARE * total)))


@dataclass(frozen=True)
class Timing:
    step_seconds: float  # mean seconds of the timed steps
    timed: int  # steps timed
    warmup: int  # untimed warm-up steps before them


def time_steps(
    task: StepTask,
    n: int,
    *,
    max_seconds: float = float("inf"),
    warmup_seconds: float = float("inf"),
    consensus: Consensus = LOCAL,
) -> Timing:
    """``n`` steps of ``task.throwaway()`` timed after untimed warm-up steps (``warm_up``), fewer when they
    would take more than ``max_seconds`` (at least one is timed).

    Every state of ``task`` and the global generators are put back afterwards. The mean, not the median:
    step times can be skewed (random subnets' sizes), and it is their sum that must fit the budget.
    """
    saved, rng = copy.deepcopy(task.state_dict()), capture_rng()
    probe = task.throwaway()
    try:
        warmup = warm_up(probe, task.device, n + WARMUP_MAX_STEPS, max_seconds=warmup_seconds, consensus=consensus)
        times, started = [], time.perf_counter()
        for i in range(warmup, warmup + n):
            times.append(_timed_step(probe, task.device, i, warmup + n))
            if consensus.any(time.perf_counter() - started > max_seconds):
                break
    finally:
        task.load_state_dict(saved)
        task.optimizer.zero_grad(set_to_none=True)
        restore_rng(rng)
    return Timing(statistics.mean(times), len(times), warmup)


def warm_up(
    probe: StepTask,
    device: torch.device,
    total: int,
    *,
    max_seconds: float = float("inf"),
    consensus: Consensus = LOCAL,
) -> int:
    """Untimed steps of ``probe`` until the step time settles (the mean of the last two steps within
    ``SETTLED`` of the two before's), ``WARMUP_MAX_STEPS`` were made, or ``max_seconds`` passed; at least
    one. Returns the number of steps made."""
    times, started = [], time.perf_counter()
    while len(times) < WARMUP_MAX_STEPS:
        times.append(_timed_step(probe, device, len(times), total))
        settled = len(times) >= 4 and abs(sum(times[-2:]) - sum(times[-4:-2])) <= SETTLED * sum(times[-4:-2])
        if consensus.any(time.perf_counter() - started > max_seconds or settled):
            break
    return len(times)


def _timed_step(task: StepTask, device: torch.device, i: int, total: int) -> float:
    begin = time.perf_counter()
    task.step(i, total)
    _sync(device)
    return time.perf_counter() - begin


@dataclass(frozen=True)
class Session:
    """What one ``run_steps`` call did."""

    resumed_at: int | None  # the checkpoint's step it started from, else None
    seconds: float  # wall seconds of this session's steps (checkpoints included)
    run_seconds: float  # the same over every session of the run (carried in checkpoints)
    images: int  # training images this session stepped through
    total: int  # the run's step count, as re-planned when it was


def run_steps(
    task: StepTask,
    checkpoint: Path | None,
    *,
    total: int,
    warmup: int,
    state: dict[str, Any] | None = None,
    clock: BudgetClock | None = None,
    budget_per_step: float = 0.0,
    bar: Progress | None = None,
    description: str = "",
    replan_at: int | None = None,
    on_replan: Callable[[int], None] | None = None,
    consensus: Consensus = LOCAL,
) -> Session:
    """Steps from ``state``'s (a checkpoint read by the caller; else 0) to ``total``, with a warm-up/cosine
    learning rate, checkpointing into ``checkpoint`` every ``task.config.checkpoint_every`` steps and at the
    end (None: no checkpoints, as on every data-parallel rank but the first). A ``clock`` is charged
    ``budget_per_step`` a step (time budgets charge themselves) and its budget and spending go into each
    checkpoint.

    ``replan_at`` (time budgets): after that step, the step count is planned again from what this session's
    steps cost the clock, so a run whose steps turn out dearer (or cheaper) than the timed ones still ends
    within its budget; ``on_replan(new_total)`` records it. A run resumed past that step keeps its count."""
    scheduler = make_scheduler(task.optimizer, warmup=warmup, total=total)
    start, seconds_before = _restore(task, scheduler, state) if state else (0, 0.0)
    every, batch = task.config.checkpoint_every, task.config.batch_size
    meter = _Meter(bar, description, total, start, batch, clock)
    started = time.perf_counter()
    spent_at_start = clock.spent if clock is not None else 0.0
    i = start
    while i < total:
        loss = task.step(i, total)
        scheduler.step()
        done = i = i + 1
        if clock is not None and budget_per_step:
            clock.add(budget_per_step)
        if done == replan_at and clock is not None and clock.budget.is_time and done > start:
            _sync(task.device)  # once a run: the steps so far have to have finished to be counted
            per_step = consensus.max((clock.spent - spent_at_start) / (done - start))  # data-parallel: the
            remaining = -consensus.max(-clock.remaining)  # slowest rank's cost, the least budget left: all agree
            new_total = done + int(remaining * TIME_MARGIN / per_step) if per_step > 0 else total
            if new_total != total:
                total = max(done, new_total)
                scheduler = make_scheduler(task.optimizer, warmup=warmup, total=total, step=scheduler.last_epoch)
                meter.retotal(total)
                if on_replan is not None:
                    on_replan(total)
        if checkpoint is not None and (done % every == 0 or done == total):
            run_seconds = seconds_before + time.perf_counter() - started
            _save(checkpoint, task, scheduler, done, run_seconds, clock)
        meter.update(done, loss)
    _sync(task.device)
    seconds = time.perf_counter() - started
    images = (total - start) * batch
    return Session(start if state else None, seconds, seconds_before + seconds, images, total)


def _save(path: Path, task: StepTask, scheduler: Any, step: int, seconds: float, clock: BudgetClock | None) -> None:
    common = {
        "step": step,
        "seconds": seconds,
        "scheduler": scheduler.state_dict(),
        "rng": capture_rng(),
        "config": task.config.to_dict(),
    }
    spending = {"budget": str(clock.budget), "spent": clock.spent} if clock is not None else {}
    save_checkpoint(path, {**common, **spending, **task.state_dict()})


def _restore(task: StepTask, scheduler: Any, state: dict[str, Any]) -> tuple[int, float]:
    task.load_state_dict(state)
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"])  # last: nothing restored after it draws from the global generators
    return int(state["step"]), float(state.get("seconds", 0.0))  # older supernet checkpoints kept no seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def progress_bar(show: bool) -> Progress:
    """A rich bar on stderr, one line per task: steps, img/s, loss, elapsed, and budget left or ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps · {task.fields[ips]} img/s · loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("· {task.fields[left]}"),
        console=Console(stderr=True),
        disable=not show,
    )


class _Meter:
    """The bar's figures, read from the device every ``REFRESH_SECONDS`` rather than every step: the loss
    is summed on the device and its mean over the window read once (one host sync per refresh)."""

    def __init__(
        self, bar: Progress | None, description: str, total: int, start: int, batch: int, clock: BudgetClock | None
    ) -> None:
        self.bar = bar if bar is not None and not bar.disable else None
        self.total, self.start, self.batch, self.clock = total, start, batch, clock
        self.task: TaskID | None = None
        if self.bar is not None:
            fields = {"loss": "-", "ips": "-", "left": self._left(start, None)}
            self.task = self.bar.add_task(description, total=total, completed=start, **fields)
        self.began = self.last = time.perf_counter()
        self.shown, self.loss_sum = start, None

    def update(self, done: int, loss: Tensor) -> None:
        if self.bar is None:
            return
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        now = time.perf_counter()
        if now - self.last < REFRESH_SECONDS and done < self.total:
            return
        steps = done - self.shown
        mean_loss = float(self.loss_sum) / steps  # the host sync, once per refresh
        now = time.perf_counter()
        ips = steps * self.batch / max(now - self.last, 1e-9)
        rate = (now - self.began) / (done - self.start)
        figures = {"loss": f"{mean_loss:.3f}", "ips": f"{ips:,.0f}", "left": self._left(done, rate)}
        self.bar.update(self.task, completed=done, **figures)
        self.shown, self.last, self.loss_sum = done, now, None

    def retotal(self, total: int) -> None:
        """The run was re-planned to ``total`` steps."""
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def _left(self, done: int, seconds_per_step: float | None) -> str:
        if self.clock is not None and self.clock.budget.is_time:
            return self.clock.describe_remaining()
        if seconds_per_step is None:
            return f"{self.total - done} steps left"
        return f"ETA {format_seconds((self.total - done) * seconds_per_step)}"
