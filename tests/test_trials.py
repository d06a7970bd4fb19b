"""Trial searchers (nsga2, tpe, random): Ray Tune runs them, Optuna proposes; budgets, records, failures,
resume, one evaluator per worker, no Ray process left behind, and a real ``ray start --head`` cluster.

The evaluator is cheap and real: analytic MACs, and an accuracy that grows with log MACs plus a fixed
per-arch noise, so no supernet is needed. Workers import this module by name (``PYTHONPATH``), the way
they import ``nasbench`` for the real evaluator. Starting Ray workers is the expensive part (seconds
each on a busy machine), so each Ray test checks several things on one run; the full sampler x budget
matrix is marked slow.
"""

import contextlib
import hashlib
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
import psutil
import pytest

import nasbench
from nasbench.counting import count
from nasbench.runs import Record
from nasbench.search import optuna_samplers
from nasbench.search.ray_trials import _Run, default_study_name, get_shared, put_shared, ray_session, run_trials

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
    """acc in [0.3, 0.95]: normalised log MACs plus a hash noise; fails on archs whose id hash says so."""

    def __init__(self, log: Path, fail_mod: int, sleep_s: float, scale: float):
        self.log, self.fail_mod, self.sleep_s, self.scale = log, fail_mod, sleep_s, scale

    def __call__(self, arch):
        (self.log / f"eval-{arch.id}-{uuid.uuid4().hex[:6]}").touch()
        time.sleep(self.sleep_s)
        h = int(hashlib.sha1(arch.id.encode()).hexdigest(), 16)
        if self.fail_mod and h % self.fail_mod == 0:
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


def search(space, run_dir, records, sampler="random", **kw):
    log = run_dir / f"log-{sampler}"
    log.mkdir(parents=True, exist_ok=True)
    factory = Factory(log, kw.pop("fail_mod", 0), kw.pop("sleep_s", 0.0), kw.pop("shared", None))
    args = dict(sampler=sampler, objectives=["acc", "macs"], seed=0, max_trials=4, time_budget_s=None, num_classes=10)
    args.update(kw)
    run_trials(space, factory, storage_dir=run_dir, on_result=records.append, **args)
    return log


def study_of(run_dir, sampler, seed=0, objectives=("acc", "macs")):
    name = default_study_name(sampler, seed, list(objectives))
    return optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'optuna.db'}")


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
    assert {str(r["extra"]["worker_pid"]) for r in records if r["status"] != "failed"} <= set(builds)


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


@pytest.mark.parametrize("sampler", optuna_samplers.SAMPLERS)
def test_samplers_are_seeded_and_store_constraints(space, tmp_path, sampler):
    dims = optuna_samplers.distributions([(d.label, d.choices) for d in space.dimensions()])
    proposals = []
    for run in ("a", "b"):
        db = optuna_samplers.storage(tmp_path / run)
        study = optuna_samplers.open_study(db, "s", [True, False], ["acc", "macs"])
        study.sampler = optuna_samplers.make_sampler(sampler, seed=3, population_size=2)
        params = []
        for i in range(4):
            trial = study.ask(fixed_distributions=dims)
            params.append(trial.params)
            excess = {"macs": 0.5 if i % 2 else -0.5}
            optuna_samplers.tell(study, trial, [0.1 * i, 10.0 * i], constraints=excess, attrs={"i": i})
        proposals.append(params)
        space.decode(params[0])  # proposals are points of the space
    assert proposals[0] == proposals[1]  # same seed, same proposals
    assert optuna_samplers.trial_count(study) == 4
    assert [t.constraints["macs"] > 0 for t in study.trials] == [False, True] * 2
    optuna_samplers.tell(study, study.ask(dims), [math.nan, 1.0])  # NaN: failed, not a fake score
    optuna_samplers.interrupt(study, study.ask(dims).number)
    assert [t.state.name for t in study.trials[-2:]] == ["FAIL", "FAIL"]
    assert optuna_samplers.trial_count(study) == 5 and not list(optuna_samplers.running_trials(study))
    with pytest.raises(nasbench.NasbenchError, match="objectives it was started with"):
        optuna_samplers.open_study(db, "s", [True, False, False], ["acc", "macs", "latency"])
    assert optuna_samplers.resumed_seed(3, 0) == 3 != optuna_samplers.resumed_seed(3, 4)


def test_records_objectives_and_constraints_without_ray(space, tmp_path):
    objectives = ["acc", "macs", "latency"]
    study = optuna_samplers.open_study(optuna_samplers.storage(tmp_path), "s", [True, False, False], objectives)
    records = []
    run = _Run(space, "tpe", 0, "s", objectives, {"latency": 2.0}, records.append, None, num_classes=10)
    dims = optuna_samplers.distributions([(d.label, d.choices) for d in space.dimensions()])
    base = {"acc": 0.7, "macs": 1e6, "params": 5e4, "latency_ms": math.nan, "eval_seconds": 0.1}
    results = [
        {**base, "status": "ok", "error": "", "latency_pred_ms": 1.5, "note": 1},  # feasible
        {**base, "status": "ok", "error": "", "latency_pred_ms": math.nan, "latency_ms": 3.0},  # measured, over
        {**base, "status": "ok", "error": "", "latency_pred_ms": math.nan},  # latency unknown
        {"status": "failed", "error": "ValueError: no", "eval_seconds": 0.1},
    ]
    for i, result in enumerate(results):
        trial = study.ask(fixed_distributions=dims)
        run.finish(study, trial, trial.number, space.sample(i), result, reused=False)
    assert [r["status"] for r in records] == ["ok", "infeasible", "failed", "failed"]
    assert records[0]["extra"] == {"note": 1, "study": "s"}  # the evaluator's other fields
    assert isinstance(records[0]["macs"], int) and records[0]["acc"] == 0.7
    assert records[1]["extra"]["acc_measured"] == 0.7 and "latency over its limit 2 by 50.0%" in records[1]["error"]
    assert "objective latency is not a finite number" in records[2]["error"]
    assert records[3]["macs"] == count(space.sample(3), 10).macs  # failed: analytic MACs and params
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    assert trials[0].values == [0.7, 1e6, 1.5] and trials[1].values[2] == 3.0
    assert trials[1].constraints["latency"] == pytest.approx(0.5) and trials[0].constraints["latency"] < 0
    # A stored record passed on (resume, or a repeated proposal) is told again but not recorded again.
    trial = study.ask(fixed_distributions=dims)
    run.finish(study, trial, trial.number, space.sample(1), records[1], reused=True)
    assert len(records) == 4 and study.trials[-1].values == trials[1].values
    assert study.trials[-1].user_attrs["status"] == "reused"


# --- a local Ray in the run folder: budget, failures, constraints, shared weights, resume --------------------


def test_local_ray_search_failures_and_resume(space, tmp_path):
    run_dir = tmp_path / "a-run-folder-with-a-long-enough-name-to-need-the-short-socket-alias"
    first = []
    with ray_session(run_dir):
        shared = put_shared({"scale": 6.0})  # the supernet weights, in the real thing
        log = search(space, run_dir, first, "nsga2", max_trials=6, fail_mod=3, constraints={"macs": 5e6}, shared=shared)

        ours = ray_processes(os.getpid())  # raylet, GCS, agents, workers: none may outlive the session
        check_records(first, "nsga2")
        assert len(first) == 6  # the tiny space has ~10^9 archs: no repeats
        check_one_build_per_worker(log, first)
        by_status = {s: [r for r in first if r["status"] == s] for s in ("ok", "failed", "infeasible")}
        assert by_status["failed"] and (by_status["ok"] or by_status["infeasible"])  # the search went on
        assert all("RuntimeError: evaluation of" in r["error"] for r in by_status["failed"])
        assert all(r["macs"] > 5e6 and "macs over its limit" in r["error"] for r in by_status["infeasible"])
        assert all(r["macs"] <= 5e6 for r in by_status["ok"])
        trials = {t.number: t for t in study_of(run_dir, "nsga2").trials}
        for r in first:  # Optuna: failures FAIL; infeasible ones COMPLETE with measured values + constraint
            t = trials[r["trial"]]
            assert t.state.name == ("FAIL" if r["status"] == "failed" else "COMPLETE")
            if r["status"] != "failed":
                assert t.values[1] == r["macs"] and (t.constraints["macs"] > 0) == (r["status"] == "infeasible")

        # As a killed run leaves it: a trial never evaluated, one evaluated (recorded) but never told,
        # and the sampler proposing an evaluated arch again (enqueued here, so it surely does).
        study = study_of(run_dir, "nsga2")
        dims = dict(study.trials[0].distributions)
        study.ask(fixed_distributions=dims)
        recorded_not_told = space.decode(study.ask(fixed_distributions=dims).params)
        done = [r for r in first if r["status"] != "failed"]  # ok or infeasible: completed evaluations
        stored = {r["arch_id"]: r for r in first if r["status"] != "failed"}
        stored[recorded_not_told.id] = {**done[0], "arch_id": recorded_not_told.id, "acc": 0.5, "status": "ok"}
        study.enqueue_trial(space.encode(nasbench.Arch.parse(done[0]["arch"])))
        evals_before = len(list(log.glob("eval-*")))

        second = []
        again = dict(max_trials=10, constraints={"macs": 5e6}, shared=shared, concurrency=1)
        search(space, run_dir, second, "nsga2", skip=lambda a: stored.get(a.id), **again)
    trials = study_of(run_dir, "nsga2").trials
    assert len(trials) == 11  # 6 + 2 left RUNNING + the enqueued one + 2 new
    assert [t.user_attrs.get("interrupted", False) for t in trials[6:8]] == [True, False]
    assert trials[7].state.name == "COMPLETE" and trials[7].user_attrs["status"] == "reused"
    assert trials[8].user_attrs["status"] == "reused"
    assert space.decode(trials[8].params) == nasbench.Arch.parse(done[0]["arch"])
    assert optuna_samplers.trial_count(study_of(run_dir, "nsga2")) == 10  # max_trials: the study's total
    assert len(second) == 2 and {r["arch_id"] for r in second}.isdisjoint(stored)
    assert len(list(log.glob("eval-*"))) == evals_before + 2  # nothing evaluated twice
    check_one_build_per_worker(log, first + second)  # the resumed search's workers built theirs once too

    assert (run_dir / "optuna.db").is_file() and list((run_dir / "tune").iterdir())
    assert list((run_dir / "ray_tmp").glob("session_2*"))  # Ray's temp files live in the run folder
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


def test_ray_cluster_on_loopback_with_a_time_budget(space, tmp_path):
    port, marker, budget = free_port(), uuid.uuid4().hex, 20.0
    temp = tempfile.mkdtemp(prefix="nbc-")
    env = {**os.environ, "NASBENCH_TEST_CLUSTER": marker}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head = [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2"]
    head += ["--include-dashboard=false", "--temp-dir", temp, "--disable-usage-stats"]
    try:
        subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
        records = []
        start = time.monotonic()
        log = search(
            space, tmp_path, records, "tpe", max_trials=None, time_budget_s=budget, sleep_s=0.3,
            ray_address=f"127.0.0.1:{port}",
        )  # fmt: skip
        elapsed = time.monotonic() - start
        check_records(records, "tpe")
        check_one_build_per_worker(log, records)
        assert budget <= elapsed < budget + 10
        study = study_of(tmp_path, "tpe")
        assert not list(optuna_samplers.running_trials(study))  # stopped trials closed, as interrupted
        assert optuna_samplers.trial_count(study) == len(records)
        assert not (tmp_path / "ray_tmp").exists()  # the cluster keeps its own temp dir
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
    with ray_session(tmp_path_factory.mktemp("ray")):
        yield


@pytest.mark.parametrize("sampler", optuna_samplers.SAMPLERS)
def test_each_sampler_honours_a_trial_budget(space, tmp_path, shared_ray, sampler):
    records = []
    log = search(space, tmp_path / "trials", records, sampler, max_trials=5, fail_mod=4)
    check_records(records, sampler)
    assert len(records) == 5 and optuna_samplers.trial_count(study_of(tmp_path / "trials", sampler)) == 5
    check_one_build_per_worker(log, records)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", optuna_samplers.SAMPLERS)
def test_each_sampler_honours_a_time_budget(space, tmp_path, shared_ray, sampler):
    records, start = [], time.monotonic()
    search(space, tmp_path / "time", records, sampler, max_trials=None, time_budget_s=12, sleep_s=0.3)
    assert 12 <= time.monotonic() - start < 22
    check_records(records, sampler)
    assert not list(optuna_samplers.running_trials(study_of(tmp_path / "time", sampler)))


@pytest.mark.slow
def test_no_ray_process_outlives_a_killed_driver(tmp_path):
    code = "import sys, time; from pathlib import Path; from nasbench.search.ray_trials import ray_session\n"
    code += "with ray_session(Path(sys.argv[1])):\n    print('up', flush=True); time.sleep(120)\n"
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
