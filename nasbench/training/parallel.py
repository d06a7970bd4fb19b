"""Data-parallel sandwich training: N ranks, one device each, PyTorch DDP; Ray Train starts and joins them.

What holds it together:

- **The same subnets on every rank.** Every rank builds the same ``CoverageSampler`` from the run's seed,
  so each step's largest, smallest and random subnets are the same everywhere, with no communication.
- **A shard of every batch.** Every rank draws the same global batch of ``workers x batch_size`` images
  (shuffle and augmentation from the same seeded generator) and keeps its own ``batch_size`` rows
  (``BatchStream(shard=...)``): together the ranks see exactly the batches one device would.
- **One all-reduce per step.** ``sandwich_step`` runs every subnet but the last under DDP's ``no_sync``;
  gradients accumulate locally and are averaged once, with the last backward.
- **Batch norm, deliberately.** ``local`` (the default) normalises each rank's batch by itself, as one
  device with ``--batch-size`` does, with no communication in the forward pass (plain DDP's way).
  ``sync`` normalises with the global batch's statistics (``synchronise_batch_norm``: one all-reduce per
  norm per subnet, forward and backward), so N ranks with batch B train exactly what one device with
  batch N x B trains; worth it when the per-rank batch is small, and it costs (on 2 CPU cores, gloo, the
  ``tiny`` space: 91 img/s against 162 with ``local``; ``bench/data_parallel.py``). The run records which.
- **One writer.** Rank 0 alone writes the plan, the checkpoints and the progress file; every rank
  resumes from rank 0's checkpoint, so a resumed run ends where an uninterrupted one would.
- **Device-time budgets.** A time budget is charged wall time x workers; the timing that plans the step
  count takes the slowest rank's step time, and every early stop of it is agreed by all ranks.

The engine (``nasbench.engines.ray_train``) starts the ranks with the process group set up and calls
``train_rank`` on each; ``train_data_parallel`` is the driver's side (``train_on_workers`` picks it or
``train_supernet``). Nothing here imports Ray.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.progress import Progress, TaskID

import nasbench.training.rundir as rundir
from nasbench.atomic import write_json
from nasbench.budget import DEVICE_TIME, EPOCHS, STEPS, WALL_TIME, Budget, BudgetClock, device_note, require_kind
from nasbench.data import ImageDataset
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace
from nasbench.supernet import Supernet
from nasbench.supernet.ops import synchronise_batch_norm
from nasbench.training.config import TrainConfig
from nasbench.training.coverage import coverage_table
from nasbench.training.loop import (
    TrainResult,
    build_trainer,
    plan_record,
    result_record,
    run_plan,
    train_supernet,
    training_splits,
)
from nasbench.training.optim import set_temperature
from nasbench.training.state import load_checkpoint, resolve_device
from nasbench.training.steps import Consensus, plan_steps, progress_bar

BATCH_NORM_MODES = ("sync", "local")
PROGRESS_FILE = "progress.json"  # rank 0's progress, read by the driver's bar


@dataclass(frozen=True)
class RankJob:
    """What every rank needs besides the data (which the engine ships once, by reference)."""

    space: SearchSpace
    budget: Budget
    out_dir: str
    config: TrainConfig
    seed: int
    batch_norm: str


class DistributedConsensus(Consensus):
    """Agreement over the default process group (a flag or a value all-reduced with MAX)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.step_time = f"at the mean of the slowest of {dist.get_world_size()} ranks"

    def any(self, flag: bool) -> bool:
        return self.max(1.0 if flag else 0.0) > 0.5

    def max(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())


def train_rank(job: RankJob, data: ImageDataset, device: torch.device) -> None:
    """One rank's whole run: build, agree on the plan, step, checkpoint (rank 0). Called by the engine on
    every rank with the default process group initialised."""
    rank, world = dist.get_rank(), dist.get_world_size()
    out, config = Path(job.out_dir), job.config
    if not (out / rundir.CONFIG_FILE).is_file():
        raise NasbenchError(
            f"this worker ({socket.gethostname()}) cannot see the run folder {out}; on a cluster the run folder "
            "must be on storage every node mounts at the same path"
        )
    train, _ = training_splits(data, config, job.seed, device)
    trainer = build_trainer(job.space, data.num_classes, train, config, job.seed, device, shard=(rank, world))
    synchronise_batch_norm(trainer.net, job.batch_norm == "sync")
    ids = [device.index] if device.type == "cuda" else None
    trainer.model = torch.nn.parallel.DistributedDataParallel(
        trainer.net, device_ids=ids, find_unused_parameters=True, broadcast_buffers=False
    )
    checkpoint_path = out / rundir.CHECKPOINT_FILE
    state = load_checkpoint(checkpoint_path) if checkpoint_path.is_file() else None
    clock = BudgetClock(job.budget, spent_before=float(state["spent"]) if state else 0.0, devices=world).start()
    plan = rundir.TrainingRecord.read(out).plan
    if plan is None:
        steps_per_epoch = train.batches_per_epoch(config.batch_size * world)
        steps = plan_steps(trainer, job.budget, clock, steps_per_epoch, DistributedConsensus(device))
        plan = plan_record(steps, config)
        if rank == 0:
            rundir.record_plan(out, plan)
    run_plan(
        trainer,
        plan,
        checkpoint_path if rank == 0 else None,
        state,
        clock,
        bar=_FileBar(out / PROGRESS_FILE) if rank == 0 else None,
        description=f"supernet x{world}",
        on_replan=partial(rundir.record_replan, out) if rank == 0 else None,
        consensus=DistributedConsensus(device),
    )
    dist.barrier()  # rank 0's last checkpoint is written before any rank reports done


def train_on_workers(
    space: SearchSpace,
    data: ImageDataset,
    budget: Budget,
    out_dir: str | Path,
    *,
    workers: int = 1,
    batch_norm: str = "local",
    ray_address: str | None = None,
    **settings: Any,
) -> TrainResult:
    """``train_supernet`` on one device, or ``train_data_parallel`` on ``workers`` > 1: the one choice the
    training command and a search's first phase make. ``settings``: both functions' other keywords."""
    if workers == 1:
        return train_supernet(space, data, budget, out_dir, **settings)
    return train_data_parallel(
        space, data, budget, out_dir, workers=workers, batch_norm=batch_norm, ray_address=ray_address, **settings
    )


def train_data_parallel(
    space: SearchSpace,
    data: ImageDataset,
    budget: Budget,
    out_dir: str | Path,
    *,
    workers: int,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_norm: str = "local",
    resume: bool = False,
    progress: bool = True,
    origin: dict[str, Any] | None = None,
    ray_address: str | None = None,
) -> TrainResult:
    """``train_supernet`` on ``workers`` ranks of one device each (``device``'s type: CUDA ranks get a GPU
    each, CPU ranks a core each), through Ray Train; ``batch_size`` is per rank. The run folder must be
    one every rank can read and write (a local run, or shared storage on a cluster)."""
    require_kind(budget, (DEVICE_TIME, WALL_TIME, STEPS, EPOCHS), "supernet training")
    if workers < 2:
        raise NasbenchError(f"--workers {workers}: data-parallel training needs at least 2; 1 is train_supernet")
    if batch_norm not in BATCH_NORM_MODES:
        raise NasbenchError(f"--batch-norm {batch_norm!r}: choose one of {', '.join(BATCH_NORM_MODES)}")
    if config.reorder_every:
        raise NasbenchError("channel re-ordering (reorder_every) is not supported with --workers; set it to 0")
    dev = resolve_device(device)
    train, val = training_splits(data, config, seed, dev)
    if config.batch_size * workers > len(train):
        raise NasbenchError(
            f"--workers {workers} x --batch-size {config.batch_size} is more than the {len(train)} training images"
        )
    out = Path(out_dir)
    identity = rundir.run_identity(space, rundir.data_identity(data, train, val), budget, seed, config)
    identity["parallel"] = {"workers": workers, "batch_norm": batch_norm, "global_batch": config.batch_size * workers}
    record = rundir.open_run(out, identity, resume=resume)
    checkpoint_path = out / rundir.CHECKPOINT_FILE
    before = load_checkpoint(checkpoint_path) if record is not None and checkpoint_path.is_file() else None
    fresh = not out.exists()
    claimed = record is not None

    def claim() -> None:
        """Write the run's record once Ray has the room for it (the ranks read it); nothing is written for a
        run the cluster cannot take."""
        nonlocal claimed
        if not claimed:
            environment = {**rundir.environment(dev, config), "workers": workers, "batch_norm": batch_norm}
            record = {"identity": identity, "origin": origin or {}, "environment": environment}
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / rundir.CONFIG_FILE, record)
            claimed = True
        (out / PROGRESS_FILE).unlink(missing_ok=True)

    job = RankJob(space, budget, str(out.resolve()), config, seed, batch_norm)
    from nasbench.engines.ray_train import run_ranks  # Ray only when asked for

    began = time.perf_counter()
    try:
        with progress_bar(progress) as bar:
            watcher = _ProgressWatcher(bar, out / PROGRESS_FILE, config.batch_size * workers)
            run_ranks(
                train_rank,
                job,
                data,
                workers=workers,
                use_gpu=dev.type == "cuda",
                temp_dir=out / "ray_tmp",
                address=ray_address,
                poll=watcher.poll,
                prepare=claim,
            )
            watcher.poll()
    except BaseException:
        if not claimed:  # refused before the run was claimed: leave no half-made folder behind
            shutil.rmtree(out / "ray_tmp", ignore_errors=True)
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
        raise
    (out / PROGRESS_FILE).unlink(missing_ok=True)
    wall = time.perf_counter() - began
    return _result(space, data, budget, out, dev, train, val, before, wall, workers)


def _result(
    space: SearchSpace,
    data: ImageDataset,
    budget: Budget,
    out: Path,
    dev: torch.device,
    train,
    val,
    before: dict[str, Any] | None,
    wall: float,
    workers: int,
) -> TrainResult:
    """The driver's copy of the trained supernet, from rank 0's last checkpoint, and the session's figures."""
    state = load_checkpoint(out / rundir.CHECKPOINT_FILE)
    net = Supernet(space, num_classes=data.num_classes).to(dev)
    net.load_state_dict(state["model"])
    set_temperature(net, 1.0)
    plan = rundir.TrainingRecord.read(out).plan
    start = int(before["step"]) if before else 0
    seconds = float(state["seconds"]) - (float(before.get("seconds", 0.0)) if before else 0.0)
    spent_before = float(before["spent"]) if before else 0.0
    images = (int(state["step"]) - start) * int(state["config"]["batch_size"]) * workers
    counts = state["sampler"]["counts"]
    result = TrainResult(
        supernet=net,
        train=train,
        val=val,
        out_dir=out,
        steps=plan["total_steps"],
        resumed_at=start if before else None,
        seconds=seconds,
        spent=float(state["spent"]),
        images_per_second=images / seconds if seconds > 0 else 0.0,
        coverage=coverage_table(counts, space),
        session_spent=float(state["spent"]) - spent_before,
        wall_seconds=wall,
        note=device_note(budget, dev.type),
    )
    if start < result.steps or not (out / rundir.RESULT_FILE).is_file():
        write_json(out / rundir.RESULT_FILE, {**result_record(result, budget), "workers": workers})
    return result


class _FileBar:
    """Rank 0's progress bar: the figures ``run_steps`` shows (at most twice a second), written to a file
    the driver reads; it has the two methods of ``rich.progress.Progress`` that the loop calls."""

    disable = False

    def __init__(self, path: Path) -> None:
        self.path, self.fields = path, {}

    def add_task(self, description: str, total: int, completed: int, **fields: Any) -> TaskID:
        self.fields = {"description": description, "total": total, "completed": completed, **fields}
        write_json(self.path, self.fields)
        return TaskID(0)

    def update(self, task: TaskID, completed: int | None = None, **fields: Any) -> None:
        self.fields.update(fields)
        if completed is not None:
            self.fields["completed"] = completed
        write_json(self.path, self.fields)


class _ProgressWatcher:
    """The driver's bar, following rank 0's progress file; images per second of the global batch."""

    def __init__(self, bar: Progress, path: Path, global_batch: int) -> None:
        self.bar, self.path, self.global_batch = bar, path, global_batch
        self.task: TaskID | None = None
        self.last: tuple[int, float] | None = None

    def poll(self) -> None:
        try:
            fields = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        done, now = int(fields["completed"]), time.perf_counter()
        if self.task is None:
            self.task = self.bar.add_task(fields["description"], total=fields["total"], completed=done, ips="-",
                                          loss="-", left="")  # fmt: skip
        figures = {k: fields[k] for k in ("loss", "left") if k in fields}
        if self.last is not None and done > self.last[0]:
            figures["ips"] = f"{(done - self.last[0]) * self.global_batch / (now - self.last[1]):,.0f}"
        if self.last is None or done > self.last[0]:
            self.last = (done, now)
        self.bar.update(self.task, completed=done, total=fields["total"], **figures)
