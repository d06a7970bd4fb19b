"""Parallel retraining as Ray Tune trials: the one module of ``nasbench.retrain`` that imports Ray.

Each trial trains one job with ``nasbench.retrain.run.train_job`` (which checkpoints into the run folder
itself, so Tune's own checkpoints are not used: a killed command, run again, resumes every model from its
own checkpoint and skips finished ones). The machine's CPUs are shared evenly between ``parallel``
concurrent trials (each sets torch's threads to its share); with GPUs, each trial asks for
1 / ``parallel`` of one.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch
from ray import tune

from nasbench.errors import NasbenchError
from nasbench.retrain.pick import Job
from nasbench.retrain.run import RetrainSettings, train_job
from nasbench.search.ray_trials import ray_session


def _trial(config: dict[str, Any], *, jobs: list[dict[str, Any]], settings: RetrainSettings) -> None:
    job = Job(**jobs[config["index"]])
    try:
        result = train_job(job, settings)
        tune.report({"payload": json.dumps({"ok": True, "test_top1": result["test_top1"]})})
    except Exception as e:  # noqa: BLE001 - reported to the driver, which names the model that failed
        tune.report({"payload": json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})})


def train_in_parallel(jobs: list[Job], settings: RetrainSettings, *, parallel: int, address: str | None = None) -> None:
    """Train ``jobs`` as up to ``parallel`` concurrent Tune trials (local Ray, or the cluster at ``address``)."""
    gpu = settings.device.startswith("cuda") and torch.cuda.is_available()
    threads = max(1, len(os.sched_getaffinity(0)) // parallel)
    resources = {"gpu": 1.0 / parallel} if gpu else {"cpu": threads}
    worker_settings = RetrainSettings(**{**settings.__dict__, "threads": threads})
    storage = f"{settings.run_path}/retrain/tune"
    with ray_session(f"{settings.run_path}/retrain", address):
        trainable = tune.with_parameters(_trial, jobs=[j.to_dict() for j in jobs], settings=worker_settings)
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"index": tune.grid_search(list(range(len(jobs))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=parallel),
            run_config=tune.RunConfig(
                name=f"retrain-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage, verbose=0
            ),
        )
        grid = _fit_quietly(tuner)
    failures = []
    for result in grid:
        payload = json.loads((result.metrics or {}).get("payload", '{"ok": false, "error": "no result"}'))
        if not payload["ok"]:
            index = result.config["index"] if result.config else "?"
            failures.append(f"{jobs[index].arch_id if index != '?' else index}: {payload['error']}")
    if failures:
        raise NasbenchError(f"retraining failed for {len(failures)} model(s): {'; '.join(failures)}")


def _fit_quietly(tuner: tune.Tuner):
    """``fit`` with Tune's legacy reporter, which ``verbose=0`` silences (the new one prints its settings
    table to stdout, which would spoil ``--json``)."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        return tuner.fit()
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before
