"""The contract every registered searcher passes (Optuna's sampler test suite is the model).

For each name in ``nasbench.search.registry``: it honours a trials budget and a time budget, the same seed
gives the same records, every record is valid, a search killed mid-way and resumed loses and repeats
nothing, and a failing evaluation is recorded while the search goes on. The supernet is real (the
proximal searcher fine-tunes copies of it) but untrained; the evaluation is a cheap deterministic stand-in
(accuracy from log MACs plus a per-arch hash), so the suite tests the searchers, not the supernet. Trial
searchers evaluate in process here; their Ray workers are tested in ``test_trials.py``.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

import nasbench
from nasbench.budget import TRIALS, WALL_TIME, Budget, BudgetClock
from nasbench.counting import count
from nasbench.data import load_dataset, search_data
from nasbench.runs import STATUSES, Record, RunDir
from nasbench.search import registry
from nasbench.search.base import RecordSink, SearchContext
from nasbench.supernet import Supernet

NAMES = registry.names()
SETTINGS = {"proximal": {"targets": 2, "steps": 4}}  # each searcher's constructor arguments


class Killed(BaseException):
    """Stands in for SIGKILL: not an ``Exception``, so no searcher may swallow it as a failed evaluation."""


class StandIn:
    """``arch -> record fields``: acc rises with log MACs, plus a hash; counts calls; may fail or kill."""

    def __init__(self, fail_every: int = 0, kill_at: int = 0, tick=None):
        self.calls, self.fail_every, self.kill_at, self.tick = 0, fail_every, kill_at, tick

    def __call__(self, arch):
        self.calls += 1
        if self.tick is not None:
            self.tick()
        if self.kill_at and self.calls == self.kill_at:
            raise Killed()
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError(f"evaluation of {arch.id} blew up")
        cost = count(arch, 10)
        h = int(hashlib.sha1(arch.id.encode()).hexdigest(), 16) % 1000 / 1000
        acc = min(0.95, max(0.1, 0.1 + 0.12 * (math.log(cost.macs) - 12.5) + 0.05 * h))
        return {"acc": acc, "macs": cost.macs, "params": cost.params, "latency_pred_ms": math.nan}


@pytest.fixture(scope="module")
def world():
    space = nasbench.load_space("tiny")
    torch.manual_seed(0)
    supernet = Supernet(space, num_classes=10)
    train, val = search_data(load_dataset("digits"), 0.1, 0)
    return space, supernet, train, val


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self) -> None:
        self.now += 1.0


def search(world, tmp_path, name, budget, evaluate, *, run=None, spent=0.0, clock=None, limits=None):
    """Run searcher ``name`` once; returns the run (open) and its clock."""
    space, supernet, train, val = world
    run = run or RunDir.create({"space": "tiny", "data": "digits", "searcher": name}, out=tmp_path / "run")
    clock = clock or BudgetClock(budget, spent_before=spent)
    ctx = SearchContext(
        space=space, num_classes=10, objectives=("acc", "macs"), limits=dict(limits or {}), seed=3,
        evaluate=evaluate, supernet=supernet, train=train, val=val, study_file=run.optuna_db,
    )  # fmt: skip
    sink = RecordSink(run, name, seed=3, num_classes=10, objectives=ctx.objectives, limits=ctx.limits, clock=clock)
    try:
        registry.searcher_class(name)(**SETTINGS.get(name, {})).search(ctx, clock.start(), sink)
    finally:
        clock.stop()
    return run, clock


def own(run, name):
    records = run.records()
    return records[records.searcher == name].reset_index(drop=True)


@pytest.mark.parametrize("name", NAMES)
def test_honours_a_trials_budget_with_valid_records(world, tmp_path, name):
    evaluate = StandIn()
    run, clock = search(world, tmp_path, name, Budget(TRIALS, 4), evaluate)
    records = own(run, name)
    assert 1 <= len(records) <= 4 and evaluate.calls == len(records) and clock.spent == len(records)
    if registry.searcher_class(name).uses_workers:
        assert len(records) == 4  # a sampler always has more to propose in a space of 10^9 archs
    space = world[0]
    for row in records.to_dict("records"):
        Record(**{k: v for k, v in row.items() if k != "extra"}, extra={})  # the schema's own checks
        arch = nasbench.Arch.parse(row["arch"])
        assert space.decode(space.encode(arch)) == arch and arch.id == row["arch_id"]
        assert row["macs"] == count(arch, 10).macs and row["status"] in STATUSES
        assert row["searcher"] == name and row["seed"] == 3
    assert not records.arch_id.duplicated().any() and not records.trial.duplicated().any()


@pytest.mark.parametrize("name", NAMES)
def test_honours_a_time_budget(world, tmp_path, name):
    """Each evaluation takes one second of a fake clock: a 3.5 s budget allows four at most."""
    fake = FakeTime()
    clock = BudgetClock(Budget(WALL_TIME, 3.5), clock=fake)
    run, clock = search(world, tmp_path, name, None, StandIn(tick=fake.advance), clock=clock)
    assert 1 <= len(own(run, name)) <= 4 and clock.spent <= 4.0


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_records(world, tmp_path, name):
    runs = [search(world, tmp_path / s, name, Budget(TRIALS, 4), StandIn())[0] for s in ("a", "b")]
    a, b = (own(r, name)[["trial", "arch_id", "status", "acc", "macs"]] for r in runs)
    assert a.equals(b)


@pytest.mark.parametrize("name", NAMES)
def test_a_killed_search_resumes_without_losing_or_repeating(world, tmp_path, name):
    budget = Budget(TRIALS, 5)
    with pytest.raises(Killed):
        search(world, tmp_path, name, budget, StandIn(kill_at=3))
    run = RunDir.open(tmp_path / "run")
    before = own(run, name)
    assert len(before) == 2
    resumed = RunDir.resume(tmp_path / "run", run.config)
    evaluate = StandIn()
    with resumed:
        search(world, tmp_path, name, budget, evaluate, run=resumed, spent=float(len(before)))
        after = own(resumed, name)
    assert after.iloc[: len(before)][["trial", "arch_id"]].equals(before[["trial", "arch_id"]])  # nothing lost
    assert not after.arch_id.duplicated().any() and not after.trial.duplicated().any()  # nothing repeated
    assert evaluate.calls == len(after) - len(before) and len(after) <= 5


@pytest.mark.parametrize("name", NAMES)
def test_a_failing_evaluation_is_recorded_and_the_search_goes_on(world, tmp_path, name):
    run, _ = search(world, tmp_path, name, Budget(TRIALS, 4), StandIn(fail_every=2))
    records = own(run, name)
    failed = records[records.status == "failed"]
    assert len(failed) >= 1 and failed.error.str.contains("RuntimeError: evaluation of").all()
    assert failed.acc.isna().all() and (failed.macs > 0).all()  # analytic costs even when it failed
    assert records.index[records.status == "ok"].max() > failed.index.min()  # it went on afterwards


def test_the_proximal_searcher_stops_inside_its_steps_when_the_clock_runs_out(world, tmp_path, monkeypatch):
    """The fake clock also advances in the proximal searcher's weight and architecture steps (a second
    each): a budget spent there ends the search there, before all of its targets' steps are taken, and it
    overruns by at most one step pair and one evaluation."""
    from nasbench.search.proximal import ProximalSearch

    fake, steps = FakeTime(), []
    for step in ("weight_step", "arch_step"):

        def timed(self, *args, _original=getattr(ProximalSearch, step), _step=step, **kwargs):
            steps.append(_step)
            fake.advance()
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ProximalSearch, step, timed)
    clock = BudgetClock(Budget(WALL_TIME, 5.0), clock=fake)
    run, clock = search(world, tmp_path, "proximal", None, StandIn(tick=fake.advance), clock=clock)
    taken = steps.count("weight_step")
    assert steps.count("arch_step") == taken
    assert 1 <= taken < SETTINGS["proximal"]["steps"]  # it stopped inside its first target's steps
    assert clock.exhausted and clock.spent <= 5.0 + 2.0 + 1.0
    assert len(own(run, "proximal")) <= 2  # the time left after the steps pays for an evaluation or two
