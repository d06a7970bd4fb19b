"""Trial-based search: Ray Tune runs the trials, Optuna's samplers propose them (``nsga2``, ``tpe``, ``random``).

The only module that imports Ray. Public: ``run_trials`` (the search), ``ray_session`` (a context
manager: one Ray for several searchers, and for ``put_shared``), ``put_shared``/``get_shared`` (the
supernet weights in Ray's object store, fetched once per worker).

How a search runs. The Optuna study (``<run>/optuna.db``, one per searcher, seed and objectives) is
opened or resumed; trials a killed run left RUNNING are closed (COMPLETE from ``skip``'s stored result,
else FAIL marked interrupted). Tune's ``OptunaSearch`` asks the study for each trial's choices (one
categorical per ``space.dimensions()`` label); the driver decodes them to an ``Arch`` and, when that arch
is already evaluated (in this call, or per ``skip``), the trial passes the stored result on instead of
evaluating again. Trials run in Ray actors that Tune reuses; each keeps the evaluator that
``evaluate_factory()`` built in a module-level cache, so a worker builds it once however many trials it
runs. An exception inside the evaluation makes a failed record and a FAIL in Optuna; the search goes on.
The driver records each result (``on_result``), then tells Optuna the objective and constraint values.

Budgets: ``max_trials`` counts the study's trials (failed ones too, interrupted ones not), so a resumed
call runs only what is left; ``time_budget_s`` is this call's wall time, Ray's start-up included.

Ray 2.60 facts this relies on (read in its source): ``ray.init(address=None)`` joins any cluster found on
the machine, so a private one needs ``address="local"``; AF_UNIX paths are capped at 107 bytes, the
deepest being ``<temp>/session_<date>_<pid>/sockets/plasma_store``; ``OptunaSearch(space=<optuna
distributions>, metric=[...], mode=[...], sampler=, study_name=, storage=<a BaseStorage, not a URL>)``
creates its study with ``load_if_exists=True``, and its ``on_trial_complete`` tells a result lacking the
metrics as ``[None, ...]`` (a failed ``tell`` that leaves the trial RUNNING) and is never called for
trials a stopper ends, so it is overridden; ``TuneConfig(time_budget_s=)`` starts its clock after
Tune's set-up, hence ``_Deadline``; ``TuneConfig.reuse_actors`` defaults to False.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from nasbench.arch import Arch
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.search import optuna_samplers
from nasbench.spaces import SearchSpace

Record = dict[str, Any]
MAXIMISED = frozenset({"acc"})
# Where each objective (and constraint) reads its value in a record: the first finite field wins, so
# "latency" is the predicted latency (defined for every arch) unless only a measured one exists.
OBJECTIVE_FIELDS = {
    "acc": ("acc",),
    "macs": ("macs",),
    "params": ("params",),
    "latency": ("latency_pred_ms", "latency_ms"),
}
REUSABLE = ("ok", "infeasible")  # statuses of a completed evaluation
SOCKET_MAX_BYTES = 107
SOCKET_SUFFIX_BYTES = 70  # "/session_YYYY-mm-dd_HH-MM-SS_ffffff_<pid>/sockets/plasma_store", with room


# --------------------------------------------------------------------------------------------------------
# Ray session and shared objects
# --------------------------------------------------------------------------------------------------------


@contextmanager
def ray_session(run_dir: Path, address: str | None = None) -> Iterator[None]:
    """Ray for the duration of the block: a private local one with its temp files in ``run_dir/ray_tmp``,
    none of whose processes outlive the block (nor the driver, if it is killed), or a connection to the
    cluster at ``address``, left running. Inside an open session this does nothing, so it nests."""
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
    temp_dir = (Path(run_dir) / "ray_tmp").resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    alias = _short_alias(temp_dir)
    reaper = _start_reaper(alias)
    try:
        ray.init(address="local", num_cpus=_cpu_count(), _temp_dir=str(alias or temp_dir), **quiet)
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
            latest = temp_dir / "session_latest"  # Ray's link points through the alias: make it relative
            if latest.is_symlink():
                target = Path(os.readlink(latest)).name
                latest.unlink()
                latest.symlink_to(target, target_is_directory=True)


def _short_alias(temp_dir: Path) -> Path | None:
    """A short symlink to ``temp_dir`` when Ray's socket paths under it would pass the AF_UNIX limit."""
    if len(str(temp_dir).encode()) + SOCKET_SUFFIX_BYTES <= SOCKET_MAX_BYTES:
        return None
    link = Path(tempfile.mkdtemp(prefix="nbray-", dir="/tmp" if Path("/tmp").is_dir() else None)) / "t"
    link.symlink_to(temp_dir, target_is_directory=True)
    return link


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Run by a helper process until its stdin closes (the session ended, or the driver died, even by SIGKILL):
# every second it notes the Ray processes descended from the driver (pid and start time), then ends the
# ones still alive. After a SIGKILLed driver, Ray 2.60's raylet and GCS exit but the dashboard and
# runtime-env agents (children of the raylet) live on. (An environment marker cannot find them:
# setproctitle overwrites the environment that /proc shows.)
_REAPER_CODE = r"""
import os, select, shutil, signal, sys, time
driver, me, seen = os.getppid(), os.getpid(), {}
def look():
    procs, kids = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                procs[int(pid)] = (stat[19], f.read())
            kids.setdefault(int(stat[1]), []).append(int(pid))
        except (OSError, IndexError):
            pass
    stack = [driver, *seen]
    while stack:
        for pid in kids.get(stack.pop(), []):
            start, cmd = procs[pid]
            if pid != me and pid not in seen and (b"ray::" in cmd or b"/ray/" in cmd):
                seen[pid] = start
                stack.append(pid)
    return procs
while not select.select([0], [], [], 1.0)[0] or os.read(0, 1):
    look()
for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.0)):
    procs = look()
    alive = [pid for pid, start in seen.items() if pid in procs and procs[pid][0] == start]
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    if alive:
        time.sleep(grace)
if len(sys.argv) > 1:
    shutil.rmtree(sys.argv[1], ignore_errors=True)  # the socket alias's folder
"""


def _start_reaper(alias: Path | None) -> subprocess.Popen | None:
    """The helper above (Linux; elsewhere ``ray.shutdown`` alone has to do); it also removes the socket
    alias. Its own session, so a Ctrl-C to the terminal's process group does not end it before it swept."""
    if not Path("/proc").is_dir():
        return None
    args = [sys.executable, "-c", _REAPER_CODE] + ([str(alias.parent)] if alias is not None else [])
    return subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True)


def put_shared(obj: Any) -> Any:
    """Place ``obj`` (e.g. the trained supernet's state dict) in Ray's object store once; the handle is
    small and picklable, so an evaluator factory can carry it to every worker. Call inside a session."""
    if not ray.is_initialized():
        raise RuntimeError("put_shared needs an open ray_session")
    return ray.put(obj)


def get_shared(handle: Any) -> Any:
    """The object behind a ``put_shared`` handle (in a worker: read from the node's object store)."""
    return ray.get(handle)


# --------------------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------------------

_EVALUATORS: dict[str, Callable[[Arch], dict]] = {}  # per worker process: run key -> evaluator


def _evaluator(factory: Callable[[], Callable[[Arch], dict]], key: str) -> Callable[[Arch], dict]:
    """This worker's evaluator for the search ``key``, built on its first trial and kept for the others."""
    if key not in _EVALUATORS:
        _EVALUATORS.clear()  # an earlier search's: drop its weights
        _EVALUATORS[key] = factory()
    return _EVALUATORS[key]


def _trial(config: dict, *, factory: Callable, key: str, objectives: list[str]) -> None:
    """One Tune trial: evaluate the arch (unless the driver holds a stored result) and report once."""
    start = time.perf_counter()
    out: Record = {"status": "reused"}
    if not config["reuse"]:
        try:
            out = {"status": "ok", "error": "", **_evaluator(factory, key)(Arch.from_json(config["arch"]))}
        except Exception as e:  # noqa: BLE001 - a failure of one evaluation fails that trial only
            out = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    out.setdefault("eval_seconds", time.perf_counter() - start)
    out["worker_pid"] = os.getpid()
    metrics = dict(zip(objectives, objective_values(out, objectives), strict=True))  # Tune checks they exist
    tune.report({"payload": json.dumps(out, default=_plain), **metrics})


def _plain(x: Any) -> Any:
    """JSON fallback for the numpy or torch scalars an evaluator may return."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


# --------------------------------------------------------------------------------------------------------
# Objectives, constraints and records
# --------------------------------------------------------------------------------------------------------


def objective_values(record: Record, objectives: list[str]) -> list[float]:
    return [_field(record, OBJECTIVE_FIELDS[o]) for o in objectives]


def constraint_values(record: Record, limits: dict[str, float]) -> dict[str, float]:
    """Relative excess over each limit (<= 0 feasible); an unknown value counts as infeasible."""
    values = {name: _field(record, OBJECTIVE_FIELDS[name]) for name in limits}
    return {name: v / limits[name] - 1.0 if math.isfinite(v) else 1.0 for name, v in values.items()}


def _field(record: Record, fields: tuple[str, ...]) -> float:
    for f in fields:
        v = record.get(f)
        if v is not None and math.isfinite(float(v)):
            return float(v)
    return math.nan


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _count(v: Any) -> int | float:
    """MACs and params as ints; NaN when the evaluation failed before reporting them."""
    return int(round(float(v))) if v is not None and math.isfinite(float(v)) else math.nan


def _as_evaluation(stored: Record) -> Record:
    """A stored record read back as an evaluation result (an infeasible one keeps its accuracy in extra)."""
    extra = stored.get("extra") or {}
    extra = json.loads(extra) if isinstance(extra, str) else extra
    acc = stored.get("acc")
    if stored.get("status") == "infeasible" or not math.isfinite(_num(acc)):
        acc = extra.get("acc_measured", acc)
    return {**stored, "acc": acc, "status": "ok", "error": ""}


@dataclass
class _Run:
    """What the driver knows about one search: it turns results into records and tells Optuna."""

    space: SearchSpace
    sampler: str
    seed: int
    study_name: str
    objectives: list[str]
    constraints: dict[str, float]
    on_result: Callable[[Record], None]
    skip: Callable[[Arch], Record | None] | None
    num_classes: int | None = None  # for the analytic MACs and params of failed evaluations
    done: dict[Arch, Record] = field(default_factory=dict)  # evaluated in this call: never re-run

    def lookup(self, arch: Arch) -> Record | None:
        """A stored, completed evaluation of ``arch``, or None: evaluate it."""
        stored = self.done.get(arch) or (self.skip(arch) if self.skip else None)
        return stored if stored is not None and stored.get("status", "ok") in REUSABLE else None

    def finish(self, study: Any, trial: Any, number: int, arch: Arch, result: Record, reused: bool) -> None:
        """Record one finished trial (``on_result`` before ``tell``, so a kill in between loses no
        evaluation: resume finds the record), then tell Optuna. A reused result is not recorded again."""
        record = self.record(arch, number, _as_evaluation(result) if reused else result)
        values = objective_values(record, self.objectives) if record["status"] == "ok" else None
        if values is not None and not all(map(math.isfinite, values)):
            bad = [o for o, v in zip(self.objectives, values, strict=True) if not math.isfinite(v)]
            record.update(status="failed", error=f"objective {', '.join(bad)} is not a finite number")
            values = None
        excess = constraint_values(record, self.constraints) if values is not None else {}
        over = [f"{k} over its limit {self.constraints[k]:g} by {v:.1%}" for k, v in excess.items() if v > 0]
        if over:  # records keep an accuracy for feasible archs only; the measured one goes to extra
            record["extra"]["acc_measured"] = record["acc"]
            record.update(status="infeasible", error="; ".join(over), acc=math.nan)
        if not reused:
            if record["status"] in REUSABLE:
                self.done[arch] = record
            self.on_result(record)
        attrs = {"arch_id": arch.id, "arch": str(arch), "status": "reused" if reused else record["status"]}
        if record["error"]:
            attrs["error"] = record["error"][:2000]
        optuna_samplers.tell(study, trial, values, constraints=excess, attrs=attrs)

    def record(self, arch: Arch, number: int, result: Record) -> Record:
        """A record in the runs schema (``nasbench.runs.records``, less ``run_id``); the evaluator's
        other fields go to ``extra``."""
        if self.num_classes is not None and not math.isfinite(_num(result.get("macs"))):
            cost = count(arch, self.num_classes)  # analytic: known even when the evaluation failed
            result = {**result, "macs": cost.macs, "params": cost.params}
        rec = {
            "trial": number,
            "searcher": self.sampler,
            "seed": self.seed,
            "arch_id": arch.id,
            "arch": str(arch),
            "arch_json": arch.to_json(),
            "resolution": arch.resolution,
            "status": result.get("status", "ok"),
            "error": result.get("error") or "",
            "acc": _num(result.get("acc")),
            "macs": _count(result.get("macs")),
            "params": _count(result.get("params")),
            "latency_pred_ms": _num(result.get("latency_pred_ms")),
            "latency_ms": _num(result.get("latency_ms")),
            "eval_seconds": _num(result.get("eval_seconds")),
            "finished_at": time.time(),
        }
        extra = result.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else dict(extra)
        rest = {k: v for k, v in result.items() if k not in rec and k not in ("extra", "run_id")}
        return rec | {"extra": {**extra, **rest, "study": self.study_name}}

    def close_interrupted(self, study: Any) -> None:
        """Close the trials a killed run left RUNNING: completed from a stored result, else interrupted."""
        for number, params in list(optuna_samplers.running_trials(study)):
            try:
                arch = self.space.decode(params)
            except NasbenchError:
                arch = None
            stored = self.lookup(arch) if arch is not None else None
            if stored is None:
                optuna_samplers.interrupt(study, number)
            else:
                self.finish(study, number, number, arch, stored, reused=True)


# --------------------------------------------------------------------------------------------------------
# The driver side
# --------------------------------------------------------------------------------------------------------


class _StudySearch(OptunaSearch):
    """Ray Tune's Optuna searcher, adapted: trials carry a decoded arch (or a stored result to pass on),
    and completion goes through ``_Run.finish``, so failures are told as FAIL and records are written."""

    def __init__(self, run: _Run, *, sampler: Any, storage: Any):
        super().__init__(
            space=optuna_samplers.distributions([(d.label, d.choices) for d in run.space.dimensions()]),
            metric=list(run.objectives),
            mode=["max" if o in MAXIMISED else "min" for o in run.objectives],
            sampler=sampler,
            study_name=run.study_name,
            storage=storage,
        )
        self._run = run
        self._archs: dict[str, Arch] = {}
        self._stored: dict[str, Record] = {}  # trial id -> the stored result it passes on
        self.error: BaseException | None = None  # raised by on_result: stops new trials, re-raised later

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.error is not None:
            return Searcher.FINISHED
        arch = self._run.space.decode(super().suggest(trial_id))
        self._archs[trial_id] = arch
        stored = self._run.lookup(arch)
        if stored is not None:
            self._stored[trial_id] = stored
        return {"arch": arch.to_json(), "reuse": stored is not None}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        trial = self._ot_trials[trial_id]
        if not result or "payload" not in result:
            if not error:  # stopped before it reported: nothing was evaluated
                optuna_samplers.interrupt(self._ot_study, trial)
                return
            result = {"payload": json.dumps({"status": "failed", "error": "the trial's worker died"})}
        payload = json.loads(result["payload"])
        reused = payload["status"] == "reused"
        try:
            outcome = self._stored.pop(trial_id) if reused else payload
            self._run.finish(self._ot_study, trial, trial.number, self._archs[trial_id], outcome, reused)
        except Exception as e:  # noqa: BLE001 - Tune would swallow it; keep it for the caller
            self.error = self.error or e

    def close_leftovers(self) -> None:
        """Trials Tune stopped without telling the searcher (time budget): close them as interrupted."""
        for trial_id, trial in self._ot_trials.items():
            if trial_id not in self._completed_trials:
                self._completed_trials.add(trial_id)
                optuna_samplers.interrupt(self._ot_study, trial)

    # Resume goes through the Optuna study, not Tune's experiment checkpoints: save nothing, and keep
    # the driver-only parts (callbacks, the study's connection) out of Tune's tuner.pkl.
    def save_to_dir(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getstate__(self) -> dict:
        return {}


class _Deadline(Stopper):
    """Stop every trial at a wall-clock deadline (``time.monotonic()``), Tune's set-up time included."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.monotonic() >= self.deadline


@contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's legacy console reporter (silent at ``verbose=0``), and no warnings from ResultGrid about
    trials the deadline stopped before they wrote results."""
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


def default_study_name(sampler: str, seed: int, objectives: list[str]) -> str:
    return f"{sampler}-seed{seed}-{'+'.join(objectives)}"


def run_trials(
    space: SearchSpace,
    evaluate_factory: Callable[[], Callable[[Arch], dict]],
    *,
    sampler: str,
    objectives: list[str],
    seed: int,
    max_trials: int | None,
    time_budget_s: float | None,
    storage_dir: Path,
    on_result: Callable[[Record], None],
    skip: Callable[[Arch], Record | None] | None = None,
    constraints: dict[str, float] | None = None,
    concurrency: int = 2,
    resources_per_trial: dict[str, float] | None = None,
    ray_address: str | None = None,
    study_name: str | None = None,
    num_classes: int | None = None,
) -> None:
    """Search ``space``: Optuna's ``sampler`` proposes, Ray Tune runs the trials (see the module doc).

    ``evaluate_factory`` must be picklable; what it returns maps an ``Arch`` to a dict with at least
    ``acc, macs, params, latency_pred_ms, latency_ms`` (NaN where unknown; other keys go to the record's
    ``extra``). ``on_result`` is called in the driver once per evaluation this call performs, with a
    record in the runs schema (``nasbench.runs.Record`` fields less ``run_id``): status ``ok``,
    ``failed`` (the exception in ``error``; macs and params analytic when ``num_classes`` is given, else
    NaN unless the evaluator reported them) or ``infeasible`` (over a ``constraints`` limit; the
    measured accuracy in ``extra["acc_measured"]``).
    ``skip(arch)`` returns such a stored record to reuse (a failed one is evaluated again), or None.
    Objectives: ``acc`` (maximised, first), ``macs``, ``params``, ``latency`` (predicted, else measured);
    constraints take the same names. ``resources_per_trial`` is Tune's dict (``{"cpu": 1}``, or
    ``{"gpu": 0.25}``, which asks for no CPU). Runs inside an open ``ray_session``, else opens one (local,
    or at ``ray_address``) for the call. Workers chdir to their trial folder: paths must be absolute."""
    start = time.monotonic()
    constraints = dict(constraints or {})
    _check_arguments(sampler, objectives, constraints, max_trials, time_budget_s)
    storage_dir = Path(storage_dir).resolve()
    name = study_name or default_study_name(sampler, seed, objectives)
    db = optuna_samplers.storage(storage_dir)
    study = optuna_samplers.open_study(db, name, [o in MAXIMISED for o in objectives], objectives)
    run = _Run(space, sampler, seed, name, list(objectives), constraints, on_result, skip, num_classes)
    run.close_interrupted(study)
    left = -1 if max_trials is None else max_trials - optuna_samplers.trial_count(study)  # -1: no limit
    if left == 0 or left < -1:
        return
    population = 50 if max_trials is None else max(4, min(50, max_trials // 4))
    seed_now = optuna_samplers.resumed_seed(seed, len(study.get_trials(deepcopy=False)))
    with ray_session(storage_dir, ray_address):
        if time_budget_s is not None and time.monotonic() - start >= time_budget_s:
            return  # spent on Ray's start-up
        search = _StudySearch(
            run, sampler=optuna_samplers.make_sampler(sampler, seed_now, population_size=population), storage=db
        )
        trainable = tune.with_parameters(_trial, factory=evaluate_factory, key=uuid.uuid4().hex, objectives=objectives)
        tuner = tune.Tuner(
            tune.with_resources(trainable, dict(resources_per_trial or {"cpu": 1})),
            tune_config=tune.TuneConfig(
                search_alg=search,
                num_samples=left,
                max_concurrent_trials=concurrency,
                reuse_actors=True,  # one worker process runs many trials and keeps its evaluator
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",  # not the arch JSON
            ),
            run_config=tune.RunConfig(
                name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(storage_dir / "tune"),
                verbose=0,
                stop=None if time_budget_s is None else _Deadline(start + time_budget_s),
            ),
        )
        try:
            with _quiet_tune():
                tuner.fit()
        finally:
            search.close_leftovers()
    if search.error is not None:
        raise search.error


def _check_arguments(sampler, objectives, constraints, max_trials, time_budget_s) -> None:
    if sampler not in optuna_samplers.SAMPLERS:
        raise NasbenchError(f"unknown trial searcher {sampler!r}; valid are {', '.join(optuna_samplers.SAMPLERS)}")
    for kind, names in (("objective", objectives), ("constraint", list(constraints))):
        for name in names:
            if name not in OBJECTIVE_FIELDS:
                raise NasbenchError(f"unknown {kind} {name!r}; valid are {', '.join(OBJECTIVE_FIELDS)}")
    if not objectives or objectives[0] != "acc" or len(set(objectives)) != len(objectives):
        raise NasbenchError(f"objectives must start with acc and not repeat, got {','.join(objectives)}")
    for name, limit in constraints.items():
        if not limit > 0:
            raise NasbenchError(f"constraint {name} needs a positive limit, got {limit}")
    if max_trials is None and time_budget_s is None:
        raise NasbenchError("a trial search needs a budget: a number of trials, a time, or both")
