"""A search's settings, parsed once at the edge into a typed ``SearchConfig``: from the command line or
``nasbench.search(...)`` (``search_config``, which merges a resumed run's stored settings and refuses a clash),
checked in one place (``SearchConfig.check``), and split into the phases' budgets (``phase_budgets``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nasbench.budget import DEFAULT_SHARES, TIME_KINDS, TRIALS, Budget, parse_budget, split
from nasbench.diffing import merge_resumed
from nasbench.errors import NasbenchError
from nasbench.objectives.table import ACCURACY_DEFAULT, SEARCH_DEFAULT, check_limits, check_search_objectives
from nasbench.runs import RunDir
from nasbench.search import registry
from nasbench.search.base import Searcher
from nasbench.search.proximal import ProximalConfig
from nasbench.search.proximal_searcher import TARGETS
from nasbench.search.ranker import CALIBRATION
from nasbench.textfmt import split_list
from nasbench.training import TrainConfig
from nasbench.training.state import resolve_device

FLAGS = {"searchers": "--searcher", "proximal_targets": "--targets"}  # settings whose flag is not their name
EVALUATORS = ("supernet", "table")


@dataclass(frozen=True)
class SearchConfig:
    space: str  # a shipped space name or a YAML path
    data: str  # a dataset name or path
    budget: str  # 10gpu-h, 90min, 300trials...
    searchers: tuple[str, ...] = ("proximal", "nsga2", "random")
    # score: the supernet's loss and NASWOT as one calibrated number (nasbench.search.ranker), which ranks
    # networks better than the supernet's accuracy; --evaluator table defaults to the true acc
    objectives: tuple[str, ...] = SEARCH_DEFAULT
    seed: int = 0
    shares: dict[str, float] = field(default_factory=lambda: {"supernet": 0.5, "search": 0.5})
    train_budget: str | None = None  # the supernet's budget when --budget counts trials
    max_macs: float | None = None
    max_latency: float | None = None
    latency_table: str | None = None
    batch_size: int = 32  # supernet training (TrainConfig.batch_size says why)
    sampling: str = "sandwich"  # supernet training: sandwich or uniform (TrainConfig.sampling says why)
    proximal_targets: int = TARGETS
    proximal_steps: int = ProximalConfig.steps  # weight/architecture step pairs per target
    concurrency: int = 2  # trials at once: 1 evaluates in this process, more on Ray workers
    ray_address: str | None = None
    device: str | None = None  # cpu or cuda[:N]; None: CUDA when there is one (resolved on every resume)
    gpus_per_trial: float | None = None  # a Ray trial's share of a GPU on CUDA; None: 1 / concurrency
    workers: int = 1  # data-parallel ranks for the supernet (Ray Train, one device each); batch_size is per rank
    # "supernet" (train one, evaluate with its weights) or "table" (a benchmark space's ground truth: no
    # training, no data; how the field compares search strategies apart from weight sharing)
    evaluator: str = "supernet"
    eval_images: int | None = None  # validation images per supernet evaluation (the split's first); None: all
    calibration: int = CALIBRATION  # architectures the score's scale is calibrated on (objective score)

    def check(self) -> None:
        registry.check(self.searchers)
        check_search_objectives(self.objectives)
        check_limits(self.limits)
        if ("latency" in self.objectives or self.max_latency) and not self.latency_table:
            raise NasbenchError(
                "latency objectives need a table: pass --latency-table FILE (make one with `nasbench latency lut`)"
            )
        least = {"eval_images": 1, "calibration": 2, "concurrency": 1, "workers": 1, "proximal_targets": 1}
        for name, low in {**least, "proximal_steps": 1}.items():
            value = getattr(self, name)
            if value is not None and value < low:
                flag = FLAGS.get(name, f"--{name.replace('_', '-')}")
                raise NasbenchError(f"{flag} must be at least {low}, got {value}")
        if self.gpus_per_trial is not None and not 0 < self.gpus_per_trial <= 1:
            raise NasbenchError(f"--gpus-per-trial must be in (0, 1], got {self.gpus_per_trial}")
        resolve_device(self.device)
        TrainConfig(sampling=self.sampling, num_random=1)  # refuses an unknown sampling in one line
        if self.evaluator not in EVALUATORS:
            raise NasbenchError(f"--evaluator must be one of {', '.join(EVALUATORS)}, got {self.evaluator!r}")
        if self.evaluator == "table":
            one_shot = [n for n in self.searchers if not registry.searcher_class(n).uses_workers]
            if one_shot:
                raise NasbenchError(
                    f"--evaluator table runs trial searchers (nsga2, tpe, random, evolution), not {one_shot[0]}"
                )
            if self.workers != 1:
                raise NasbenchError("--workers trains a supernet in parallel; --evaluator table trains none")
            if "score" in self.objectives:
                raise NasbenchError("--evaluator table gives the true accuracy: --objectives acc,... (not score)")

    def searcher(self, name: str) -> Searcher:
        """Searcher ``name`` built with its settings from this config (its class's ``settings``)."""
        cls = registry.searcher_class(name)
        return cls(**{argument: getattr(self, field) for field, argument in cls.settings.items()})

    @property
    def limits(self) -> dict[str, float]:
        return {k: v for k, v in (("macs", self.max_macs), ("latency", self.max_latency)) if v}


def search_config(given: Mapping[str, Any], *, resume: str | os.PathLike | None = None) -> SearchConfig:
    """A ``SearchConfig`` from the settings given (None: not given; lists or ``"a,b"`` for the tuples).
    With ``resume``, the run's stored settings fill in the rest (``merge_resumed`` refuses a clash)."""
    known = {f.name for f in fields(SearchConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise NasbenchError(f"unknown search setting {unknown[0]!r}; valid are {', '.join(sorted(known))}")
    given = {k: _setting(k, v) for k, v in given.items() if v is not None}
    if resume is not None:
        stored = {k: _setting(k, v) for k, v in RunDir.open(resume).config.items() if k in known}
        merged = merge_resumed(stored, given, where=f"--resume {resume}", flags=FLAGS)
        return SearchConfig(**{k: _setting(k, v) for k, v in merged.items()})
    if given.get("evaluator") == "table":
        given.setdefault("data", "table")  # the benchmark's own data: nothing to load
        given.setdefault("searchers", ("nsga2", "tpe", "random"))  # the one-shot searcher needs a supernet
        given.setdefault("objectives", ACCURACY_DEFAULT)  # the table's true accuracy; no supernet, no score
    missing = [k for k in ("space", "data", "budget") if k not in given]
    if missing:
        raise NasbenchError(f"--{missing[0]} is required (or --resume RUN)")
    return SearchConfig(**{"shares": dict(DEFAULT_SHARES), **given})


def _setting(name: str, value: Any) -> Any:
    if name in ("searchers", "objectives") and isinstance(value, str):
        return split_list(value)
    return tuple(value) if isinstance(value, list) else value


def phase_budgets(config: SearchConfig) -> dict[str, Budget]:
    budget = parse_budget(config.budget)
    if config.evaluator == "table":
        if budget.kind != TRIALS:
            raise NasbenchError(
                f"--evaluator table counts queries: give --budget as trials (e.g. 100trials), not {budget}"
            )
        return {"search": budget}
    if budget.kind in TIME_KINDS:
        return split(budget, config.shares)
    if budget.kind != TRIALS:
        raise NasbenchError(
            f"--budget {budget} is not for a search; give a time (10gpu-h, 90min) or trials (300trials)"
        )
    if not config.train_budget:
        raise NasbenchError(
            f"--budget {budget} counts evaluations; also give --train-budget for the supernet (e.g. 10min)"
        )
    return {"supernet": parse_budget(config.train_budget), "search": budget}
