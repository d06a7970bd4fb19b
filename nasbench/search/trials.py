"""Trial searchers (``nsga2``, ``tpe``, ``random``): Optuna's samplers propose, workers evaluate.

The driver here is engine-free: it asks the run's Optuna study (through ``nasbench.engines.optuna_study``)
for a proposal, decodes it to an ``Arch``, and tells the study each outcome with its objective values and
constraint values (``<= 0`` feasible: NSGA-II's constrained domination, TPE's feasibility split). Who
evaluates is a ``Workers`` pool: ``InProcessWorkers`` (one at a time, with the run's own supernet) or Ray
Tune's workers (``nasbench.engines.ray_tune.RayWorkers``, several at a time, each with its own copy).

A proposal over ``--max-macs`` is not evaluated: its MACs are analytic, so it is recorded as infeasible at
once (no measured quality) and told to the study with the quality floor (``base.NOT_EVALUATED``), its
costs and its constraint values: NSGA-II's constrained domination, TPE's feasibility split and evolution
rank an infeasible trial by its violation, never by that value.

Budgets count evaluations (records) or time, through the searcher's clock. A proposal of an arch this
searcher already evaluated (a resumed run, or a sampler repeating itself) passes the stored result on:
told to Optuna again, recorded and counted never. Trials a killed run left RUNNING in the study are closed
when the search resumes: told from the stored record if the evaluation had finished, else FAIL, marked
interrupted. The study lives in the run (``RunDir.optuna_db``; one study per searcher, seed and objectives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from rich.console import Console

from nasbench.arch import Arch
from nasbench.budget import TRIALS, BudgetClock
from nasbench.counting import count
from nasbench.engines import optuna_study
from nasbench.errors import NasbenchError
from nasbench.objectives.table import OBJECTIVES, constraint_excess, violations
from nasbench.search.base import REUSABLE, RecordSink, SearchContext, Searcher
from nasbench.search.evaluator import Evaluator, evaluate_outcome
from nasbench.seeds import fork
from nasbench.status import Status

REPEATS_ALLOWED = 3  # a trials budget of n asks at most this many times n proposals (+10): repeats are free


@dataclass
class Proposal:
    trial: Any  # the study's trial, to tell
    number: int  # its number: the record's trial number
    arch: Arch
    stored: dict[str, Any] | None  # this searcher's completed record of ``arch``: pass it on, don't evaluate


def default_study_name(sampler: str, seed: int, objectives: tuple[str, ...] | list[str]) -> str:
    return f"{sampler}-seed{seed}-{'+'.join(objectives)}"


def searcher_seed(sampler: str, seed: int) -> int:
    """The run's seed made the sampler's own. NSGA-II's first generation (and TPE's start-up trials) draw as
    the random sampler does: with the run's seed itself, nsga2 would propose the random searcher's first 50
    architectures, in the same order, and a run with both would evaluate them twice."""
    return fork(seed, sampler)


def proposal_filter(
    space: Any, sink: RecordSink, limits: dict[str, float], num_classes: int, predictor: Any
) -> optuna_study.Accept:
    """What a sampler that filters its proposals (evolution) may ask: a network this searcher has not
    evaluated, not its parent's network again (a change to a decision the network does not use), and within
    the run's limits by its analytic cost (MACs; latency as the run's table predicts it). A closure over
    the parts it needs, not a method: the study's sampler must not hold the driver (nor its run) in a cycle."""

    def accept(params: dict[str, Any], parent: dict[str, Any] | None) -> bool:
        arch = space.decode(params)
        if sink.evaluated(arch) or (parent is not None and space.decode(parent) == arch):
            return False
        if known_violations(arch, limits, num_classes):
            return False
        if predictor is None or "latency" not in limits:
            return True
        return not violations({"latency_pred_ms": float(predictor.predict(arch))}, {"latency": limits["latency"]})

    return accept


def known_violations(arch: Arch, limits: dict[str, float], num_classes: int) -> list[str]:
    """The limits ``arch`` breaks by a cost known exactly before any evaluation (its analytic MACs, the
    count its record will hold); a latency limit is judged on the evaluated record (measured latency wins)."""
    if "macs" not in limits:
        return []
    return violations({"macs": count(arch, num_classes).macs}, {"macs": limits["macs"]})


class TrialDriver:
    """One trial search's study, proposals and outcomes (see the module docstring)."""

    def __init__(self, ctx: SearchContext, sampler: str, clock: BudgetClock, sink: RecordSink):
        if ctx.study_file is None:
            raise ValueError("a trial search needs ctx.study_file for its Optuna study")
        self.space, self.objectives, self.limits = ctx.space, tuple(ctx.objectives), dict(ctx.limits)
        self.num_classes = ctx.num_classes
        self.clock, self.sink = clock, sink
        self.name = default_study_name(sampler, ctx.seed, self.objectives)
        self.dims = optuna_study.distributions([(d.label, d.choices) for d in self.space.dimensions()])
        maximise = [OBJECTIVES[o].maximise for o in self.objectives]
        db, note = optuna_study.open_storage(ctx.study_file)
        self.db = db  # closed when the search ends (TrialSearcher.search)
        if note:
            Console(stderr=True).print(f"[yellow]{note}", soft_wrap=True)  # paths stay whole
        self.study = optuna_study.open_study(db, self.name, maximise, self.objectives)
        if not self.study.get_trials(deepcopy=False):
            optuna_study.replay(self.study, self.journal_trials(), self.dims)  # a lost or damaged study
        before = len(self.study.get_trials(deepcopy=False))
        budget = clock.budget
        population = 50 if budget.is_time else max(4, min(50, budget.count // 4))
        seed = optuna_study.resumed_seed(searcher_seed(sampler, ctx.seed), before)
        accept = proposal_filter(self.space, sink, self.limits, ctx.num_classes, ctx.predictor)
        self.study.sampler = optuna_study.make_sampler(
            sampler, seed, population_size=population, dims=self.dims, accept=accept
        )
        self.in_flight = 0
        self.asks_left = REPEATS_ALLOWED * self.evaluations_left() + 10 if budget.kind == TRIALS else math.inf

    def journal_trials(self) -> list[dict[str, Any]]:
        """This searcher's study as its records tell it (the journal is the record of truth): one trial per
        trial number up to the last recorded, told as it was; a number with no record was interrupted."""
        rows = {int(r["trial"]): r for r in self.sink.rows()}
        trials = []
        for number in range(max(rows, default=-1) + 1):
            row = rows.get(number)
            if row is None:
                trials.append({"params": {}, "values": None, "attrs": {optuna_study.INTERRUPTED: True}})
                continue
            arch = Arch.from_json(row["arch_json"])
            completed = row["status"] in REUSABLE
            trials.append(
                {
                    "params": self.space.encode(arch),
                    "values": self.sink.objective_values(row) if completed else None,
                    "constraints": constraint_excess(row, self.limits),
                    "attrs": {"arch_id": arch.id, "arch": str(arch), "status": row["status"], "rebuilt": True},
                }
            )
        return trials

    def evaluations_left(self) -> int:
        return max(0, int(self.clock.budget.amount - self.clock.spent)) if self.clock.budget.kind == TRIALS else 0

    @property
    def finished(self) -> bool:
        """The budget is spent: nothing more is proposed, and running evaluations may be stopped."""
        return self.clock.exhausted

    def ask(self) -> Proposal | None:
        """The next proposal to evaluate or to pass on, or None when the budget allows no more (counting
        evaluations in flight). Proposals over a limit known before evaluation are recorded on the way."""
        while True:
            if self.finished or self.asks_left <= 0:
                return None
            if self.clock.budget.kind == TRIALS and self.in_flight >= self.evaluations_left():
                return None
            self.asks_left -= 1
            trial, params = optuna_study.ask(self.study, self.dims)
            arch = self.space.decode(params)
            proposal = Proposal(trial, trial.number, arch, self.sink.stored(arch))
            over = [] if proposal.stored is not None else known_violations(arch, self.limits, self.num_classes)
            if not over:
                break
            outcome = {"status": Status.INFEASIBLE, "error": f"{'; '.join(over)}: not evaluated"}
            row = self.sink.record(arch, outcome, trial=trial.number).to_row()
            self._tell_row(trial, arch, row, reused=False)
        if proposal.stored is None:
            self.in_flight += 1
        return proposal

    def tell(self, proposal: Proposal, outcome: dict[str, Any] | None) -> None:
        """Record ``outcome`` (unless it passes a stored result on) and tell the study; ``None``: the
        evaluation never reported (interrupted), so nothing is recorded and the trial is marked so."""
        if proposal.stored is None:
            self.in_flight -= 1
        if proposal.stored is None and outcome is None:
            optuna_study.interrupt(self.study, proposal.trial)
            return
        reused = proposal.stored is not None
        row = proposal.stored if reused else self.sink.record(proposal.arch, outcome, trial=proposal.number).to_row()
        self._tell_row(proposal.trial, proposal.arch, row, reused)

    def _tell_row(self, trial: Any, arch: Arch, row: dict[str, Any], reused: bool) -> None:
        completed = row["status"] in REUSABLE
        values = self.sink.objective_values(row) if completed else None
        excess = constraint_excess(row, self.limits) if completed else {}
        attrs = {"arch_id": arch.id, "arch": str(arch), "status": "reused" if reused else row["status"]}
        if row.get("error"):
            attrs["error"] = str(row["error"])[:2000]
        optuna_study.tell(self.study, trial, values, constraints=excess, attrs=attrs)

    def close_interrupted(self) -> None:
        """Close the trials a killed run left RUNNING: told from a stored record, else interrupted."""
        for number, params in list(optuna_study.running_trials(self.study)):
            try:
                arch = self.space.decode(params)
            except NasbenchError:
                arch = None
            stored = self.sink.stored(arch) if arch is not None else None
            if stored is None:
                optuna_study.interrupt(self.study, number)
            else:
                self._tell_row(number, arch, stored, reused=True)

    def max_starts(self) -> int:
        """How many trials a worker pool may start at most (-1: no count, the clock decides)."""
        return -1 if math.isinf(self.asks_left) else int(self.asks_left)


class Workers(Protocol):
    """Evaluates a driver's proposals until it has no more: in this process, or on Ray's workers."""

    def run(self, driver: TrialDriver, *, name: str, max_trials: int) -> None: ...


@dataclass
class InProcessWorkers:
    """One evaluation at a time, in this process, with the run's own evaluator."""

    evaluate: Evaluator

    def run(self, driver: TrialDriver, *, name: str, max_trials: int) -> None:
        while (proposal := driver.ask()) is not None:
            outcome = None if proposal.stored is not None else evaluate_outcome(self.evaluate, proposal.arch)
            driver.tell(proposal, outcome)


class TrialSearcher(Searcher):
    """A trial searcher over one of Optuna's samplers (``sampler``, a name ``optuna_study`` knows)."""

    sampler: ClassVar[str]
    uses_workers = True

    def search(self, ctx: SearchContext, clock: BudgetClock, sink: RecordSink) -> None:
        driver = TrialDriver(ctx, self.sampler, clock, sink)
        try:
            driver.close_interrupted()
            workers = ctx.workers if ctx.workers is not None else InProcessWorkers(ctx.evaluate)
            workers.run(driver, name=driver.name, max_trials=driver.max_starts())
        finally:
            optuna_study.close(driver.db)  # the study's file is closed when its search ends


class NSGA2Searcher(TrialSearcher):
    name = sampler = "nsga2"


class TPESearcher(TrialSearcher):
    name = sampler = "tpe"


class RandomSearcher(TrialSearcher):
    name = sampler = "random"


class EvolutionSearcher(TrialSearcher):
    """Regularized evolution (``optuna_study.EvolutionSampler``): mutations of the best recent networks,
    each proposal a new network within the run's limits."""

    name = sampler = "evolution"
