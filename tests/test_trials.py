"""Trial searchers (nsga2, tpe, random) on Ray's workers, Optuna proposing: budgets, records, failures,
constraints, resume, one evaluator per worker, no Ray process left behind, a real ``ray start --head``
cluster. (What every searcher must do, in process, is the contract suite: test_searcher_contract.py.)

The evaluator is cheap and real: analytic MACs, and an accuracy that grows with log MACs plus a fixed
per-arch noise, so no supernet is needed. Workers import this module by name (``PYTHONPATH``), the way
they import ``nasbench`` for the real evaluator. Starting Ray workers is the expensive part (seconds
each on a busy machine), so each Ray test checks several things on one run; the full sampler x budget
matrix is marked slow.
"""

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import psutil
import pytest
import torch

import nasbench
from nasbench.budget import TRIALS, WALL_TIME, Budget, BudgetClock
from nasbench.counting import count
from nasbench.engines import optuna_study
from nasbench.engines.ray_tune import RayWorkers, get_shared, put_shared, ray_session
from nasbench.pipeline.run import trial_resources
from nasbench.runs import Record, RunDir
from nasbench.search import registry
from nasbench.search.base import RecordSink, SearchContext
from nasbench.search.trials import TrialDriver, default_study_name

TESTS = str(Path(__file__).resolve().parent)
RECORD_KEYS = {
    "trial", "searcher", "seed", "arch_id", "arch", "arch_json", "resolution", "status", "error", "acc",
    "macs", "params", "latency_pred_ms", "latency_ms", "eval_seconds", "finished_at", "extra",
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def workers_import_this_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p))
        mp.setenv("RAY_AUTH_MODE", "disabled")
        yield


@pytest.fixture(scope="module")
def space():
    return nasbench.load_space("tiny")


class Evaluator:
    """acc in [0.3, 0.95]: normalised log MACs plus a hash noise; with ``fail_mod`` n (>= 3), the worker's
    2nd, (n+2)th, ... evaluations fail (so every worker that evaluates twice records a failure)."""

    def __init__(self, log: Path, fail_mod: int, sleep_s: float, scale: float):
        self.log, self.fail_mod, self.sleep_s, self.scale = log, fail_mod, sleep_s, scale
        self.calls = 0

    def __call__(self, arch):
        (self.log / f"eval-{arch.id}-{uuid.uuid4().hex[:6]}").touch()
        time.sleep(self.sleep_s)
        self.calls += 1
        h = int(hashlib.sha1(arch.id.encode()).hexdigest(), 16)
        if self.fail_mod and self.calls % self.fail_mod == 2:
            raise RuntimeError(f"evaluation of {arch.id} blew up")
        cost = count(arch, num_classes=10)
        scaled = (math.log(cost.macs) - 13.0) / self.scale  # tiny space: log MACs spans about 13..19
        acc = min(0.95, max(0.3, 0.3 + 0.6 * scaled + 0.05 * (h % 1000) / 1000))
        return {"acc": acc, "macs": cost.macs, "params": cost.params, "latency_pred_ms": cost.macs / 1e7,
                "latency_ms": math.nan, "probe": "x"}  # fmt: skip


class Factory:
    """Picklable, like the real one (which carries the supernet weights' handle); each call leaves a
    ``built-<pid>-*`` file so tests can count builds per worker."""

    def __init__(self, log: Path, fail_mod: int = 0, sleep_s: float = 0.0, shared=None):
        self.log, self.fail_mod, self.sleep_s, self.shared = Path(log), fail_mod, sleep_s, shared

    def __call__(self):
        (self.log / f"built-{os.getpid()}-{uuid.uuid4().hex[:6]}").touch()
        scale = get_shared(self.shared)["scale"] if self.shared is not None else 6.0
        return Evaluator(self.log, self.fail_mod, self.sleep_s, scale)


class GpuProbe(Factory):
    """The same evaluator, whose records also say what Ray gave the trial: its GPU share and GPU ids."""

    def __call__(self):
        evaluate = super().__call__()

        def probe(arch):
            import ray  # in the worker: the test reads what the trial was given, as Ray sees it

            assigned = ray.get_runtime_context().get_assigned_resources()
            gpu = sum(v for k, v in assigned.items() if k == "GPU" or k.startswith("GPU_group_"))
            ids = [str(i) for i in ray.get_gpu_ids()]
            return {**evaluate(arch), "gpu_share": gpu, "gpu_ids": ids, "visible": os.environ["CUDA_VISIBLE_DEVICES"]}

        return probe


def search(space, run, sampler="random", budget=Budget(TRIALS, 4), *, limits=None, concurrency=2, **kw):
    """Run a registered trial searcher on Ray workers into ``run``; returns its log folder and records."""
    log = run.path / f"log-{sampler}"
    log.mkdir(parents=True, exist_ok=True)
    make, resources = (GpuProbe if kw.pop("probe_gpus", False) else Factory), kw.pop("resources", None)
    factory = make(log, kw.pop("fail_mod", 0), kw.pop("sleep_s", 0.0), kw.pop("shared", None))
    clock = BudgetClock(budget, spent_before=float(kw.pop("spent", 0.0)))
    ctx = SearchContext(
        space=space, num_classes=10, objectives=("acc", "macs"), limits=dict(limits or {}), seed=0,
        evaluate=None, study_file=run.optuna_db,
        workers=RayWorkers(factory, run.tune_dir, concurrency=concurrency, resources_per_trial=resources),
    )  # fmt: skip
    sink = RecordSink(run, sampler, seed=0, num_classes=10, objectives=ctx.objectives, limits=ctx.limits, clock=clock)
    try:
        registry.searcher_class(sampler)().search(ctx, clock.start(), sink)
    finally:
        clock.stop()
    records = run.records()
    return log, [row_as_dict(r) for r in records[records.searcher == sampler].to_dict("records")], clock


def row_as_dict(row):
    row = {k: (None if v is pd.NA else v) for k, v in row.items()}
    return {**row, "extra": json.loads(row["extra"])}


def new_run(path, **config):
    return RunDir.create({"space": "tiny", "data": "none", **config}, out=path)


def study_of(run, sampler, seed=0, objectives=("acc", "macs")):
    name = default_study_name(sampler, seed, list(objectives))
    return optuna.load_study(study_name=name, storage=f"sqlite:///{run.optuna_db}")


def check_records(records, sampler):
    assert records
    for r in records:
        assert set(r) >= RECORD_KEYS, set(RECORD_KEYS) - set(r)
        Record(**r)  # the runs schema's own checks
        assert r["macs"] == count(nasbench.Arch.parse(r["arch"]), 10).macs
        assert r["searcher"] == sampler and r["seed"] == 0
        assert nasbench.Arch.parse(r["arch"]).id == r["arch_id"] == nasbench.Arch.from_json(r["arch_json"]).id
        if r["status"] == "ok":
            assert 0.3 <= r["acc"] <= 0.95 and r["error"] == ""
            assert isinstance(r["macs"], int) and r["macs"] > 0 and r["extra"]["probe"] == "x"
        else:
            assert r["status"] in ("failed", "infeasible") and r["error"] and math.isnan(r["acc"])
    assert len({r["trial"] for r in records}) == len(records)


def check_one_build_per_worker(log: Path, records) -> None:
    builds: dict[str, int] = {}
    for f in log.glob("built-*"):
        pid = f.name.split("-")[1]
        builds[pid] = builds.get(pid, 0) + 1
    assert set(builds.values()) == {1}, builds
    evaluated = [r for r in records if r["status"] != "failed" and not r["error"].endswith("not evaluated")]
    assert {str(r["extra"]["worker_pid"]) for r in evaluated} <= set(builds)


def ray_processes(root_pid: int) -> dict[int, float]:
    """pid -> start time of the Ray processes descended from ``root_pid``."""
    out = {}
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            if "ray::" in cmd or "/ray/" in cmd:
                out[p.pid] = p.create_time()
        except psutil.NoSuchProcess:
            pass
    return out


def still_alive(procs: dict[int, float], wait_s: float = 10.0) -> list[int]:
    """Those of ``procs`` alive after up to ``wait_s`` seconds (same pid and start time)."""

    def alive():
        out = []
        for pid, started in procs.items():
            try:
                if psutil.Process(pid).create_time() == started:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    deadline = time.time() + wait_s
    while alive() and time.time() < deadline:
        time.sleep(0.5)
    return alive()


# --- the Optuna adapter alone (no Ray) ---------------------------------------------------------------------


@pytest.mark.parametrize("sampler", optuna_study.SAMPLERS)
def test_samplers_are_seeded_and_store_constraints(space, tmp_path, sampler):
    dims = optuna_study.distributions([(d.label, d.choices) for d in space.dimensions()])
    proposals = []
    for run in ("a", "b"):
        db = optuna_study.storage(tmp_path / run / "optuna.db")
        sampled = optuna_study.make_sampler(sampler, seed=3, population_size=2)
        study = optuna_study.open_study(db, "s", [True, False], ["acc", "macs"], sampler=sampled)
        params = []
        for i in range(4):
            trial, proposal = optuna_study.ask(study, dims)
            params.append(proposal)
            excess = {"macs": 0.5 if i % 2 else -0.5}
            optuna_study.tell(study, trial, [0.1 * i, 10.0 * i], constraints=excess, attrs={"i": i})
        proposals.append(params)
        space.decode(params[0])  # proposals are points of the space
    assert proposals[0] == proposals[1]  # same seed, same proposals
    assert optuna_study.trial_count(study) == 4
    assert [t.constraints["macs"] > 0 for t in study.trials] == [False, True] * 2
    optuna_study.tell(study, study.ask(dims), [math.nan, 1.0])  # NaN: failed, not a fake score
    optuna_study.interrupt(study, study.ask(dims).number)
    assert [t.state.name for t in study.trials[-2:]] == ["FAIL", "FAIL"]
    assert optuna_study.trial_count(study) == 5 and not list(optuna_study.running_trials(study))
    with pytest.raises(nasbench.NasbenchError, match="objectives it was started with"):
        optuna_study.open_study(db, "s", [True, False, False], ["acc", "macs", "latency"])
    assert optuna_study.resumed_seed(3, 0) == 3 != optuna_study.resumed_seed(3, 4)


def test_driver_records_objectives_and_constraints_without_ray(space, tmp_path):
    """Every outcome through the driver: one feasibility rule, values and constraints told to Optuna."""
    objectives = ("acc", "macs", "latency")
    run = new_run(tmp_path / "run")
    clock = BudgetClock(Budget(TRIALS, 10)).start()
    sink = RecordSink(run, "tpe", seed=0, num_classes=10, objectives=objectives, limits={"latency": 2.0}, clock=clock)
    ctx = SearchContext(space=space, num_classes=10, objectives=objectives, limits={"latency": 2.0}, seed=0,
                        evaluate=None, study_file=run.optuna_db)  # fmt: skip
    driver = TrialDriver(ctx, "tpe", clock, sink)
    base = {"acc": 0.7, "macs": 1e6, "params": 5e4, "latency_ms": math.nan, "eval_seconds": 0.1}
    outcomes = [
        {**base, "status": "ok", "error": "", "latency_pred_ms": 1.5, "note": 1},  # feasible
        {**base, "status": "ok", "error": "", "latency_pred_ms": math.nan, "latency_ms": 3.0},  # measured, over
        {**base, "status": "ok", "error": "", "latency_pred_ms": math.nan},  # latency unknown
        {"status": "failed", "error": "ValueError: no", "eval_seconds": 0.1},
        None,  # never reported (a stopped trial): nothing recorded, the trial marked interrupted
    ]
    proposals = [driver.ask() for _ in outcomes]
    for proposal, outcome in zip(proposals, outcomes, strict=True):
        driver.tell(proposal, outcome)
    records = [row_as_dict(r) for r in run.records().to_dict("records")]
    assert [r["status"] for r in records] == ["ok", "infeasible", "failed", "failed"]
    assert records[0]["extra"] == {"note": 1}  # the evaluator's other fields
    assert isinstance(records[0]["macs"], int) and records[0]["acc"] == 0.7
    assert records[1]["extra"]["acc_measured"] == 0.7 and "latency over its limit 2 by 50.0%" in records[1]["error"]
    assert "objective latency is not a finite number" in records[2]["error"]
    assert records[3]["macs"] == count(proposals[3].arch, 10).macs  # failed: analytic MACs and params
    trials = study_of(run, "tpe", objectives=objectives).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert trials[0].values == [0.7, 1e6, 1.5] and trials[1].values == [0.7, 1e6, 3.0]  # infeasible: told
    assert trials[1].constraints["latency"] == pytest.approx(0.5) and trials[0].constraints["latency"] < 0
    assert trials[4].user_attrs["interrupted"] and clock.spent == 4  # four evaluations counted
    # A proposal of an arch already evaluated passes the stored record on: told again, not recorded again.
    driver.sink._stored[proposals[1].arch.id] = run.records().to_dict("records")[1]
    repeat = driver.ask()
    repeat.stored = driver.sink.stored(proposals[1].arch)
    repeat.arch = proposals[1].arch
    driver.tell(repeat, None)
    assert len(run.records()) == 4 and study_of(run, "tpe", objectives=objectives).trials[-1].values == trials[1].values
    assert study_of(run, "tpe", objectives=objectives).trials[-1].user_attrs["status"] == "reused"


def test_trial_searchers_of_one_run_propose_different_architectures(space, tmp_path):
    """NSGA-II's first generation and TPE's start-up draw as the random sampler does; each searcher seeds
    its own sampler, so a run with several does not evaluate the same architectures twice."""
    run = new_run(tmp_path / "run")
    firsts = {}
    for sampler in optuna_study.SAMPLERS:
        clock = BudgetClock(Budget(TRIALS, 8)).start()
        sink = RecordSink(run, sampler, seed=0, num_classes=10, objectives=("acc", "macs"), limits={}, clock=clock)
        ctx = SearchContext(space=space, num_classes=10, objectives=("acc", "macs"), limits={}, seed=0,
                            evaluate=None, study_file=run.optuna_db)  # fmt: skip
        driver = TrialDriver(ctx, sampler, clock, sink)
        firsts[sampler] = [driver.ask().arch.id for _ in range(8)]
    assert len({tuple(ids) for ids in firsts.values()}) == len(firsts), firsts
    assert not set(firsts["nsga2"]) & set(firsts["random"])


# --- a local Ray in the run folder: budget, failures, constraints, shared weights, resume --------------------


def test_local_ray_search_failures_and_resume(space, tmp_path):
    run = new_run(tmp_path / "a-run-folder-with-a-long-enough-name-to-need-the-short-socket-alias")
    limits = {"macs": 5e6}
    with run, ray_session(run.ray_dir):
        shared = put_shared({"scale": 6.0})  # the supernet weights, in the real thing
        log, first, _ = search(space, run, "nsga2", Budget(TRIALS, 6), fail_mod=3, limits=limits, shared=shared)

        ours = ray_processes(os.getpid())  # raylet, GCS, agents, workers: none may outlive the session
        check_records(first, "nsga2")
        assert len(first) == 6  # the tiny space has ~10^9 archs: no repeats
        check_one_build_per_worker(log, first)
        by_status = {s: [r for r in first if r["status"] == s] for s in ("ok", "failed", "infeasible")}
        assert by_status["failed"] and (by_status["ok"] or by_status["infeasible"])  # the search went on
        assert all("RuntimeError: evaluation of" in r["error"] for r in by_status["failed"])
        assert all(r["macs"] > 5e6 and "macs over its limit" in r["error"] for r in by_status["infeasible"])
        assert all(r["macs"] <= 5e6 for r in by_status["ok"])
        trials = {t.number: t for t in study_of(run, "nsga2").trials}
        for r in first:  # Optuna: failures FAIL; infeasible ones COMPLETE with the quality floor + constraint
            t = trials[r["trial"]]
            assert t.state.name == ("FAIL" if r["status"] == "failed" else "COMPLETE")
            if r["status"] != "failed":
                assert t.values[1] == r["macs"] and (t.constraints["macs"] > 0) == (r["status"] == "infeasible")

        # As a killed run leaves it: a trial never evaluated, one evaluated (recorded) but never told,
        # and the sampler proposing an evaluated arch again (enqueued here, so it surely does).
        study = study_of(run, "nsga2")
        dims = dict(study.trials[0].distributions)
        study.ask(fixed_distributions=dims)
        not_told = study.ask(fixed_distributions=dims)
        clock = BudgetClock(Budget(TRIALS, 9), spent_before=6.0)
        sink = RecordSink(run, "nsga2", seed=0, num_classes=10, objectives=("acc", "macs"), limits=limits, clock=clock)
        sink.record(space.decode(not_told.params), {"status": "ok", "acc": 0.5}, trial=not_told.number)
        done = next(r for r in first if r["status"] != "failed")
        study.enqueue_trial(space.encode(nasbench.Arch.parse(done["arch"])))
        evals_before = len(list(log.glob("eval-*")))

        budget = Budget(TRIALS, 9)  # 7 recorded: two more evaluations
        _, second, _ = search(space, run, "nsga2", budget, limits=limits, shared=shared, concurrency=1, spent=7)
    trials = study_of(run, "nsga2").trials
    repeats = sum(t.user_attrs.get("status") == "reused" for t in trials[9:])  # NSGA-II's own (a child = a parent)
    assert len(trials) == 11 + repeats  # 6 + 2 left RUNNING + the enqueued repeat + 2 new evaluations
    assert [t.user_attrs.get("interrupted", False) for t in trials[6:8]] == [True, False]
    assert trials[7].state.name == "COMPLETE" and trials[7].user_attrs["status"] == "reused"
    assert trials[8].user_attrs["status"] == "reused"
    assert space.decode(trials[8].params) == nasbench.Arch.parse(done["arch"])
    assert len(second) == 9 and not pd.Series([r["arch_id"] for r in second]).duplicated().any()
    new = [r for r in second if r["trial"] > 8 and not r["error"].endswith("not evaluated")]  # over the limit: not
    assert len(list(log.glob("eval-*"))) == evals_before + len(new)  # nothing evaluated twice
    check_one_build_per_worker(
        log, [r for r in second if r["trial"] > 8]
    )  # the resumed search's workers built theirs once too

    assert run.optuna_db.is_file() and list(run.tune_dir.iterdir())
    assert list(run.ray_dir.glob("session_2*"))  # Ray's temp files live in the run folder
    assert len(ours) >= 3 and not still_alive(ours)


# --- an existing cluster: `ray start --head` on loopback, under a time budget ------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_cluster(marker: str) -> None:
    """Stop exactly the processes of our cluster (a plain ``ray stop`` would stop every Ray of this user
    on the machine): those that inherited ``marker`` in their environment, and their descendants (Ray's
    agents and workers rewrite what /proc shows of their environment). raylet and gcs_server take long
    to honour SIGTERM and a test cluster has nothing to save: SIGKILL after a short grace."""
    for _ in range(2):  # a second sweep for workers that were starting during the first
        ours: dict[int, psutil.Process] = {}
        for p in psutil.process_iter():
            try:
                if p.environ().get("NASBENCH_TEST_CLUSTER") == marker:
                    ours |= {q.pid: q for q in [p, *p.children(recursive=True)]}
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        for p in ours.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(list(ours.values()), timeout=2)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)


@pytest.mark.slow  # a second Ray cluster; its 20 s budget is wall time, which a loaded machine eats
def test_ray_cluster_on_loopback_with_a_time_budget(space, tmp_path):
    port, marker, budget = free_port(), uuid.uuid4().hex, 20.0
    temp = tempfile.mkdtemp(prefix="nbc-")
    env = {**os.environ, "NASBENCH_TEST_CLUSTER": marker}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head = [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2"]
    head += ["--include-dashboard=false", "--temp-dir", temp, "--disable-usage-stats"]
    try:
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        run = new_run(tmp_path / "run")
        with run, ray_session(run.ray_dir, f"127.0.0.1:{port}"):
            log, records, clock = search(space, run, "tpe", Budget(WALL_TIME, budget), sleep_s=0.3)
        check_records(records, "tpe")
        check_one_build_per_worker(log, records)
        assert clock.exhausted  # it ran until its budget was spent, then every trial was stopped
        study = study_of(run, "tpe")
        assert not list(optuna_study.running_trials(study))  # stopped trials closed, as interrupted
        reused = sum(t.user_attrs.get("status") == "reused" for t in study.trials)  # repeats: told, not recorded
        assert optuna_study.trial_count(study) == len(records) + reused
        assert not run.ray_dir.exists()  # the cluster keeps its own temp dir
    finally:
        stop_cluster(marker)
        cluster = {}
        for p in psutil.process_iter():  # all gone, agents included (found by their open logs; ours: the driver)
            with contextlib.suppress(psutil.Error):
                if p.pid != os.getpid() and any(f.path.startswith(temp) for f in p.open_files()):
                    cluster[p.pid] = p.create_time()
        leftovers = still_alive(cluster, wait_s=5)
        shutil.rmtree(temp, ignore_errors=True)
    assert not leftovers


# --- every sampler under both budgets (slow: ~15 s of Ray start-up per search on 2 cores) -----------------


@pytest.fixture(scope="module")
def shared_ray(tmp_path_factory):
    with ray_session(tmp_path_factory.mktemp("ray"), num_gpus=1):  # declared: trials may ask for shares of it
        yield


def test_trials_on_cuda_ask_ray_for_a_share_of_the_one_gpu(space, tmp_path, shared_ray):
    resources = trial_resources(torch.device("cuda"), concurrency=2)  # what the search asks for on CUDA
    with new_run(tmp_path / "gpu") as run:
        log, records, _ = search(space, run, "random", Budget(TRIALS, 4), resources=resources, probe_gpus=True)
    check_records(records, "random")
    assert len(records) == 4 and {r["extra"]["gpu_share"] for r in records} == {0.5}
    assert {tuple(r["extra"]["gpu_ids"]) for r in records} == {("0",)}  # both workers on the one GPU
    assert {r["extra"]["visible"] for r in records} == {"0"}  # a worker's cuda is the GPU Ray gave it
    check_one_build_per_worker(log, records)


@pytest.mark.parametrize(  # one sampler by default: the Ray workers' path is the same for each (contract suite)
    "sampler", [s if s == "nsga2" else pytest.param(s, marks=pytest.mark.slow) for s in optuna_study.SAMPLERS]
)
def test_each_sampler_honours_a_trial_budget(space, tmp_path, shared_ray, sampler):
    with new_run(tmp_path / "trials") as run:
        log, records, _ = search(space, run, sampler, Budget(TRIALS, 5), fail_mod=4)
    check_records(records, sampler)
    assert len(records) == 5 and optuna_study.trial_count(study_of(run, sampler)) == 5
    check_one_build_per_worker(log, records)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", optuna_study.SAMPLERS)
def test_each_sampler_honours_a_time_budget(space, tmp_path, shared_ray, sampler):
    with new_run(tmp_path / "time") as run:
        _, records, clock = search(space, run, sampler, Budget(WALL_TIME, 12), sleep_s=0.3)
    assert clock.exhausted
    check_records(records, sampler)
    assert not list(optuna_study.running_trials(study_of(run, sampler)))


@pytest.mark.slow
def test_no_ray_process_outlives_a_killed_driver(tmp_path):
    code = "import sys, time; from pathlib import Path; from nasbench.engines.ray_tune import ray_session\n"
    code += "with ray_session(Path(sys.argv[1]) / 'ray_tmp'):\n    print('up', flush=True); time.sleep(120)\n"
    driver = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "up"
        time.sleep(3)  # the raylet starts its agents and workers
        ours = ray_processes(driver.pid)
        aliases = [a for a in Path("/tmp").glob("nbray-*/t") if a.resolve() == (tmp_path / "ray_tmp").resolve()]
    finally:
        driver.kill()
        driver.wait()
    assert len(ours) >= 3 and not still_alive(ours)
    assert aliases and not any(a.parent.exists() for a in aliases)  # the socket alias is cleared away too


@pytest.mark.parametrize("sampler", ["nsga2", "random"])
def test_proposals_over_the_macs_limit_are_recorded_not_evaluated(space, tmp_path, sampler):
    """Their MACs are analytic: recorded infeasible at once, the study told the quality floor and the
    violation, the evaluator never called; a trials budget counts them, as every record."""
    macs = sorted(count(space.sample(s), 10).macs for s in range(40))
    limit = macs[len(macs) // 2]
    run = new_run(tmp_path / "run")
    evaluated = []

    def evaluate(arch):
        evaluated.append(arch.id)
        return {"acc": 0.5, "eval_seconds": 0.0}

    clock = BudgetClock(Budget(TRIALS, 12)).start()
    sink = RecordSink(run, sampler, seed=0, num_classes=10, objectives=("acc", "macs"), limits={"macs": limit},
                      clock=clock)  # fmt: skip
    ctx = SearchContext(space=space, num_classes=10, objectives=("acc", "macs"), limits={"macs": limit}, seed=0,
                        evaluate=evaluate, study_file=run.optuna_db)  # fmt: skip
    registry.searcher_class(sampler)().search(ctx, clock, sink)
    records = [row_as_dict(r) for r in run.records().to_dict("records")]
    over = [r for r in records if r["macs"] > limit]
    assert len(records) == 12 == clock.spent and over and len(over) < 12
    assert all(r["status"] == "infeasible" and r["error"].endswith("not evaluated") for r in over)
    assert all("acc_measured" not in r["extra"] and math.isnan(r["acc"]) for r in over)
    assert sorted(evaluated) == sorted(r["arch_id"] for r in records if r["macs"] <= limit)
    trials = {t.number: t for t in study_of(run, sampler).trials}
    for r in over:
        assert trials[r["trial"]].values == [0.0, r["macs"]] and trials[r["trial"]].constraints["macs"] > 0
