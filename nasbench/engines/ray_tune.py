"""Ray behind one door: the session and its cleanup, shared objects, trials through Tune, a parallel map.

The only module that imports Ray. Public: ``ray_session`` (a context manager: a private local Ray whose
processes never outlive the block, or a connection to an existing cluster), ``put_shared`` / ``get_shared``
(an object placed in Ray's object store once and fetched once per worker), ``run_trials`` (a trial
search: the engine-free driver of ``nasbench.search.trials`` asks and tells, Tune runs the evaluations in
reused worker actors) and ``parallel_map`` (retraining several models as concurrent Tune trials).

Only Tune's public API is used: a ``tune.search.Searcher`` subclass (Tune's documented way to plug in a
custom search algorithm) hands Tune the driver's proposals, a ``tune.stopper.Stopper`` ends trials at the
budget's deadline, ``tune.with_parameters`` / ``tune.with_resources`` / ``Tuner`` run them.

Ray 2.60 facts this relies on (read in its source): ``ray.init(address=None)`` joins any cluster found on
the machine, so a private one needs ``address="local"``; AF_UNIX paths are capped at 107 bytes, the
deepest being ``<temp>/session_<date>_<pid>/sockets/plasma_store``; a Searcher's ``on_trial_complete`` is
not called for trials a stopper ends, hence ``_DriverSearch.close_leftovers``; ``TuneConfig.reuse_actors``
defaults to False; Tune pickles the search algorithm into its experiment state, so ours pickles as empty.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ray
from ray import tune
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from nasbench.arch import Arch
from nasbench.runs.records import Status
from nasbench.search.evaluator import evaluate_outcome

SOCKET_MAX_BYTES = 107
SOCKET_SUFFIX_BYTES = 70  # "/session_YYYY-mm-dd_HH-MM-SS_ffffff_<pid>/sockets/plasma_store", with room


# --- session and shared objects ---------------------------------------------------------------------------


@contextmanager
def ray_session(temp_dir: Path, address: str | None = None, *, num_gpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block: a private local one with its temp files in ``temp_dir`` (a run's
    ``ray_tmp/``), none of whose processes outlive the block (nor the driver, if it is killed), or a
    connection to the cluster at ``address``, left running. Inside an open session this does nothing.

    ``num_gpus`` declares a local session's GPUs (None: Ray counts the machine's); a cluster declares its
    own. Declaring one where there is none lets a test read the GPU shares trials ask for."""
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
    if address:
        ray.init(address=address, **quiet)
        try:
            yield
        finally:
            ray.shutdown()  # disconnects; the cluster is not ours to stop
        return
    temp_dir = Path(temp_dir).resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    alias = _short_alias(temp_dir)
    reaper = _start_reaper(alias)
    try:
        gpus = {} if num_gpus is None else {"num_gpus": num_gpus}
        ray.init(address="local", num_cpus=cpu_count(), _temp_dir=str(alias or temp_dir), **gpus, **quiet)
        try:
            yield
        finally:
            ray.shutdown(wait_for_processes=True)
    finally:
        if reaper is not None:
            reaper.stdin.close()
            reaper.wait(timeout=30)
        if alias is not None:
            shutil.rmtree(alias.parent, ignore_errors=True)  # removes the link, not what it points to
            _relink_latest(temp_dir)


def _short_alias(temp_dir: Path) -> Path | None:
    """A short symlink to ``temp_dir`` when Ray's socket paths under it would pass the AF_UNIX limit."""
    if len(str(temp_dir).encode()) + SOCKET_SUFFIX_BYTES <= SOCKET_MAX_BYTES:
        return None
    link = Path(tempfile.mkdtemp(prefix="nbray-", dir="/tmp" if Path("/tmp").is_dir() else None)) / "t"
    link.symlink_to(temp_dir, target_is_directory=True)
    return link


def _relink_latest(temp_dir: Path) -> None:
    """Ray's ``session_latest`` link points through the alias, which is gone: make it relative."""
    latest = temp_dir / "session_latest"
    if latest.is_symlink():
        target = Path(os.readlink(latest)).name
        latest.unlink()
        latest.symlink_to(target, target_is_directory=True)


def _start_reaper(alias: Path | None) -> subprocess.Popen | None:
    """``nasbench.engines.ray_reaper`` (Linux; elsewhere ``ray.shutdown`` alone has to do). Its own session,
    so a Ctrl-C to the terminal's process group does not end it before it swept."""
    if not Path("/proc").is_dir():
        return None
    args = [sys.executable, "-m", "nasbench.engines.ray_reaper"] + ([str(alias.parent)] if alias else [])
    return subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def session_resources() -> dict[str, float]:
    """The open session's resources in total (``CPU``, ``GPU``, ...), the cluster's when it is one."""
    return ray.cluster_resources()


def put_shared(obj: Any) -> Any:
    """Place ``obj`` (e.g. the trained supernet's state dict) in Ray's object store once; the handle is
    small and picklable, so an evaluator factory can carry it to every worker. Call inside a session."""
    if not ray.is_initialized():
        raise RuntimeError("put_shared needs an open ray_session")
    return ray.put(obj)


def get_shared(handle: Any) -> Any:
    """The object behind a ``put_shared`` handle (in a worker: read from the node's object store)."""
    return ray.get(handle)


# --- trials -------------------------------------------------------------------------------------------------


class TrialDriver(Protocol):
    """What ``run_trials`` needs of the engine-free driver (``nasbench.search.trials.TrialDriver``)."""

    @property
    def finished(self) -> bool: ...  # budget spent: schedule no more, stop the running ones

    def ask(self) -> Any | None: ...  # a proposal with ``.arch`` and ``.stored`` (a result to reuse), or None

    def tell(self, proposal: Any, outcome: dict[str, Any] | None) -> None: ...  # None: it never reported


_EVALUATORS: dict[str, Callable[[Arch], dict]] = {}  # per worker process: search key -> evaluator


def _trial(config: dict, *, factory: Callable[[], Callable[[Arch], dict]], key: str) -> None:
    """One Tune trial: evaluate the arch (unless the driver holds a stored result) and report once. A
    worker builds its evaluator on its first trial and keeps it for the others (actors are reused)."""
    if config["reuse"]:
        tune.report({"payload": json.dumps({"status": "reused"})})
        return
    if key not in _EVALUATORS:
        _EVALUATORS.clear()  # an earlier search's: drop its weights
        _EVALUATORS[key] = factory()
    outcome = evaluate_outcome(_EVALUATORS[key], Arch.from_json(config["arch"]))
    outcome["worker_pid"] = os.getpid()
    tune.report({"payload": json.dumps(outcome, default=_plain)})


def _plain(x: Any) -> Any:
    """JSON fallback for the numpy or torch scalars an evaluator may return."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


class _DriverSearch(Searcher):
    """Hands Tune the driver's proposals and the workers' outcomes back to the driver."""

    def __init__(self, driver: TrialDriver):
        super().__init__()
        self.driver = driver
        self.proposals: dict[str, Any] = {}
        self.error: BaseException | None = None  # raised by the driver: stops new trials, re-raised later

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.error is not None or self.driver.finished:
            return Searcher.FINISHED
        try:
            proposal = self.driver.ask()
        except Exception as e:  # noqa: BLE001 - Tune would swallow it; keep it for the caller
            self.error = e
            return Searcher.FINISHED
        if proposal is None:
            return Searcher.FINISHED
        self.proposals[trial_id] = proposal
        return {"arch": proposal.arch.to_json(), "reuse": proposal.stored is not None}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        proposal = self.proposals.pop(trial_id, None)
        if proposal is None:
            return
        if result and "payload" in result:
            outcome = json.loads(result["payload"])
        elif error:
            outcome = {"status": Status.FAILED, "error": "the trial's worker died"}
        else:
            outcome = None  # stopped before it reported: nothing was evaluated
        try:
            self.driver.tell(proposal, outcome)
        except Exception as e:  # noqa: BLE001 - Tune would swallow it; keep it for the caller
            self.error = self.error or e

    def close_leftovers(self) -> None:
        """Trials Tune stopped without telling us (the deadline): the driver closes them as interrupted."""
        for trial_id in list(self.proposals):
            self.on_trial_complete(trial_id)

    # Resume goes through the driver's study, not Tune's experiment state: nothing to save or pickle.
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self) -> dict:
        return {}


class _Deadline(Stopper):
    """Stop every trial once the driver's budget is spent (its clock includes Tune's set-up)."""

    def __init__(self, driver: TrialDriver):
        self.driver = driver

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.driver.finished

    def __getstate__(self) -> dict:
        return {}


def run_trials(
    driver: TrialDriver,
    evaluator_factory: Callable[[], Callable[[Arch], dict]],
    *,
    name: str,
    tune_dir: Path,
    concurrency: int,
    max_trials: int,
    resources_per_trial: dict[str, float] | None = None,
) -> None:
    """Run ``driver``'s trials on Ray workers, ``concurrency`` at a time, inside an open ``ray_session``.

    ``evaluator_factory`` must be picklable; each worker calls it once and evaluates its trials with the
    result (see ``nasbench.search.evaluator.evaluate_outcome``). ``max_trials`` bounds how many trials
    Tune starts (the driver may finish earlier). ``resources_per_trial`` is Tune's dict (``{"cpu": 1}``,
    or ``{"cpu": 1, "gpu": 0.25}``: four trials share a GPU, Ray setting each worker's
    ``CUDA_VISIBLE_DEVICES``). Workers chdir to their trial folder: paths must be absolute."""
    if not ray.is_initialized():
        raise RuntimeError("run_trials needs an open ray_session")
    search = _DriverSearch(driver)
    trainable = tune.with_parameters(_trial, factory=evaluator_factory, key=uuid.uuid4().hex)
    tuner = tune.Tuner(
        tune.with_resources(trainable, dict(resources_per_trial or {"cpu": 1})),
        tune_config=tune.TuneConfig(
            search_alg=search,
            num_samples=max_trials,
            max_concurrent_trials=concurrency,
            reuse_actors=True,  # one worker process runs many trials and keeps its evaluator
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",  # not the arch JSON
        ),
        run_config=tune.RunConfig(
            name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(Path(tune_dir).resolve()),
            verbose=0,
            stop=_Deadline(driver),
        ),
    )
    try:
        with _quiet_tune():
            tuner.fit()
    finally:
        search.close_leftovers()
    if search.error is not None:
        raise search.error


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's legacy console reporter (silent at ``verbose=0``; the new one prints a settings table to
    stdout, which would spoil ``--json``), and no warnings about trials stopped before they reported."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis_log.level
    analysis_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        analysis_log.setLevel(level)
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


# --- a parallel map (retraining) ----------------------------------------------------------------------------


def _map_trial(config: dict, *, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    try:
        tune.report({"payload": json.dumps({"ok": True, "value": fn(items[config["index"]])}, default=_plain)})
    except Exception as e:  # noqa: BLE001 - reported to the caller, which names the item that failed
        tune.report({"payload": json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})})


def parallel_map(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    parallel: int,
    resources: dict[str, float],
    temp_dir: Path,
    tune_dir: Path,
    address: str | None = None,
) -> list[tuple[bool, Any]]:
    """``fn`` over ``items`` as up to ``parallel`` concurrent Tune trials, each with ``resources``; returns
    ``(True, value)`` or ``(False, "Error: message")`` per item, in order. ``fn`` and the items must
    pickle, and ``fn``'s values must be JSON. Opens a session (local in ``temp_dir``, or at ``address``)."""
    with ray_session(temp_dir, address):
        trainable = tune.with_parameters(_map_trial, fn=fn, items=list(items))
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"index": tune.grid_search(list(range(len(items))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=parallel),
            run_config=tune.RunConfig(
                name=f"map-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(Path(tune_dir).resolve()), verbose=0
            ),
        )
        with _quiet_tune():
            grid = tuner.fit()
    out: list[tuple[bool, Any]] = [(False, "no result")] * len(items)
    for result in grid:
        if result.config and "payload" in (result.metrics or {}):
            payload = json.loads(result.metrics["payload"])
            out[result.config["index"]] = (True, payload["value"]) if payload["ok"] else (False, payload["error"])
    return out


@dataclass
class RayWorkers:
    """The ``nasbench.search.trials.Workers`` pool on Ray: ``concurrency`` Tune trials at a time, each
    worker building its evaluator once from the picklable ``factory``. Use inside a ``ray_session``."""

    factory: Callable[[], Callable[[Arch], dict]]
    tune_dir: Path
    concurrency: int = 2
    resources_per_trial: dict[str, float] | None = None

    def run(self, driver: TrialDriver, *, name: str, max_trials: int) -> None:
        run_trials(
            driver,
            self.factory,
            name=name,
            tune_dir=self.tune_dir,
            concurrency=self.concurrency,
            max_trials=max_trials,
            resources_per_trial=self.resources_per_trial,
        )
