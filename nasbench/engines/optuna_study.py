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
import random
import sqlite3
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, Trial, TrialState

from nasbench.errors import NasbenchError
from nasbench.seeds import fork

SAMPLERS = ("nsga2", "tpe", "random", "evolution")
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


def open_storage(db_file: Path) -> tuple[optuna.storages.RDBStorage, str | None]:
    """``storage(db_file)``, and a note when the file was damaged (not a database, or malformed): it is
    moved aside to ``<db>.damaged`` (with its WAL files) and an empty database takes its place, whose studies
    the caller rebuilds from the run's journal, the record of truth (``replay``). A database that cannot be
    opened for another reason (locked, disk full, permissions) is one ``NasbenchError`` with the cause."""
    path = Path(db_file)
    try:
        db = storage(path)
        db.get_all_studies()
        return db, None
    except sqlalchemy.exc.DatabaseError as e:
        cause = e.orig
        if not isinstance(cause, sqlite3.DatabaseError) or isinstance(cause, sqlite3.OperationalError):
            raise NasbenchError(f"cannot open the run's Optuna study {path}: {cause}") from e
    aside = path.with_name(path.name + ".damaged")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.replace(aside.with_name(aside.name + suffix))
    note = f"{path} was damaged ({cause}); moved to {aside.name}, its studies rebuilt from the run's records"
    return storage(path), note


def close(db: optuna.storages.BaseStorage) -> None:
    """Release ``db``'s connections: the file is read afresh by whoever opens it next, in this process too
    (SQLite shares a file's WAL index among a process's connections, so an open one would serve old pages
    after the file was replaced)."""
    if isinstance(db, optuna.storages.RDBStorage):
        db.remove_session()
        db.engine.dispose()


def replay(study: optuna.Study, trials: Sequence[dict[str, Any]], dims: dict[str, CategoricalDistribution]) -> None:
    """Add finished trials to an empty ``study``, numbered in order: each a dict with ``params`` and
    ``values`` (None: FAIL), and optionally ``constraints`` and ``attrs`` (user attributes)."""
    if study.get_trials(deepcopy=False):
        raise ValueError(f"replay needs an empty study; {study.study_name} has trials")
    frozen = [
        optuna.trial.create_trial(
            state=TrialState.COMPLETE if t["values"] is not None else TrialState.FAIL,
            params=t["params"],
            distributions={k: dims[k] for k in t["params"]},
            values=t["values"],
            constraints=t.get("constraints") if t["values"] is not None else None,
            user_attrs=t.get("attrs") or {},
        )
        for t in trials
    ]
    study.add_trials(frozen)


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


def make_sampler(
    name: str,
    seed: int,
    *,
    population_size: int = 50,
    dims: dict[str, CategoricalDistribution] | None = None,
    accept: Accept | None = None,
) -> BaseSampler:
    """A seeded Optuna sampler by nasbench's name for it (``evolution`` needs the ``dims`` it searches, and
    may be given what proposals it may make, ``accept``)."""
    if name == "nsga2":
        return NSGAIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        # Multivariate TPE models the decisions jointly (a kernel choice matters with its expand ratio).
        return TPESampler(seed=seed, multivariate=True)
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "evolution":
        return EvolutionSampler(dims or {}, seed=seed, accept=accept)
    raise NasbenchError(f"unknown trial searcher {name!r}; valid are {', '.join(SAMPLERS)}")


Accept = Callable[[dict[str, Any], dict[str, Any] | None], bool]  # (proposal, its parent or None) -> may ask it


class EvolutionSampler(BaseSampler):
    """Regularized ("aging") evolution (Real et al. 2019, AmoebaNet) over categorical decisions.

    The first ``population`` proposals are uniform draws. After that, each one is a mutation: of the
    ``population`` most recent completed trials (older ones age out), ``sample_size`` are drawn at random
    and the best of them (feasible first: every constraint value <= 0; then the first objective, maximised)
    is copied with one decision changed to another of its choices. ``accept(proposal, parent)`` filters the
    proposals before any is evaluated (nasbench's: a network not yet evaluated, different from its parent,
    within the run's limits by its analytic cost); up to ``tries`` draws are made, then the last one is
    proposed anyway. Only the first objective steers it: it looks for the best network under the limits,
    not for a front. Seeded; one shared generator, so proposals depend on the order trials complete in.
    """

    def __init__(
        self,
        dims: dict[str, CategoricalDistribution],
        *,
        seed: int,
        population: int = 10,
        sample_size: int = 3,
        accept: Accept | None = None,
        tries: int = 100,
    ):
        if not 1 <= sample_size <= population:
            raise ValueError(f"sample_size must be in [1, population], got {sample_size} and {population}")
        self._dims, self._rng, self._accept, self._tries = dict(dims), random.Random(seed), accept, tries
        self._population, self._sample_size = population, sample_size

    def reseed_rng(self) -> None:
        self._rng.seed()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return dict(self._dims)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict:
        if not search_space:
            return {}
        done = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.params.keys() >= self._dims.keys()
        ]
        if len(done) < self._population:
            return self._draw(self._uniform, None)
        pool = self._rng.sample(done[-self._population :], self._sample_size)
        parent = dict(max(pool, key=_fitness).params)
        return self._draw(lambda: self._mutate(parent), parent)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self._rng.choice(param_distribution.choices)

    def _uniform(self) -> dict[str, Any]:
        return {label: self._rng.choice(d.choices) for label, d in self._dims.items()}

    def _mutate(self, parent: dict[str, Any]) -> dict[str, Any]:
        child = dict(parent)
        label = self._rng.choice(list(self._dims))
        others = [c for c in self._dims[label].choices if c != parent[label]]
        if others:
            child[label] = self._rng.choice(others)
        return child

    def _draw(self, make: Callable[[], dict[str, Any]], parent: dict[str, Any] | None) -> dict[str, Any]:
        for _ in range(self._tries):
            params = make()
            if self._accept is None or self._accept(params, parent):
                return params
        return params


def _fitness(trial: FrozenTrial) -> tuple[bool, float]:
    """Feasible before infeasible, then the first objective (maximised)."""
    return all(v <= 0 for v in trial.constraints.values()), trial.values[0]


def resumed_seed(seed: int, n_trials_before: int) -> int:
    """The sampler seed for a call that finds ``n_trials_before`` trials in its study.

    A fresh sampler with the run's own seed would replay the killed run's proposals (for the random
    sampler exactly); deriving the seed from the history keeps a resumed run deterministic and new.
    """
    return seed if n_trials_before == 0 else fork(seed, "resume", n_trials_before)


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
