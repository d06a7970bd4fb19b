"""``run_search``: one run, from a space, data and a budget to a Pareto front, resumable at any point.

Phases: (1) train the supernet (``nasbench.training``; its checkpoints live in ``RUN/supernet/``),
(2) search it with each searcher in turn, every evaluation recorded in the run's journal as it finishes,
(3) write the outputs (records.parquet, pareto.csv, pareto.png, summary.md). The budget is shared between
phases 1 and 2 (``shares``), and the search share equally between searchers. Killed anywhere, ``resume``
re-enters the same phase: training continues from its last checkpoint, and the search skips every
evaluation already in the journal (the trial searchers also reload their Optuna study).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from nasbench.arch import Arch
from nasbench.budget import TIME_KINDS, TRIALS, Budget, BudgetClock, device_note, parse_budget, split
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.objectives.expected import expected_latency, expected_macs
from nasbench.runs import Record, RunDir
from nasbench.search.evaluator import EvalSettings, EvaluatorFactory, SupernetEvaluator
from nasbench.search.proximal import ProximalConfig, ProximalSearch, cost_range
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, train_supernet
from nasbench.training.rundir import CONFIG_FILE as TRAIN_CONFIG_FILE

SEARCHERS = ("proximal", "nsga2", "tpe", "random")
TRIAL_SEARCHERS = ("nsga2", "tpe", "random")
STATE_FILE = "search_state.json"
console = Console(stderr=True)


@dataclass(frozen=True)
class SearchConfig:
    space: str  # a shipped space name or a YAML path
    data: str  # a dataset name or path
    budget: str  # 10gpu-h, 90min, 300trials...
    searchers: tuple[str, ...] = ("proximal", "nsga2", "random")
    objectives: tuple[str, ...] = ("acc", "macs")
    seed: int = 0
    shares: dict[str, float] = field(default_factory=lambda: {"supernet": 0.5, "search": 0.5})
    train_budget: str | None = None  # the supernet's budget when --budget counts trials
    max_macs: float | None = None
    max_latency: float | None = None
    latency_table: str | None = None
    batch_size: int = 64
    proximal_targets: int = 4
    proximal_steps: int = 200  # weight/architecture step pairs per target
    concurrency: int = 2
    ray_address: str | None = None

    def check(self) -> None:
        bad = [s for s in self.searchers if s not in SEARCHERS]
        if bad or not self.searchers:
            raise NasbenchError(f"unknown searcher {bad[0] if bad else '(none)'}; valid are {', '.join(SEARCHERS)}")
        unknown = [o for o in self.objectives if o not in ("acc", "macs", "params", "latency")]
        if unknown or "acc" not in self.objectives:
            raise NasbenchError("--objectives must include acc and be among acc, macs, params, latency")
        if ("latency" in self.objectives or self.max_latency) and not self.latency_table:
            raise NasbenchError(
                "latency objectives need a table: pass --latency-table FILE (make one with `nasbench latency lut`)"
            )


def phase_budgets(config: SearchConfig) -> dict[str, Budget]:
    budget = parse_budget(config.budget)
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


def run_search(config: SearchConfig, *, out: Path | None = None, resume: Path | None = None) -> RunDir:
    """Run (or, with ``resume``, continue) a search; returns the run folder with its outputs written."""
    config.check()
    budgets = phase_budgets(config)
    space = load_space(config.space)
    dataset = load_dataset(config.data)
    stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    run = RunDir.resume(resume, stored) if resume else RunDir.create(stored, out=out)
    with run:
        console.print(f"[bold]run[/bold] {run.path}  ({space.name} on {dataset.name}, budget {config.budget})")
        console.print(f"[bold]phase 1/2[/bold] supernet training, budget {budgets['supernet']}")
        trained = train_supernet(
            space,
            dataset,
            budgets["supernet"],
            run.supernet_dir,
            config=TrainConfig(batch_size=config.batch_size),
            seed=config.seed,
            resume=(run.supernet_dir / TRAIN_CONFIG_FILE).is_file(),
            origin=stored,
        )
        note = device_note(budgets["search"], trained.supernet.stem.conv.weight.device.type)
        if note:
            console.print(f"[yellow]{note}")
        state = _read_state(run)
        settings = EvalSettings(val_fraction=TrainConfig().val_fraction, data_seed=config.seed, limits=_limits(config))
        predictor = _load_predictor(config, space)
        evaluator = SupernetEvaluator(
            trained.supernet, trained.train, trained.val, settings, predictor.predict if predictor else None
        )
        search = _SearchPhase(config, space, run, budgets["search"], state, evaluator, predictor, trained, dataset)
        search.run_all()
        spent = {"supernet": f"{trained.spent:.0f} s ({trained.steps} steps)", **search.spent_summary()}
        paths = run.write_outputs(list(config.objectives), budget={"budget": config.budget, **spent})
        console.print(f"[bold]done[/bold]: {len(run.records())} evaluations; front in {paths['pareto_csv']}")
    return run


def _limits(config: SearchConfig) -> dict[str, float]:
    out = {}
    if config.max_macs:
        out["macs"] = float(config.max_macs)
    if config.max_latency:
        out["latency"] = float(config.max_latency)
    return out


def _load_predictor(config: SearchConfig, space):
    if not config.latency_table:
        return None
    from nasbench.latency import load_table

    table = load_table(config.latency_table, space)
    table.require_correction()  # predictions need the end-to-end correction fitted by `latency validate`
    return table


def _read_state(run: RunDir) -> dict[str, Any]:
    path = run.path / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"spent": {}}


def _write_state(run: RunDir, state: dict[str, Any]) -> None:
    tmp = run.path / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(run.path / STATE_FILE)


class _SearchPhase:
    """Phase 2: each searcher in turn, with an equal share of the search budget."""

    def __init__(self, config, space, run, budget, state, evaluator, predictor, trained, dataset):
        self.config, self.space, self.run, self.state = config, space, run, state
        self.evaluator, self.predictor, self.trained, self.dataset = evaluator, predictor, trained, dataset
        n = len(config.searchers)
        self.budgets = {
            s: Budget(budget.kind, budget.amount / n if budget.is_time else max(1, budget.count // n))
            for s in config.searchers
        }

    def clock(self, searcher: str) -> BudgetClock:
        budget = self.budgets[searcher]
        spent = float(self.state["spent"].get(searcher, 0.0))
        if budget.kind == TRIALS:
            spent = float(len(self.run.completed_trials(searcher)))
        return BudgetClock(budget, spent_before=spent)

    def save(self, searcher: str, clock: BudgetClock) -> None:
        self.state["spent"][searcher] = clock.spent
        _write_state(self.run, self.state)

    def spent_summary(self) -> dict[str, str]:
        return {
            s: f"{self.state['spent'].get(s, 0):.0f} {'s' if self.budgets[s].is_time else 'trials'} "
            f"of {self.budgets[s]}"
            for s in self.config.searchers
        }

    def run_all(self) -> None:
        trial_searchers = [s for s in self.config.searchers if s in TRIAL_SEARCHERS]
        for i, searcher in enumerate(self.config.searchers, 1):
            console.print(
                f"[bold]phase 2/2[/bold] search {i}/{len(self.config.searchers)}: {searcher}, "
                f"budget {self.budgets[searcher]}"
            )
            if searcher == "proximal":
                self.run_proximal()
            elif searcher == trial_searchers[0]:
                self.run_trials(trial_searchers)

    # --- proximal, in this process ------------------------------------------------------------------------
    def run_proximal(self) -> None:
        clock = self.clock("proximal").start()
        cfg = self.config
        num_classes = self.dataset.num_classes
        predictor = self.predictor
        if "latency" in cfg.objectives and predictor is not None:  # search under latency, else under MACs
            expected, cost, limit = expected_latency(self.space, predictor), predictor.predict, cfg.max_latency
        else:
            expected, cost, limit = expected_macs(self.space, num_classes), None, cfg.max_macs
            cost = lambda a: count(a, num_classes).macs  # noqa: E731
        targets = cost_range(self.space, cost, cfg.proximal_targets)
        if limit:
            targets = [min(t, limit) for t in targets]
        per_target = clock.budget.amount / len(targets)
        searcher = ProximalSearch(
            self.space,
            self.trained.supernet,
            self.trained.train,
            self.trained.val,
            expected,
            config=ProximalConfig(steps=cfg.proximal_steps, record_every=max(1, cfg.proximal_steps // 4)),
            seed=cfg.seed,
        )
        current = {"index": 0}

        def should_stop() -> bool:
            if clock.budget.kind == TRIALS:
                return clock.exhausted
            return clock.exhausted or clock.spent > per_target * (current["index"] + 1)

        def report(arch: Arch, info: dict) -> None:
            current["index"] = info["target_index"]
            if not self.run.has_evaluated(arch.id, "proximal"):
                self.record("proximal", arch, info)
                if clock.budget.kind == TRIALS:
                    clock.add(1)
            self.save("proximal", clock)

        for index, target in enumerate(targets):
            current["index"] = index
            if clock.exhausted:
                break
            searcher.search_target(index, target, report, should_stop)
        clock.stop()
        self.save("proximal", clock)

    def record(self, searcher: str, arch: Arch, extra: dict) -> None:
        start = time.perf_counter()
        try:
            fields = self.evaluator(arch)
        except Exception as e:  # noqa: BLE001 - one failed evaluation is a failed record, not a failed run
            fields = {"status": "failed", "error": f"{type(e).__name__}: {e}", "acc": math.nan}
        status = fields.pop("status", "ok")
        record = Record.for_arch(
            arch,
            trial=self.run.next_trial(searcher),
            searcher=searcher,
            seed=self.config.seed,
            status=status,
            eval_seconds=time.perf_counter() - start,
            extra=extra,
            **fields,
        )
        self.run.append(record)

    # --- trial searchers, through Ray Tune ----------------------------------------------------------------
    def run_trials(self, searchers: list[str]) -> None:
        from nasbench.search import ray_trials

        with ray_trials.ray_session(self.run.path, self.config.ray_address):
            weights = ray_trials.put_shared(
                {k: v.detach().cpu() for k, v in self.trained.supernet.state_dict().items()}
            )
            data = ray_trials.put_shared(self.dataset)
            factory = EvaluatorFactory(
                self.space,
                self.dataset.num_classes,
                weights,
                data,
                self.evaluator.settings,
                get=ray_trials.get_shared,
                predictor=self.predictor,
            )
            for searcher in searchers:
                self.run_one_trial_searcher(ray_trials, searcher, factory)

    def run_one_trial_searcher(self, ray_trials, searcher: str, factory: EvaluatorFactory) -> None:
        clock = self.clock(searcher).start()
        budget = clock.budget
        done = {r.arch_id: r for r in self.run.records().itertuples() if r.searcher == searcher}

        def skip(arch: Arch):
            row = done.get(arch.id)
            fields = ("status", "error", "acc", "macs", "params", "latency_pred_ms", "latency_ms", "extra")
            return None if row is None else {k: getattr(row, k) for k in fields}

        ray_trials.run_trials(
            self.space,
            factory,
            sampler=searcher,
            objectives=list(self.config.objectives),
            seed=self.config.seed,
            max_trials=budget.count if budget.kind == TRIALS else None,
            time_budget_s=None if budget.kind == TRIALS else max(1.0, clock.remaining),
            storage_dir=self.run.path,
            on_result=self.run.append,
            skip=skip,
            constraints=_limits(self.config) or None,
            concurrency=self.config.concurrency,
            ray_address=self.config.ray_address,
            num_classes=self.dataset.num_classes,
        )
        clock.stop()
        self.save(searcher, clock)
