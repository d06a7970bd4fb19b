"""Ground truth as a first-class object: a space plus a table of accuracies that someone else measured.

``load_benchmark(name)`` gives a ``GroundTruth``: the space (a shipped YAML whose architectures are exactly
the table's networks), the table as a pandas DataFrame (one row per distinct network), the true accuracy and
rank of any architecture, and the true Pareto front. ``benchmark_for(space)`` finds the ground truth of a
space a run searches, so every run on a benchmark space records each evaluated architecture's true accuracy
beside what its searcher saw (``truth``). The tables ship inside the package with their licenses and load
with no network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from nasbench.arch import Arch
from nasbench.errors import NasbenchError
from nasbench.pareto import pareto_mask
from nasbench.spaces import SearchSpace


@dataclass(frozen=True)
class GroundTruth:
    """A benchmark's table over its space. ``table`` is indexed by the benchmark's canonical key, with
    columns ``key, arch, arch_id, acc`` (mean over runs, percent), ``acc_runs`` (each run's), ``std``,
    ``params``, ``flops`` (the benchmark's own counts), ``macs`` (nasbench's count) and ``rank`` (1 = best
    mean accuracy; ties share the best rank)."""

    name: str
    space: SearchSpace
    table: pd.DataFrame = field(repr=False)
    to_key: Callable[[Arch], str] = field(repr=False)
    from_key: Callable[[str], Arch] = field(repr=False)
    source: str = ""  # citation and license, one line

    def key(self, arch: Arch) -> str:
        """The benchmark's canonical key of ``arch`` (which must lie in the space)."""
        self.space.check(arch)
        return self.to_key(arch)

    def arch(self, key: str) -> Arch:
        """The architecture of any of the benchmark's keys."""
        return self.from_key(key)

    def row(self, arch: Arch) -> pd.Series:
        return self.table.loc[self.key(arch)]

    def accuracy(self, arch: Arch) -> float:
        """The true accuracy (percent, mean over the benchmark's runs)."""
        return float(self.row(arch)["acc"])

    def rank(self, arch: Arch) -> int:
        """Rank by true accuracy among all the table's networks, 1 = best."""
        return int(self.row(arch)["rank"])

    def truth(self, arch: Arch) -> dict[str, object]:
        """What a run records beside each evaluation: true accuracy, its rank and the benchmark key."""
        row = self.row(arch)
        return {"true_acc": float(row["acc"]), "true_rank": int(row["rank"]), "bench_key": str(row["key"])}

    def feasible(self, max_flops: float | None = None, *, column: str = "flops") -> pd.DataFrame:
        """The networks whose ``column`` (the benchmark's ``flops``, or nasbench's ``macs``) is within a limit."""
        if max_flops is None:
            return self.table
        return self.table[self.table[column] <= max_flops]

    def best(self, max_flops: float | None = None, *, column: str = "flops") -> pd.Series:
        """The most accurate network within the limit."""
        rows = self.feasible(max_flops, column=column)
        if rows.empty:
            raise NasbenchError(f"no network of {self.name} has {column} <= {max_flops:,.0f}")
        return rows.loc[rows["acc"].idxmax()]

    def front(self, max_flops: float | None = None, *, column: str = "flops") -> pd.DataFrame:
        """The true Pareto front over (accuracy up, ``column`` down), cheapest first."""
        rows = self.feasible(max_flops, column=column)
        mask = pareto_mask(rows[["acc", column]].to_numpy(dtype=float), ["max", "min"])
        return rows[mask].sort_values(column)


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``rank`` column: 1 for the best mean accuracy, ties sharing the best rank."""
    out = table.copy()
    out["rank"] = out["acc"].rank(ascending=False, method="min").astype(np.int64)
    return out


# name -> loader; each loader is a function of nothing (the table ships with the package)
_LOADERS: dict[str, str] = {"nas-bench-macro": "nasbench.benchmarks.macro:load"}


def names() -> tuple[str, ...]:
    return tuple(_LOADERS)


@cache
def load_benchmark(name: str) -> GroundTruth:
    """The ground truth named ``name`` (``nas-bench-macro``), loaded once per process."""
    if name not in _LOADERS:
        raise NasbenchError(f"unknown benchmark {name!r}; nasbench ships {', '.join(_LOADERS)}")
    import importlib

    module, _, attr = _LOADERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)()


def benchmark_for(space: SearchSpace) -> GroundTruth | None:
    """The ground truth of ``space`` when it is a benchmark's space exactly (same name and same choices);
    None for any other space, a user's edited copy of a benchmark space included."""
    if space.name not in _LOADERS:
        return None
    from nasbench.latency.table import space_fingerprint

    truth = load_benchmark(space.name)
    return truth if space_fingerprint(truth.space) == space_fingerprint(space) else None
