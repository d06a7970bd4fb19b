"""The main job and its results from Python: ``nasbench.search(...)`` and ``nasbench.load_run(path)``.

``search`` takes the same settings as ``nasbench search`` (its keyword names are the command's options
with underscores) and returns the finished run as ``load_run`` does: the records as a pandas DataFrame
(one row per evaluated architecture), the Pareto front, and the stored configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Run:
    """A search run read back: where it is, how it was configured, what it found."""

    path: Path
    run_id: str
    config: dict[str, Any]  # the settings the run was started with (``config.json``)
    records: pd.DataFrame  # every evaluation, ``nasbench.runs.records.SCHEMA``'s columns
    front: pd.DataFrame  # the Pareto front of the ok records over the run's objectives

    @property
    def objectives(self) -> list[str]:
        return list(self.config.get("objectives") or ["acc", "macs"])


def load_run(path: str | os.PathLike) -> Run:
    """Read a search run (finished, or still running: what it has recorded so far) from its folder or id."""
    from nasbench.runs import RunDir, run_front

    run = RunDir.open(path)
    records = run.records()
    objectives = run.config.get("objectives") or ["acc", "macs"]
    return Run(run.path, run.run_id, dict(run.config), records, run_front(records, objectives))


def search(
    space: str | None = None,
    data: str | None = None,
    budget: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    **settings: Any,
) -> Run:
    """Train a supernet and search it under ``budget`` (``nasbench search``); returns the finished run.

    ``settings`` are the command's other options: ``searchers`` (a tuple or ``"proximal,nsga2"``),
    ``objectives``, ``seed``, ``shares``, ``train_budget``, ``max_macs``, ``max_latency``,
    ``latency_table``, ``batch_size``, ``proximal_targets``, ``proximal_steps``, ``concurrency``,
    ``ray_address``. With ``resume``, settings left out come from the run; those given must match it.
    """
    from nasbench.search.orchestrate import run_search, search_config

    config = search_config({"space": space, "data": data, "budget": budget, **settings}, resume=resume)
    run = run_search(config, out=Path(out) if out is not None else None, resume=Path(resume) if resume else None)
    return load_run(run.path)
