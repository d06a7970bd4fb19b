"""Optuna behind one door: the study in SQLite, the seeded samplers, and how trials are told.

This is the only module that imports Optuna. Everything here speaks plain numbers and labels; records,
architectures and objective names stay with the caller (``nasbench.search.trials``, the engine-free trial
driver, which asks and tells through these functions).

Verified against Optuna 5.0:

* ``optuna.create_study(storage=RDBStorage("sqlite:///<run>/optuna.db", engine_kwargs=), study_name=,
  directions=[...], load_if_exists=True)``; that URL is what ``optuna-dashboard`` takes. A study loaded
  with ``load_if_exists`` keeps its stored directions silently, so ``open_study`` checks them itself.
* ``NSGAIISampler(population_size=, seed=)``, ``TPESampler(seed=, multivariate=True)`` (``constant_liar``
  defaults to True in 5.0, which is what concurrent trials want), ``RandomSampler(seed=)``.
* Constraints: ``constraints_func=`` is deprecated since 5.0 (FutureWarning); the replacement is
  ``Trial.set_constraint(key, value)`` before ``tell``, value <= 0 meaning feasible, NaN refused. NSGA-II's
  constrained domination, TPE's feasibility split and ``Study.best_trials`` all read ``trial.constraints``,
  so one mechanism covers every sampler, the random one included.
* ``Study.tell(trial_or_number, values, state=)`` finishes a trial asked by another process too, which is
  how a resumed run closes the trials a killed one left RUNNING. NaN values would make Optuna fail the
  trial with a warning; ``tell`` here fails it explicitly instead.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import Trial, TrialState

from nasbench.errors import NasbenchError

SAMPLERS = ("nsga2", "tpe", "random")
INTERRUPTED = "interrupted"  # user attr of trials closed because their run stopped before they reported


def storage(db_file: Path) -> optuna.storages.RDBStorage:
    """The run's study database (``RunDir.optuna_db``, ``<run>/optuna.db``), created on first use.

    Optuna writes each suggested parameter in a transaction of its own: with SQLite's default rollback
    journal that is one fsync per parameter (1.8 s per trial for the 95 decisions of ``efficientnet`` on
    a busy disk). Write-ahead logging with ``synchronous=NORMAL`` (0.3 s) still survives a killed
    process, which is what resume needs; only a power cut may lose the last transactions.
    """
    path = Path(db_file).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    connect = functools.partial(_connect, str(path))
    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": connect})


def _connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30, check_same_thread=False)  # SQLAlchemy's pool serialises use
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def open_study(
    db: optuna.storages.BaseStorage,
    name: str,
    maximise: Sequence[bool],
    metric_names: Sequence[str],
    sampler: BaseSampler | None = None,
) -> optuna.Study:
    """Create the multi-objective study ``name`` or load it when it exists (resume), asking ``sampler``."""
    # Optuna logs every told trial at INFO; the records are the place to read them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize" if m else "minimize" for m in maximise]
    study = optuna.create_study(
        storage=db, study_name=name, directions=directions, sampler=sampler, load_if_exists=True
    )
    stored = [d.name.lower() for d in study.directions]
    if stored != directions:
        raise NasbenchError(
            f"Optuna study {name!r} was created for {len(stored)} objectives ({', '.join(stored)}); "
            f"resume it with the objectives it was started with"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(metric_names))  # shown by optuna-dashboard
    return study


def distributions(dimensions: Sequence[tuple[str, Sequence[Any]]]) -> dict[str, CategoricalDistribution]:
    """One categorical per labelled dimension, choices in the space's order."""
    return {label: CategoricalDistribution(tuple(choices)) for label, choices in dimensions}


def ask(study: optuna.Study, dims: dict[str, CategoricalDistribution]) -> tuple[Trial, dict[str, Any]]:
    """A new trial of ``study`` and its proposal: one choice per labelled dimension."""
    trial = study.ask(fixed_distributions=dims)
    return trial, dict(trial.params)


def make_sampler(name: str, seed: int, *, population_size: int = 50) -> BaseSampler:
    """A seeded Optuna sampler by nasbench's name for it."""
    if name == "nsga2":
        return NSGAIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        # Multivariate TPE models the decisions jointly (a kernel choice matters with its expand ratio).
        return TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return RandomSampler(seed=seed)
    raise NasbenchError(f"unknown trial searcher {name!r}; valid are {', '.join(SAMPLERS)}")


def resumed_seed(seed: int, n_trials_before: int) -> int:
    """The sampler seed for a call that finds ``n_trials_before`` trials in its study.

    A fresh sampler with the run's own seed would replay the killed run's proposals (for the random
    sampler exactly); deriving the seed from the history keeps a resumed run deterministic and new.
    """
    return seed if n_trials_before == 0 else (seed * 1_000_003 + n_trials_before) % 2**31


def tell(
    study: optuna.Study,
    trial: Trial | int,
    values: Sequence[float] | None,
    *,
    constraints: dict[str, float] | None = None,
    attrs: dict[str, Any] | None = None,
) -> bool:
    """Finish ``trial`` (a ``Trial`` or a trial number): COMPLETE with ``values`` when they are all finite,
    FAIL otherwise (``values=None`` for an evaluation that raised). Returns whether it completed.

    ``constraints`` (name -> value, <= 0 feasible) and ``attrs`` (shown in optuna-dashboard) are stored
    on the trial first.
    """
    handle = _trial(study, trial)
    for key, value in (attrs or {}).items():
        handle.set_user_attr(key, value)
    ok = values is not None and all(math.isfinite(v) for v in values)
    if ok:
        for key, value in (constraints or {}).items():
            handle.set_constraint(key, value)
        study.tell(handle, list(values), state=TrialState.COMPLETE)
    else:
        study.tell(handle, state=TrialState.FAIL)
    return ok


def interrupt(study: optuna.Study, trial: Trial | int) -> None:
    """Close a trial whose evaluation never reported (time budget hit, run killed): FAIL, marked so."""
    tell(study, trial, None, attrs={INTERRUPTED: True})


def running_trials(study: optuna.Study) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(number, params)`` of trials still RUNNING: on resume, left behind by a killed run."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        yield t.number, dict(t.params)


def trial_count(study: optuna.Study) -> int:
    """Trials that count against a trial budget: completed or failed, but not interrupted ones."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return sum(1 for t in done if not t.user_attrs.get(INTERRUPTED))


def _trial(study: optuna.Study, trial: Trial | int) -> Trial:
    if isinstance(trial, Trial):
        return trial
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial)
    return Trial(study, frozen._trial_id)  # Optuna has no public way from a number to a live Trial
