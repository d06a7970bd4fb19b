"""Parallel retraining: each job is one item of ``nasbench.engines.ray_tune.parallel_map``.

Each item trains one job with ``nasbench.retrain.run.train_job`` (which checkpoints into the run folder
itself: a killed command, run again, resumes every model from its own checkpoint and skips finished ones).
The machine's CPUs are shared evenly between ``parallel`` concurrent trials (each sets torch's threads to
its share); with GPUs, each asks for 1 / ``parallel`` of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nasbench.errors import NasbenchError
from nasbench.retrain.pick import Job
from nasbench.retrain.run import RetrainSettings, train_job


def train_in_parallel(jobs: list[Job], settings: RetrainSettings, *, parallel: int, address: str | None = None) -> None:
    """Train ``jobs`` as up to ``parallel`` concurrent Tune trials (local Ray, or the cluster at ``address``)."""
    from nasbench.engines import ray_tune  # the only module that imports Ray

    gpu = settings.device.startswith("cuda") and torch.cuda.is_available()
    threads = max(1, len(os.sched_getaffinity(0)) // parallel)
    resources = {"gpu": 1.0 / parallel} if gpu else {"cpu": threads}
    worker_settings = RetrainSettings(**{**settings.__dict__, "threads": threads})
    root = Path(settings.run_path) / "retrain"
    results = ray_tune.parallel_map(
        _Train(worker_settings), jobs, parallel=parallel, resources=resources,
        temp_dir=root / "ray_tmp", tune_dir=root / "tune", address=address,
    )  # fmt: skip
    failures = [f"{job.arch_id}: {value}" for job, (ok, value) in zip(jobs, results, strict=True) if not ok]
    if failures:
        raise NasbenchError(f"retraining failed for {len(failures)} model(s): {'; '.join(failures)}")


class _Train:
    def __init__(self, settings: RetrainSettings):
        self.settings = settings

    def __call__(self, job: Job) -> float:
        return train_job(job, self.settings)["test_top1"]
