"""What to retrain: K Pareto winners spread along a run's front, and the space's reference networks.

A ``Job`` is one model to train: plain data (the architecture as JSON), so it can travel to a Ray worker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from nasbench.arch import Arch
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.pareto import pareto_front, spread_along_front
from nasbench.runs import RunDir, Status
from nasbench.spaces import SearchSpace

WINNER, BASELINE = "winner", "baseline"


@dataclass(frozen=True)
class Job:
    """One model to train from scratch, with what the search knew of it."""

    arch_json: str
    arch_id: str
    role: str  # WINNER or BASELINE
    reference: str | None = None  # the reference network's name, for baselines
    supernet_acc: float | None = None  # validation top-1 with inherited weights (winners only)
    latency_ms: float | None = None  # measured during the search, when it was
    latency_pred_ms: float | None = None  # predicted from the run's latency table, when it had one

    @property
    def arch(self) -> Arch:
        return Arch.from_json(self.arch_json)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pick_winners(records: pd.DataFrame, k: int, quality: str = "acc") -> pd.DataFrame:
    """``k`` rows of the run's ``quality``-vs-MACs front (quality: the run's maximised objective, acc or
    score), spread evenly along it (MACs on a log scale), both ends included. An architecture evaluated more
    than once (by several searchers) counts once, with its best quality."""
    if k < 1:
        raise NasbenchError(f"--top must be at least 1, got {k}")
    FRONT_OBJECTIVES = {quality: "max", "macs": "min"}  # noqa: N806 - a constant of this call
    ok = records[(records["status"] == Status.OK) & records[quality].notna() & records["macs"].notna()]
    if ok.empty:
        raise NasbenchError("the run has no successful evaluations, so no Pareto front to retrain from")
    best = ok.sort_values(quality, ascending=False, kind="stable").drop_duplicates("arch_id")
    front = pareto_front(best, FRONT_OBJECTIVES)
    if len(front) >= k:
        return spread_along_front(front, k, FRONT_OBJECTIVES, log_scale=("macs",))
    # A front shorter than k: the rest come from the next non-dominated layers (the front once the
    # earlier layers are removed), spread along each layer in turn.
    picked, rest = [front], best[~best["arch_id"].isin(front["arch_id"])]
    while sum(len(p) for p in picked) < k and not rest.empty:
        layer = pareto_front(rest, FRONT_OBJECTIVES)
        need = k - sum(len(p) for p in picked)
        picked.append(spread_along_front(layer, min(need, len(layer)), FRONT_OBJECTIVES, log_scale=("macs",)))
        rest = rest[~rest["arch_id"].isin(layer["arch_id"])]
    return pd.concat(picked, ignore_index=True)


def winner_jobs(records: pd.DataFrame, k: int, quality: str = "acc") -> list[Job]:
    return [
        Job(
            arch_json=row.arch_json,
            arch_id=row.arch_id,
            role=WINNER,
            supernet_acc=float(row.acc),
            latency_ms=_finite(row.latency_ms),
            latency_pred_ms=_finite(row.latency_pred_ms),
        )
        for row in pick_winners(records, k, quality).itertuples()
    ]


def baseline_jobs(space: SearchSpace, names: list[str] | None, records: pd.DataFrame) -> list[Job]:
    """The named references (default: the space's first), each at the run's largest searched resolution,
    so they see the same images as the largest winners (or at their own, when the run recorded none)."""
    names = list(space.references)[:1] if names is None else names
    searched = records.loc[records["status"] == Status.OK, "resolution"]
    jobs = []
    for name in names:
        if name not in space.references:
            known = ", ".join(space.references) or "none"
            raise NasbenchError(f"--baselines: space {space.name} has no reference {name!r}; it has: {known}")
        arch = space.reference(name)
        if len(searched):
            arch = arch.with_resolution(int(searched.max()))
        jobs.append(Job(arch_json=arch.to_json(), arch_id=arch.id, role=BASELINE, reference=name))
    return jobs


def plan_jobs(run: RunDir, space: SearchSpace, top: int, baselines: list[str] | None) -> list[Job]:
    """Winners then baselines, each architecture once (a baseline that is also a winner stays a winner,
    with the reference's name attached)."""
    records = run.records()
    if records.empty:
        raise NasbenchError(f"run {run.path} has no records yet; run or resume the search first")
    jobs: dict[str, Job] = {}
    quality = (run.config.get("objectives") or ["acc"])[0]
    for job in winner_jobs(records, top, quality) + baseline_jobs(space, baselines, records):
        if job.arch_id in jobs:
            jobs[job.arch_id] = Job(**{**jobs[job.arch_id].to_dict(), "reference": job.reference})
        else:
            jobs[job.arch_id] = job
    return list(jobs.values())


def cost_of(job: Job, num_classes: int) -> dict[str, int]:
    cost = count(job.arch, num_classes)
    return {"macs": cost.macs, "params": cost.params}


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None
