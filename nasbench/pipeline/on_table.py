"""``nasbench search --evaluator table``: a search whose evaluations are a benchmark's table lookups.

No supernet is trained and no data is loaded: each searcher's proposals are scored with the table's true
accuracy (``TableEvaluator``), under a budget of queries. This is how the field compares search strategies
apart from weight sharing; the run folder, journal, resume and outputs are those of any search.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from nasbench.benchmarks.truth import benchmark_for
from nasbench.benchmarks.truth import names as benchmark_names
from nasbench.budget import Budget
from nasbench.errors import NasbenchError
from nasbench.runs import RunDir
from nasbench.search.base import SearchContext
from nasbench.search.evaluator import TableEvaluator

console = Console(stderr=True)


def run_on_table(
    config: Any,
    space: Any,
    budget: Budget,
    *,
    out: Path | None,
    resume: Path | None,
    search_phase: Any,
    load_predictor: Any,
) -> RunDir:
    """A search whose evaluations are a benchmark's table lookups (``--evaluator table``): no supernet."""
    truth = benchmark_for(space)
    if truth is None:
        raise NasbenchError(
            f"--evaluator table needs a benchmark space ({', '.join(benchmark_names())}); {space.name} has no table"
        )
    stored = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    run = RunDir.resume(resume, stored) if resume else RunDir.create(stored, out=out)
    with run:
        console.print(f"[bold]run[/bold] {run.path}  ({space.name}, evaluated from its table, budget {budget})")
        latency = load_predictor(config, space)
        predictor = latency.table if latency else None
        ctx = SearchContext(
            space=latency.space if latency else space,
            num_classes=10,
            objectives=tuple(config.objectives),
            limits=config.limits,
            seed=config.seed,
            evaluate=TableEvaluator(truth, 10, predictor.predict if predictor else None),
            predictor=predictor,
            study_file=run.optuna_db,
        )
        spent = search_phase(run, ctx, {n: config.searcher(n) for n in config.searchers}, budget)
        paths = run.write_outputs(list(config.objectives), budget={"budget": config.budget, **spent})
        console.print(f"[bold]done[/bold]: {len(run.records())} evaluations; front in {paths['pareto_csv']}")
    return run
