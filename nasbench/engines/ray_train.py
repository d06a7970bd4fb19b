"""Ray Train behind one door: data-parallel training ranks through ``TorchTrainer``.

The only module that imports Ray Train; Ray's session, its cleanup and the object store stay in
``ray_tune``, the module that owns Ray's core. Public: ``run_ranks`` runs an engine-free per-rank
function (``nasbench.training.parallel.train_rank``) on N workers, one device each, with PyTorch's default
process group set up by Ray Train (gloo on CPU, NCCL on GPUs), and turns a worker's failure into a
one-line ``NasbenchError`` naming the rank and its error. No process outlives ``run_ranks``: the session
is ``ray_tune.ray_session``'s, whose reaper ends Ray's processes even when the driver is killed.

Ray 2.60 facts this relies on (read in its source): Train V2 is the default (``RAY_TRAIN_V2_ENABLED``);
its controller actor asks for no CPU, so N one-CPU workers fit an N-CPU machine; ``fit()`` raises
``WorkerGroupError`` with ``worker_failures`` (rank -> exception) once ``FailureConfig.max_failures`` is
spent; metrics reach the driver only with checkpoints, so the ranks hand their results over through the run
folder instead (rank 0 writes the checkpoint the driver loads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer, get_device

from nasbench.engines.ray_tune import get_shared, put_shared, ray_session, session_resources
from nasbench.errors import NasbenchError

POLL_SECONDS = 0.5
CPUS_PER_WORKER = 1  # a CPU worker is one core: one torch thread


def run_ranks(
    rank_fn: Callable[[Any, Any, torch.device], None],
    job: Any,
    data: Any,
    *,
    workers: int,
    use_gpu: bool,
    temp_dir: Path,
    address: str | None = None,
    poll: Callable[[], None] | None = None,
    prepare: Callable[[], None] | None = None,
) -> None:
    """``rank_fn(job, data, device)`` on ``workers`` Ray Train workers (one GPU each with ``use_gpu``, else
    one CPU core each), inside a private Ray session in ``temp_dir`` or on the cluster at ``address``.
    ``data`` goes into Ray's object store once. ``prepare`` is called once Ray is known to have room for
    the workers, before they start; ``poll`` about twice a second while they run."""
    with ray_session(temp_dir, address, num_gpus=None):
        _check_room(workers, use_gpu)
        if prepare is not None:
            prepare()
        payload = {"fn": rank_fn, "job": job, "data": put_shared(data)}
        trainer = TorchTrainer(
            _worker,
            train_loop_config=payload,
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=use_gpu, resources_per_worker=_resources(use_gpu)
            ),
            run_config=RunConfig(
                name="supernet",
                storage_path=str(Path(temp_dir).resolve().parent / "ray_train"),
                failure_config=FailureConfig(max_failures=0),
            ),
        )
        _fit(trainer, poll)


def _resources(use_gpu: bool) -> dict[str, float]:
    return {"CPU": CPUS_PER_WORKER, "GPU": 1} if use_gpu else {"CPU": CPUS_PER_WORKER}


def _check_room(workers: int, use_gpu: bool) -> None:
    """Refuse up front, rather than wait forever for a placement group the cluster cannot give."""
    have = session_resources()
    kind = "GPU" if use_gpu else "CPU"
    if have.get(kind, 0) < workers:
        raise NasbenchError(
            f"--workers {workers}: Ray has {int(have.get(kind, 0))} {kind}(s) here and each worker needs one; "
            f"use --workers {max(1, int(have.get(kind, 0)))} or a larger cluster (--ray-address)"
        )


def _fit(trainer: TorchTrainer, poll: Callable[[], None] | None) -> None:
    """``trainer.fit()`` in a thread, polling meanwhile; a worker's error becomes a ``NasbenchError``."""
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = e

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        if poll is not None:
            poll()
    if "error" in outcome:
        raise _explain(outcome["error"]) from None


def _explain(error: BaseException) -> BaseException:
    failures = getattr(error, "worker_failures", None)
    if not failures:
        return NasbenchError(f"data-parallel training failed: {_first_line(error)}")
    rank, failure = min(failures.items())
    cause = getattr(failure, "cause", None) or failure  # Ray wraps the worker's exception
    if isinstance(cause, NasbenchError):
        return NasbenchError(f"worker {rank}: {cause}")
    return NasbenchError(f"worker {rank} failed: {type(cause).__name__}: {_first_line(cause)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


def _worker(config: dict[str, Any]) -> None:
    """Every rank's entry: its device, one torch thread (its one CPU core), the data from the object store,
    then the job."""
    torch.set_num_threads(CPUS_PER_WORKER)
    device = get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    config["fn"](config["job"], get_shared(config["data"]), device)
