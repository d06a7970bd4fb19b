"""The proximal one-shot search (``nasbench.search.proximal``) behind the searcher protocol: its cost targets
over the space's range, each target's time share, and what each target records."""

from __future__ import annotations

from nasbench.arch import Arch
from nasbench.budget import BudgetClock
from nasbench.counting import count
from nasbench.search.base import RecordSink, SearchContext, Searcher
from nasbench.search.proximal import ProximalConfig, ProximalSearch, TargetRun, Visit, cost_range

TARGETS = 4  # cost targets of a search (--targets), spread over the space's cost range


class ProximalSearcher(Searcher):
    """``ProximalSearch`` behind the searcher protocol: targets spread over the space's cost range (capped
    at a ``--max-macs`` / ``--max-latency`` limit), each given an equal share of a time budget. After each
    target, its reported arch (``extra["final"]`` true) and then its discrete arch every ``record_every``
    steps are evaluated with the shared supernet and recorded, each arch once. Every record's ``extra`` holds
    ``target``, ``cost`` (the discrete arch's exact cost), ``expected_cost`` (under the alphas that gave
    it), ``cost_objective`` (``macs`` or ``latency``), ``within_tolerance``, ``target_index`` and ``step``.
    Searches under latency when it is an objective and a predictor is given, else under MACs."""

    name = "proximal"
    settings = {"proximal_targets": "targets", "proximal_steps": "steps"}

    def __init__(self, *, targets: int = TARGETS, steps: int = ProximalConfig.steps):
        self.targets, self.steps = int(targets), int(steps)  # SearchConfig.check refuses fewer than one

    def search(self, ctx: SearchContext, clock: BudgetClock, sink: RecordSink) -> None:
        from nasbench.objectives.expected import expected_latency, expected_macs

        steps = self.steps
        if "latency" in ctx.objectives and ctx.predictor is not None:
            cost_model, cost, objective = expected_latency(ctx.space, ctx.predictor), ctx.predictor.predict, "latency"
        else:
            cost_model, objective = expected_macs(ctx.space, ctx.num_classes), "macs"

            def cost(arch: Arch) -> float:
                return count(arch, ctx.num_classes).macs

        targets = cost_range(ctx.space, cost, self.targets)
        if objective in ctx.limits:
            targets = [min(t, ctx.limits[objective]) for t in targets]
        s = ctx.settings  # the supernet training's layout and autocast, when known
        layout = {} if s is None else {"channels_last": s.channels_last, "bf16": s.bf16}
        config = ProximalConfig(steps=steps, record_every=max(1, steps // 4), **layout)
        algorithm = ProximalSearch(
            ctx.space, ctx.supernet, ctx.train, ctx.val, cost_model, config=config, seed=ctx.seed
        )
        share = clock.budget.amount / len(targets)
        for index, target in enumerate(targets):
            if clock.exhausted:
                break

            def should_stop(index: int = index) -> bool:
                return clock.exhausted or (clock.budget.is_time and clock.spent > share * (index + 1))

            run = algorithm.search_target(index, target, should_stop)
            for visit, final in records_of(run, config.record_every):
                if clock.exhausted:
                    break
                if not sink.evaluated(visit.arch):
                    sink.evaluate(ctx.evaluate, visit.arch, extra=visit_extra(run, visit, final, objective, config))


def records_of(run: TargetRun, every: int) -> list[tuple[Visit, bool]]:
    """What a target records, in order: its reported arch, then its discrete arch every ``every`` steps
    and at its last step (each arch once)."""
    if run.final is None:
        return []
    out, seen = [(run.final, True)], {run.final.arch.id}
    for i, visit in enumerate(run.visits):
        if (visit.step % every == 0 or i == len(run.visits) - 1) and visit.arch.id not in seen:
            seen.add(visit.arch.id)
            out.append((visit, False))
    return out


def visit_extra(run: TargetRun, visit: Visit, final: bool, objective: str, config: ProximalConfig) -> dict:
    return {
        "target": run.target,
        "target_index": run.index,
        "step": visit.step,
        "cost": visit.cost,
        "expected_cost": visit.expected_cost,
        "cost_objective": objective,
        "final": final,
        "within_tolerance": abs(visit.cost / run.target - 1.0) <= config.tolerance,
    }
