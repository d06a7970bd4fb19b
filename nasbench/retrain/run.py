"""``retrain_run``: retrain a search run's Pareto winners and the space's reference networks, then report.

The run folder says which space, data and seed the search used; the winners come from its records. Models
train one after another in this process (``parallel=1``), or as parallel Ray Tune trials. Either way each
model resumes from its own checkpoint and finished models are skipped, so repeating the command after a
kill continues where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasbench.budget import EPOCHS, Budget, parse_budget
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.retrain.pick import Job, plan_jobs
from nasbench.retrain.recipe import RetrainConfig
from nasbench.retrain.report import retrain_dir, write_report
from nasbench.retrain.train import retrain_data, retrain_model
from nasbench.runs import RunDir
from nasbench.spaces import load_space
from nasbench.training.state import resolve_device
from nasbench.training.steps import progress_bar

DEFAULT_EPOCHS = 20  # when neither --epochs nor --budget is given


@dataclass(frozen=True)
class RetrainSettings:
    """Everything a worker needs to train one job of a run: plain data, so it pickles for Ray."""

    run_path: str
    data: str
    budget: str
    seed: int
    config: dict[str, Any]  # RetrainConfig.to_dict()
    device: str
    threads: int | None = None


def resolve_budget(budget: str | None, epochs: int | None) -> Budget:
    """``--epochs E`` or ``--budget B`` (a time per model, steps or epochs); not both."""
    if budget is not None and epochs is not None:
        raise NasbenchError("give --epochs or --budget, not both")
    if epochs is not None:
        if epochs < 1:
            raise NasbenchError(f"--epochs must be at least 1, got {epochs}")
        return Budget(EPOCHS, epochs)
    return parse_budget(budget) if budget is not None else Budget(EPOCHS, DEFAULT_EPOCHS)


def retrain_run(
    run: str | os.PathLike,
    *,
    top: int,
    budget: Budget,
    baselines: list[str] | None = None,
    config: RetrainConfig = RetrainConfig(),
    parallel: int = 1,
    device: str | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Retrain ``top`` winners of ``run`` and its baselines (default: the space's first reference), each
    within ``budget``; writes ``RUN/retrain/`` and returns the report (see ``nasbench.retrain.report``)."""
    if top < 1:
        raise NasbenchError(f"--top must be at least 1, got {top}")
    if parallel < 1:
        raise NasbenchError(f"--parallel must be at least 1, got {parallel}")
    handle = RunDir.open(run)
    space = load_space(handle.config["space"])
    jobs = plan_jobs(handle, space, top, baselines)
    dev = str(resolve_device(device))
    settings = RetrainSettings(
        run_path=str(handle.path.resolve()),
        data=str(handle.config["data"]),
        budget=str(budget),
        seed=int(handle.config.get("seed", 0)),
        config=config.to_dict(),
        device=dev,
    )
    retrain_dir(handle.path).mkdir(parents=True, exist_ok=True)
    if parallel == 1:
        train_sequentially(jobs, settings, progress)
    else:
        train_in_parallel(jobs, settings, parallel=parallel, address=ray_address)
    title = f"Retraining run {handle.run_id} ({space.name} on {settings.data}) from scratch"
    return write_report(handle.path, title=title)


def train_sequentially(jobs: list[Job], settings: RetrainSettings, progress: bool) -> list[dict[str, Any]]:
    dataset = load_dataset(settings.data)
    train, test = retrain_data(dataset, settings.device)
    with progress_bar(progress) as bar:
        return [_train_one(job, settings, train, test, dataset.num_classes, bar) for job in jobs]


def train_job(job: Job, settings: RetrainSettings) -> dict[str, Any]:
    """One job on its own (a Ray worker's entry point): loads the data, trains, returns the result."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    dataset = load_dataset(settings.data)
    train, test = retrain_data(dataset, settings.device)
    return _train_one(job, settings, train, test, dataset.num_classes, None)


def _train_one(job: Job, settings: RetrainSettings, train, test, num_classes: int, bar) -> dict[str, Any]:
    return retrain_model(
        job,
        train,
        test,
        num_classes,
        parse_budget(settings.budget),
        retrain_dir(settings.run_path) / job.arch_id,
        config=RetrainConfig.from_dict(settings.config),
        seed=settings.seed,
        context={"run": Path(settings.run_path).name, "data": settings.data},
        bar=bar,
    )


def train_in_parallel(jobs: list[Job], settings: RetrainSettings, *, parallel: int, address: str | None = None) -> None:
    """Train ``jobs`` as up to ``parallel`` concurrent Ray Tune trials (local Ray, or the cluster at
    ``address``), through the Ray adapter's parallel map. Each trial checkpoints into the run folder
    itself, so repeating a killed command resumes every model and skips finished ones. The CPUs are
    shared evenly between the trials (each sets torch's threads to its share); with GPUs, each trial
    asks for 1 / ``parallel`` of one, and trains on the GPU Ray gives it (its ``cuda``)."""
    from nasbench.engines import ray_tune  # the only module that imports Ray

    gpu = settings.device.startswith("cuda")
    threads = max(1, ray_tune.cpu_count() // parallel)
    resources = {"gpu": 1.0 / parallel} if gpu else {"cpu": threads}
    device = "cuda" if gpu else settings.device
    worker = _TrainOne(RetrainSettings(**{**settings.__dict__, "threads": threads, "device": device}))
    root = retrain_dir(settings.run_path)
    results = ray_tune.parallel_map(
        worker, jobs, parallel=parallel, resources=resources,
        temp_dir=root / "ray_tmp", tune_dir=root / "tune", address=address,
    )  # fmt: skip
    failures = [f"{job.arch_id}: {value}" for job, (ok, value) in zip(jobs, results, strict=True) if not ok]
    if failures:
        raise NasbenchError(f"retraining failed for {len(failures)} model(s): {'; '.join(failures)}")


@dataclass(frozen=True)
class _TrainOne:
    """``train_job`` with fixed settings, picklable for the workers; returns the test top-1."""

    settings: RetrainSettings

    def __call__(self, job: Job) -> float:
        return train_job(job, self.settings)["test_top1"]
