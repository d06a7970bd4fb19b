"""The searchers nasbench knows, by name: the one place a searcher name is defined and validated.

Entries are ``name -> "module:factory"`` strings, imported on first use, so listing the names imports no
searcher (nor torch, Ray or Optuna). ``register`` adds an entry and refuses a duplicate name, as fvcore's
registries do; the contract suite runs every registered searcher.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from nasbench.errors import NasbenchError

_ENTRIES: dict[str, str] = {
    "proximal": "nasbench.search.proximal_searcher:ProximalSearcher",
    "nsga2": "nasbench.search.trials:NSGA2Searcher",
    "tpe": "nasbench.search.trials:TPESearcher",
    "random": "nasbench.search.trials:RandomSearcher",
    "evolution": "nasbench.search.trials:EvolutionSearcher",
}


def names() -> tuple[str, ...]:
    """Every registered searcher's name, in registration order."""
    return tuple(_ENTRIES)


def register(name: str, target: str) -> None:
    """Register ``target`` (``"package.module:ClassName"``, a ``Searcher`` subclass) under ``name``."""
    if name in _ENTRIES:
        raise ValueError(f"a searcher named {name!r} is already registered ({_ENTRIES[name]})")
    if ":" not in target:
        raise ValueError(f"searcher target {target!r} must read 'package.module:ClassName'")
    _ENTRIES[name] = target


def check(requested: Iterable[str]) -> tuple[str, ...]:
    """The requested names, checked: at least one, each registered, none twice."""
    requested = tuple(requested)
    if not requested:
        raise NasbenchError(f"no searcher given; valid are {', '.join(_ENTRIES)}")
    for name in requested:
        if name not in _ENTRIES:
            raise NasbenchError(f"unknown searcher {name}; valid are {', '.join(_ENTRIES)}")
    if len(set(requested)) != len(requested):
        raise NasbenchError(f"searcher list {','.join(requested)} names one searcher twice")
    return requested


def searcher_class(name: str) -> type:
    """The ``Searcher`` subclass registered as ``name``."""
    check([name])
    module, _, attr = _ENTRIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
