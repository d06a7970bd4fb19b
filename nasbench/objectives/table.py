"""The one table of objectives: what a search can optimise or constrain, and where a record holds it.

Every consumer reads this table: the searchers (the values and constraint values told to Optuna), the
run's outputs (front, plot, summary), ``nasbench pareto`` and the hypervolume. ``latency`` means the
*measured* latency where a record has one, else the predicted one, everywhere.

One feasibility rule (``constraint_excess`` / ``violations``): an architecture is feasible when no
constrained objective exceeds its limit. Its excess over a limit is ``value / limit - 1`` (<= 0 feasible),
the form Optuna's constrained samplers take; an unknown value counts as infeasible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nasbench.errors import NasbenchError


@dataclass(frozen=True)
class Objective:
    name: str  # what users write: --objectives acc,macs and --max-macs
    direction: str  # "max" or "min"
    fields: tuple[str, ...]  # record fields that hold it, in order of preference: the first finite one wins
    unit: str  # for tables and axis labels
    label: str  # short human name

    @property
    def maximise(self) -> bool:
        return self.direction == "max"


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("acc", "max", ("acc",), "top-1", "acc"),
        # the ranker a supernet search chooses by: validation loss and NASWOT as one number in (0, 1)
        # (nasbench.search.ranker); only a supernet evaluator with a calibrated ranker gives it
        Objective("score", "max", ("score",), "score", "score"),
        Objective("macs", "min", ("macs",), "MACs", "MACs"),
        Objective("params", "min", ("params",), "parameters", "params"),
        Objective("latency", "min", ("latency_ms", "latency_pred_ms"), "ms", "latency ms"),
    )
}
# A supernet search's default objectives (the calibrated score, then MACs), and the true accuracy's: a table
# search's default, and what a run recorded before its objectives were stored searched.
SEARCH_DEFAULT = ("score", "macs")
ACCURACY_DEFAULT = ("acc", "macs")
CONSTRAINABLE = ("macs", "latency")  # --max-macs, --max-latency
QUALITY = ("acc", "score")  # what a search maximises (its first objective); records hold each in the field of its name,
# NaN unless ok, and an infeasible record keeps it in extra as <name>_measured
# Senses of the record fields themselves, so pure Pareto code may be given field names too.
FIELD_SENSES = {f: o.direction for o in OBJECTIVES.values() for f in o.fields}


def parse_objectives(objectives: str | Sequence[str]) -> dict[str, str]:
    """``"acc,macs"`` or ``["acc", "macs"]`` as ``{"acc": "max", "macs": "min"}``; one clear error otherwise."""
    names = [o.strip() for o in objectives.split(",")] if isinstance(objectives, str) else list(objectives)
    for name in names:
        if name not in OBJECTIVES:
            raise NasbenchError(f"objective {name!r} is not one of {', '.join(OBJECTIVES)}")
    if not names or len(set(names)) != len(names):
        raise NasbenchError(f"objectives must name each of {', '.join(OBJECTIVES)} at most once, got {names}")
    return {name: OBJECTIVES[name].direction for name in names}


def check_search_objectives(objectives: Sequence[str]) -> None:
    """A search's objectives: one quality first (acc or score, the one maximised), then costs, none repeated."""
    parse_objectives(objectives)
    if objectives[0] not in QUALITY or any(o in QUALITY for o in objectives[1:]):
        raise NasbenchError(
            f"--objectives must start with one of {' or '.join(QUALITY)} and name costs after it, "
            f"got {','.join(objectives)}"
        )


def value(record: Mapping[str, Any], name: str) -> float:
    """Objective ``name`` of a record (a dict or a DataFrame row): its first finite field, else NaN."""
    for f in OBJECTIVES[name].fields:
        v = record.get(f)
        if v is not None:
            try:
                v = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                return v
    return math.nan


def values(record: Mapping[str, Any], names: Sequence[str]) -> list[float]:
    return [value(record, n) for n in names]


def check_limits(limits: Mapping[str, float]) -> dict[str, float]:
    """Constraint limits by objective name (``{"macs": 5e6}``), checked."""
    out = {}
    for name, limit in limits.items():
        if name not in CONSTRAINABLE:
            raise NasbenchError(f"cannot constrain {name!r}; constraints are on {', '.join(CONSTRAINABLE)}")
        if not (isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0):
            raise NasbenchError(f"the limit on {name} must be a positive number, got {limit!r}")
        out[name] = float(limit)
    return out


def constraint_excess(record: Mapping[str, Any], limits: Mapping[str, float]) -> dict[str, float]:
    """Relative excess over each limit, ``value / limit - 1`` (<= 0 feasible); unknown values count 1.0."""
    out = {}
    for name, limit in limits.items():
        v = value(record, name)
        out[name] = v / limit - 1.0 if math.isfinite(v) else 1.0
    return out


def violations(record: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """One phrase per limit the record breaks (empty when feasible): the record's ``error`` text."""
    excess = constraint_excess(record, limits)
    return [f"{k} over its limit {limits[k]:g} by {v:.1%}" for k, v in excess.items() if v > 0]
