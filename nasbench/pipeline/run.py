"""``run_search``: one run, from a space, data and a budget to a Pareto front, resumable at any point.

Phases: (1) train the supernet (``nasbench.training``; its checkpoints live in ``RunDir.supernet_dir``),
(2) search it with each registered searcher the user named, in turn (``search_phase``), every evaluation
recorded in the run's journal as it finishes, (3) write the outputs (records.parquet, pareto.csv,
pareto.png, summary.md). The budget is split once between phases 1 and 2 (``shares``) and once, evenly and
with nothing lost to rounding, between the searchers (``budget.split_evenly``). Killed anywhere, ``resume``
re-enters the same phase: training continues from its last checkpoint, each searcher's clock from what it
had spent, and no evaluation in the journal is repeated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from nasbench.api import Run, load_run
from nasbench.benchmarks.truth import benchmark_for
from nasbench.budget import (
    TRIALS,
    Budget,
    BudgetClock,
    after_first_phase,
    device_note,
    split_evenly,
)
from nasbench.data import load_dataset
from nasbench.pipeline.config import SearchConfig, phase_budgets, search_config
from nasbench.runs import RunDir
from nasbench.search import registry
from nasbench.search.base import RecordSink, SearchContext, Searcher
from nasbench.search.evaluator import EvaluatorFactory, SupernetEvaluator
from nasbench.search.ranker import ranker_phase
from nasbench.spaces import load_space
from nasbench.training import TrainConfig
from nasbench.training.rundir import TrainingRecord
from nasbench.training.state import resolve_device

console = Console(stderr=True)


def search(
    space: str | None = None,
    data: str | None = None,
    budget: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    **settings: Any,
) -> Run:
    """The main job from Python (``nasbench.search(...)``): train a supernet, search it under ``budget``,
    return the finished run (``nasbench.load_run``'s ``Run``: records DataFrame, front, config).

    ``settings`` are ``nasbench search``'s other options with underscores (``SearchConfig``'s fields; tuples
    also as ``"proximal,nsga2"``). With ``resume``, settings left out come from the run.
    """
    config = search_config({"space": space, "data": data, "budget": budget, **settings}, resume=resume)
    run = run_search(config, out=Path(out) if out is not None else None, resume=Path(resume) if resume else None)
    return load_run(run.path)


def run_search(config: SearchConfig, *, out: Path | None = None, resume: Path | None = None) -> RunDir:
    """Run (or, with ``resume``, continue) a search; returns the run folder with its outputs written."""
    config.check()
    budgets = phase_budgets(config)
    space = load_space(config.space)
    load_predictor(config, space)  # a table that cannot serve this search is refused before anything is written
    if config.evaluator == "table":
        from nasbench.pipeline.on_table import run_on_table  # it runs this module's search phase

        return run_on_table(
            config,
            space,
            budgets["search"],
            out=out,
            resume=resume,
            search_phase=search_phase,  # passed in: on_table must not import this module back
            load_predictor=load_predictor,
        )
    dataset = load_dataset(config.data)
    stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    run = RunDir.resume(resume, stored) if resume else RunDir.create(stored, out=out)
    device = resolve_device(config.device)
    with run:
        where = f"{space.name} on {dataset.name}, {device}, budget {config.budget}"
        console.print(f"[bold]run[/bold] {run.path}  ({where})")
        console.print(f"[bold]phase 1/2[/bold] supernet training, budget {budgets['supernet']}")
        trained = train_phase(config, space, dataset, budgets["supernet"], run, device, stored)
        note = device_note(budgets["search"], device.type)
        if note:
            console.print(f"[yellow]{note}")
        ctx = search_context(config, trained, run)
        search_budget = after_first_phase(budgets["search"], budgets["supernet"], trained.spent)
        if search_budget != budgets["search"]:
            change = search_budget.amount - budgets["search"].amount
            why = f"{abs(change):.0f} s the supernet {'left unspent' if change > 0 else 'overran'}"
            console.print(f"search phase: {budgets['search']} {'+' if change > 0 else '-'} {why}")
        search_budget, calibration = ranker_phase(run, ctx, config.calibration, search_budget)
        with trial_workers(config, ctx, run, dataset, device) as workers:
            ctx.workers = workers
            spent = search_phase(run, ctx, {n: config.searcher(n) for n in config.searchers}, search_budget)
        spent = {"supernet": f"{trained.spent:.0f} s ({trained.steps} steps)", **calibration, **spent}
        notes = run.read_state().get("latency", {}).get("notes", [])
        paths = run.write_outputs(list(config.objectives), budget={"budget": config.budget, **spent}, notes=notes)
        console.print(f"[bold]done[/bold]: {len(run.records())} evaluations; front in {paths['pareto_csv']}")
    return run


def train_phase(
    config: SearchConfig, space: Any, dataset: Any, budget: Budget, run: RunDir, device: Any, origin: dict
) -> Any:
    """Phase 1: the supernet, on one device or (``workers`` > 1) data-parallel on Ray Train."""
    from nasbench.training.parallel import train_on_workers  # torch.distributed only when training

    return train_on_workers(
        space,
        dataset,
        budget,
        run.supernet_dir,
        workers=config.workers,
        ray_address=config.ray_address,
        config=train_config(config, run.supernet_dir),
        seed=config.seed,
        device=device,
        resume=TrainingRecord.find(run.supernet_dir) is not None,
        origin=origin,
    )


def train_config(config: SearchConfig, supernet_dir: Path) -> TrainConfig:
    """The supernet's recipe in a search (its evaluation and the proximal steps run in the same layout): the
    default recipe at the search's batch size or, once ``supernet_dir`` holds a training record, the recipe
    that supernet was started with. A search resumed after the defaults changed continues (and evaluates)
    its supernet as it was trained, instead of being refused as a different run."""
    record = TrainingRecord.find(supernet_dir)
    if record is not None:
        return record.config
    if config.sampling == "uniform":  # single-path: one subnet per step, from the labels
        return TrainConfig(batch_size=config.batch_size, sampling="uniform", num_random=1)
    return TrainConfig(batch_size=config.batch_size, sampling=config.sampling)


def search_context(config: SearchConfig, trained: Any, run: RunDir) -> SearchContext:
    """The searchers' context over a trained supernet (``train_supernet``'s result), whose space and
    number of classes it uses.

    With a latency table, the searchers see the space restricted to the resolutions the table covers, and
    what the table changes (resolutions left out, figures that are another machine's milliseconds) is
    printed and stored in the run's state under ``latency``."""
    space = trained.supernet.space
    latency = load_predictor(config, space)
    predictor = latency.table if latency else None
    if latency:
        space = latency.space
        for line in latency.notes():
            console.print(f"[yellow]{line}")
        run.write_state({**run.read_state(), "latency": latency.record()})
    settings = TrainingRecord.read(trained.out_dir).eval_settings(images=config.eval_images)  # the trained one's
    evaluate = SupernetEvaluator(
        trained.supernet, trained.train, trained.val, settings, predictor.predict if predictor else None
    )
    return SearchContext(
        space=space,
        num_classes=trained.supernet.num_classes,
        objectives=tuple(config.objectives),
        limits=config.limits,
        seed=config.seed,
        evaluate=evaluate,
        supernet=trained.supernet,
        train=trained.train,
        val=trained.val,
        predictor=predictor,
        study_file=run.optuna_db,
        settings=settings,
    )


@contextmanager
def trial_workers(config: SearchConfig, ctx: SearchContext, run: RunDir, dataset: Any, device: Any) -> Iterator[Any]:
    """Ray workers for the trial searchers when they run several at a time or on a cluster, else None
    (they evaluate in this process). Ray starts here, before any searcher's clock does. On CUDA each
    trial asks Ray for a share of a GPU (``trial_resources``) and its worker evaluates on the GPU Ray
    gives it, with its own copy of the supernet and data, built once per worker."""
    wanted = any(registry.searcher_class(n).uses_workers for n in config.searchers)
    if not wanted or (config.concurrency == 1 and not config.ray_address):
        yield None
        return
    from nasbench.engines import ray_tune  # the only module that imports Ray

    with ray_tune.ray_session(run.ray_dir, config.ray_address):
        weights = {k: v.detach().cpu() for k, v in ctx.supernet.state_dict().items()}
        factory = EvaluatorFactory(
            ctx.space,
            ctx.num_classes,
            ray_tune.put_shared(weights),
            ray_tune.put_shared(dataset),
            ctx.evaluate.settings,
            get=ray_tune.get_shared,
            predictor=ctx.predictor,
            ranker=ctx.evaluate.ranker,
            device=device.type,  # Ray picks the GPU: a worker sees its own as cuda:0
        )
        resources = trial_resources(device, config.concurrency, config.gpus_per_trial)
        yield ray_tune.RayWorkers(factory, run.tune_dir, concurrency=config.concurrency, resources_per_trial=resources)


def trial_resources(device: Any, concurrency: int, gpus_per_trial: float | None = None) -> dict[str, float]:
    """What one Ray trial asks for: a CPU, and on CUDA a share of a GPU (``gpus_per_trial``, else
    1 / ``concurrency``, so that ``concurrency`` trials share one GPU)."""
    if device.type != "cuda":
        return {"cpu": 1}
    return {"cpu": 1, "gpu": gpus_per_trial or 1.0 / concurrency}


def search_phase(run: RunDir, ctx: SearchContext, searchers: dict[str, Searcher], budget: Budget) -> dict[str, str]:
    """Each searcher (by name, built with its settings: ``SearchConfig.searcher``) in turn, with an equal share
    of ``budget``; what each spent, for the summary.

    Every searcher's clock resumes from the run's state (time) or its records (trials), and is saved
    after every record, so a killed run loses at most the evaluation in progress."""
    budgets = split_evenly(budget, searchers)
    state = run.read_state()
    truth = benchmark_for(ctx.space)  # a benchmark space: each record gets its true accuracy beside it
    for i, name in enumerate(searchers, 1):
        console.print(f"[bold]phase 2/2[/bold] search {i}/{len(searchers)}: {name}, budget {budgets[name]}")
        clock = _clock(run, state, name, budgets[name])

        def save(_record: Any = None, name: str = name, clock: BudgetClock = clock) -> None:
            state["spent"][name] = clock.spent
            run.write_state(state)

        sink = RecordSink(
            run,
            name,
            truth=truth,
            seed=ctx.seed,
            num_classes=ctx.num_classes,
            objectives=ctx.objectives,
            limits=ctx.limits,
            clock=clock,
            on_record=save,
        )
        try:
            searchers[name].search(ctx, clock.start(), sink)
        finally:
            clock.stop()
            save()
    return {
        n: f"{state['spent'].get(n, 0):.0f} {'s' if budgets[n].is_time else 'trials'} of {budgets[n]}"
        for n in searchers
    }


def _clock(run: RunDir, state: dict[str, Any], name: str, budget: Budget) -> BudgetClock:
    if budget.kind == TRIALS:
        return BudgetClock(budget, spent_before=float(len(run.completed_trials(name))))
    return BudgetClock(budget, spent_before=float(state["spent"].get(name, 0.0)))


def load_predictor(config: SearchConfig, space: Any) -> Any:
    """The run's latency table and the space restricted to its resolutions (``latency.use.SearchTable``),
    or None without a table. Cheap (reads one file): call it before training to refuse a table early."""
    if not config.latency_table:
        return None
    from nasbench.latency.use import table_for_search

    return table_for_search(config.latency_table, space, max_latency=config.max_latency)
