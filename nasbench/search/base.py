"""The searcher protocol: what every searcher is given, what it must do, and where its records go.

A searcher (``Searcher``) searches a trained supernet under a budget and emits one record per evaluated
architecture, through a ``RecordSink``. The pipeline (``nasbench.pipeline``) knows searchers only through
this protocol and the registry (``nasbench.search.registry``); a new searcher is one module plus its registry
entry, and passes the contract suite (``tests/test_searcher_contract.py``): it honours its budget, the same
seed gives the same records, every record is valid, a resumed search loses and repeats nothing, and a failing
evaluation is recorded while the search goes on.

The sink owns everything records have in common: trial numbers, the one feasibility rule of the
objectives table (an over-limit architecture is recorded as ``infeasible``, never as a failure: with its
measured accuracy and score in ``extra["acc_measured"]`` and ``extra["score_measured"]`` when it was
evaluated; one over ``--max-macs`` is known to be before, and is not evaluated), what a resumed
search already evaluated, and counting a trials budget. Searchers only propose architectures and hand over
evaluation outcomes.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nasbench.arch import Arch
from nasbench.budget import TRIALS, BudgetClock
from nasbench.counting import count
from nasbench.objectives.table import QUALITY, values, violations
from nasbench.runs import Record, RunDir, Status
from nasbench.search.evaluator import Evaluator, evaluate_outcome
from nasbench.spaces import SearchSpace
from nasbench.training.evaluate import EvalSettings

REUSABLE = (Status.OK, Status.INFEASIBLE)  # statuses of a completed evaluation: a resumed search does not repeat them
# The quality an infeasible record that was never evaluated (over --max-macs: known before) is told to a
# study with: the floor of both quality objectives (accuracy and score lie in [0, 1]). Samplers that take
# constraints rank infeasible trials by their violation, never by this value.
NOT_EVALUATED = 0.0
RECORD_FIELDS = ("acc", "score", "macs", "params", "latency_pred_ms", "latency_ms", "eval_seconds")


@dataclass
class SearchContext:
    """Everything a searcher may use; built once per run by the pipeline."""

    space: SearchSpace
    num_classes: int
    objectives: tuple[str, ...]  # acc or score first, then costs (the objectives table's names)
    limits: dict[str, float]  # constraints by objective name, e.g. {"macs": 5e6}
    seed: int
    evaluate: Evaluator  # in this process, with the shared supernet weights
    supernet: Any = None  # the trained supernet (one-shot searchers fine-tune copies of it)
    train: Any = None  # the supernet's training and validation splits (DeviceData)
    val: Any = None
    predictor: Any = None  # a latency predictor (``predict(arch) -> ms``) when a table was given
    study_file: Path | None = None  # where trial searchers keep their Optuna study (``RunDir.optuna_db``)
    workers: Any = None  # a pool of evaluation workers (``nasbench.search.trials.Workers``), or None
    settings: EvalSettings | None = None  # how the supernet's subnets are evaluated (its training's layout)


class Searcher(ABC):
    """Searches ``ctx``'s supernet until ``clock`` is exhausted (or it has nothing left to try), sending
    each evaluated architecture to ``sink``. Resumable: on a run that was killed, the sink already holds
    the earlier records and the clock what was spent; a searcher must not evaluate an arch twice.

    A searcher takes its own settings as keyword arguments of its constructor, as Optuna's samplers do;
    ``settings`` names the run settings (``SearchConfig`` fields) that feed them: ``{field: argument}``."""

    name: ClassVar[str]
    uses_workers: ClassVar[bool] = False  # True: wants ``ctx.workers`` (trial searchers)
    settings: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def search(self, ctx: SearchContext, clock: BudgetClock, sink: RecordSink) -> None: ...


class RecordSink:
    """One searcher's records in one run: the only way a searcher writes a record (see the module doc)."""

    def __init__(
        self,
        run: RunDir,
        searcher: str,
        *,
        seed: int,
        num_classes: int,
        objectives: tuple[str, ...],
        limits: Mapping[str, float],
        clock: BudgetClock,
        on_record: Callable[[Record], None] | None = None,
        truth: Any = None,
    ):
        self.run, self.searcher, self.seed, self.num_classes = run, searcher, seed, num_classes
        self.truth = truth  # a benchmark's ``GroundTruth`` when the space is one: true accuracy beside each record
        self.objectives, self.limits = tuple(objectives), dict(limits)
        self.clock, self.on_record = clock, on_record
        rows = self._own_rows()
        self._stored = {r["arch_id"]: r for r in rows if r["status"] in REUSABLE}
        self._evaluated = {r["arch_id"] for r in rows}

    def _own_rows(self) -> list[dict[str, Any]]:
        frame = self.run.records()
        return frame[frame["searcher"] == self.searcher].to_dict("records")

    def rows(self) -> list[dict[str, Any]]:
        """Every record of this searcher in the run's journal (rows of the runs schema), in order."""
        return self._own_rows()

    def stored(self, arch: Arch) -> dict[str, Any] | None:
        """This searcher's completed record of ``arch`` (a row of the runs schema), or None."""
        return self._stored.get(arch.id)

    def evaluated(self, arch: Arch) -> bool:
        """Whether this searcher has any record of ``arch`` (ok, infeasible or failed)."""
        return arch.id in self._evaluated

    def evaluate(self, evaluator: Evaluator, arch: Arch, *, trial: int | None = None, extra=None) -> Record:
        """Evaluate ``arch`` (an exception makes a failed record) and record it."""
        return self.record(arch, evaluate_outcome(evaluator, arch), trial=trial, extra=extra)

    def record(
        self, arch: Arch, outcome: Mapping[str, Any], *, trial: int | None = None, extra: Mapping | None = None
    ) -> Record:
        """Record one evaluation outcome (``status`` ok or failed, the evaluator's fields, ``error``).

        Applies the feasibility rule; an ok outcome whose objectives are not all finite numbers is failed.
        Fields the schema does not have go to ``extra``. ``trial`` defaults to the next free number."""
        fields = {k: outcome.get(k, math.nan) for k in RECORD_FIELDS}
        status, error = Status(outcome.get("status", Status.OK)), outcome.get("error") or ""
        rest = {k: v for k, v in outcome.items() if k not in (*RECORD_FIELDS, "status", "error", "extra")}
        extra = {**dict(outcome.get("extra") or {}), **rest, **dict(extra or {})}
        if self.truth is not None:
            extra.update(self.truth.truth(arch))
        if not _finite(fields["macs"]) or not _finite(fields["params"]):
            cost = count(arch, self.num_classes)  # analytic: known even when the evaluation failed
            fields.update(macs=cost.macs, params=cost.params)
        bad = [o for o, v in zip(self.objectives, values(fields, self.objectives), strict=True) if not _finite(v)]
        if status == Status.OK and bad:
            status, error = Status.FAILED, f"objective {', '.join(bad)} is not a finite number"
        over = violations(fields, self.limits) if status == Status.OK else []
        if over:
            extra.update({f"{q}_measured": fields[q] for q in QUALITY if _finite(fields[q])})
            status, error = Status.INFEASIBLE, "; ".join(over)
        if status != Status.OK:
            fields.update({q: math.nan for q in QUALITY})
        record = Record.for_arch(
            arch,
            trial=self.run.next_trial(self.searcher) if trial is None else int(trial),
            searcher=self.searcher,
            seed=self.seed,
            status=status,
            error=error,
            extra=json.loads(json.dumps(extra, default=float)),
            acc=float(fields["acc"]),
            score=_float(fields["score"]),
            macs=int(fields["macs"]),
            params=int(fields["params"]),
            latency_pred_ms=_float(fields["latency_pred_ms"]),
            latency_ms=_float(fields["latency_ms"]),
            eval_seconds=_float(fields["eval_seconds"]),
        )
        self.run.append(record)
        self._evaluated.add(arch.id)
        if status in REUSABLE:
            self._stored[arch.id] = record.to_row()
        if self.clock.budget.kind == TRIALS:
            self.clock.add(1)
        if self.on_record is not None:
            self.on_record(record)
        return record

    def objective_values(self, row: Mapping[str, Any]) -> list[float]:
        """A record's objective values, the measured accuracy of an infeasible one included (for samplers
        that rank infeasible points too, like NSGA-II's constrained domination); ``NOT_EVALUATED`` for one
        that was never evaluated."""
        extra = row.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
        if row.get("status") == Status.INFEASIBLE:
            row = {**row, **{q: extra.get(f"{q}_measured", NOT_EVALUATED) for q in QUALITY}}
        return values(row, self.objectives)


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _float(v: Any) -> float:
    return float(v) if _finite(v) else math.nan
