"""The proximal searcher's pieces as pure functions, checked against autograd, brute-force counts and by
hand; then its outcome: the architecture it reports for a cost target costs about that target."""

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

import nasbench
from nasbench.budget import TRIALS, Budget, BudgetClock
from nasbench.counting import count
from nasbench.data import load_dataset, search_data
from nasbench.objectives.expected import expected_macs, switched_costs
from nasbench.runs import RunDir
from nasbench.search.base import RecordSink, SearchContext
from nasbench.search.proximal import (
    ProximalConfig,
    ProximalSearch,
    Visit,
    box_project,
    centred,
    choose_final,
    cost_range,
    discrete_gradient,
    geometric_targets,
    probabilities,
    proximal_step,
    resource_gradient,
    resource_penalty,
)
from nasbench.search.proximal_searcher import ProximalSearcher
from nasbench.supernet import Supernet


def test_proximal_step_is_the_one_hot_of_the_best_choice():
    alpha = {"a": torch.tensor([0.1, 0.7, 0.3]), "b": torch.tensor([0.5, 0.5]), "c": torch.tensor([0.9])}
    assert proximal_step(alpha) == {"a": 1, "b": 0, "c": 0}  # ties go to the first choice


def test_box_projection_clips_into_the_unit_box():
    out = box_project({"a": torch.tensor([-0.2, 0.4, 1.3])})
    assert torch.equal(out["a"], torch.tensor([0.0, 0.4, 1.0]))


def test_discrete_gradient_equals_autograd_of_the_logit_mixture():
    gen = torch.Generator().manual_seed(0)
    k, b, c = 4, 5, 3
    alternatives = torch.randn(k, b, c, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (b,), generator=gen)
    chosen = 2
    one_hot = torch.zeros(k, dtype=torch.float64)
    one_hot[chosen] = 1.0
    alpha = one_hot.clone().requires_grad_(True)
    mixed = torch.einsum("k,kbc->bc", alpha, alternatives)
    F.cross_entropy(mixed, y).backward()
    logits = alternatives[chosen].clone().requires_grad_(True)
    (grad_logits,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    assert torch.allclose(discrete_gradient(grad_logits, alternatives), alpha.grad)


def test_gradient_prefers_the_choice_with_the_better_logits():
    y = torch.tensor([0, 1])
    good = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    bad = -good
    logits = bad.clone().requires_grad_(True)  # currently at the bad choice
    (grad_logits,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    grad = discrete_gradient(grad_logits, torch.stack([bad, good]))
    alpha = box_project({"d": torch.tensor([0.5, 0.5]) - 0.1 * grad})
    assert alpha["d"][1] > alpha["d"][0]


def test_probabilities_and_resource_penalty():
    probs = probabilities({"a": torch.tensor([0.0, 1.0, 1.0])})
    assert torch.isclose(probs["a"].sum(), torch.tensor(1.0)) and probs["a"][0] > 0
    assert resource_penalty(torch.tensor(5.0), 5.0) == 0
    assert torch.isclose(resource_penalty(torch.tensor(10.0), 5.0), resource_penalty(torch.tensor(2.5), 5.0))


def test_geometric_targets_span_the_range():
    targets = geometric_targets(1e6, 1e8, 3)
    assert all(1e6 < t < 1e8 for t in targets)
    assert targets == sorted(targets)
    assert abs(targets[1] - 1e7) < 1e-3 * 1e7


TEST_STEPS = 10  # the discrete arch reaches its target within ~6 steps on tiny (seeds 0, 1, 3, 4 checked)


def random_picks(space, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {d.label: rng.randrange(len(d.choices)) for d in space.dimensions()}


def decode(space, picks: dict[str, int]):
    return space.decode({d.label: d.choices[picks[d.label]] for d in space.dimensions()})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_switched_costs_equal_brute_force_counts(seed):
    """Every decision switched to every choice: the vector from one backward equals counting that arch."""
    space = nasbench.load_space("tiny")
    picks = random_picks(space, seed)
    total, switched = switched_costs(expected_macs(space, 10), picks)
    assert total == pytest.approx(count(decode(space, picks), 10).macs, rel=1e-12)
    for d in space.dimensions():
        brute = [count(decode(space, picks | {d.label: i}), 10).macs for i in range(len(d.choices))]
        assert switched[d.label].tolist() == pytest.approx(brute, rel=1e-12), d.label


def test_resource_gradient_is_the_penalty_of_each_switched_arch():
    """``d/dalpha_{d,i} sum_i alpha_{d,i} log(c_{d,i} / T)^2``, checked with autograd; it pushes towards the
    switch that lands closest to the target, not the biggest one in the right direction."""
    f64 = torch.float64
    switched = {"a": torch.tensor([1.0, 3.0, 8.0], dtype=f64), "b": torch.tensor([8.0, 6.0], dtype=f64)}
    target = 2.0  # the arch (a=2, b=0) costs 8: above its target
    grads = resource_gradient(switched, target)
    for label, c in switched.items():
        alpha = torch.rand(len(c), dtype=f64, requires_grad=True)
        (alpha * resource_penalty(c, target)).sum().backward()
        assert torch.allclose(grads[label], alpha.grad)
    assert grads["a"].argmin() == 1  # 3 is nearer 2 than 1 is (in log), though 1 saves more
    linearised = 2 * math.log(8.0 / target) * switched["a"] / 8.0  # the gradient of the mixed cost's penalty
    assert linearised.argmin() == 0  # would jump to the cheapest, past the target


def test_centred_gradient_keeps_only_what_changes_the_argmax():
    g = torch.tensor([1.0, 2.0, 6.0])
    assert centred(g).sum().abs() < 1e-12 and torch.equal(centred(g).argsort(), g.argsort())


def visits_of(costs: list[float]) -> list[Visit]:
    arch = nasbench.load_space("tiny").smallest()
    return [Visit(step, arch, cost, cost) for step, cost in enumerate(costs, 1)]


def test_the_reported_arch_is_the_last_within_tolerance_else_the_closest():
    assert choose_final(visits_of([50, 95, 300, 118, 40]), 100.0, 0.2).step == 4
    assert choose_final(visits_of([50, 300, 140, 75, 40]), 100.0, 0.2).step == 4  # 75 is closer than 140 in log
    assert choose_final(visits_of([50, 200, 50]), 100.0, 0.2).step == 3  # equals: the latest
    assert choose_final([], 100.0, 0.2) is None


def test_reported_archs_land_on_their_targets():
    """The outcome, on an untrained tiny supernet: for 3 targets spread over the MACs range, the reported
    arch costs within +-20% of its target. Untrained weights make the accuracy gradient noise of the size a
    trained one has, so what is tested is that the resource term steers the *discrete* arch onto its
    target (the old penalty on the expected cost sent every target to the smallest or the largest arch)."""
    torch.manual_seed(0)
    space = nasbench.load_space("tiny")
    train, val = search_data(load_dataset("digits"), 0.2, seed=0)
    net = Supernet(space, 10)
    targets = cost_range(space, lambda a: count(a, 10).macs, 3)
    config = ProximalConfig(steps=TEST_STEPS, batch_size=8, decisions_per_step=1)
    search = ProximalSearch(space, net, train, val, expected_macs(space, 10), config=config, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for index, target in enumerate(targets):
        run = search.search_target(index, target, lambda: False)
        assert len(run.visits) == TEST_STEPS and all(space.contains(v.arch) for v in run.visits)
        assert count(run.final.arch, 10).macs == pytest.approx(run.final.cost, rel=1e-12)
        assert abs(run.final.cost / target - 1) <= 0.2, (target, [round(v.cost / target, 2) for v in run.visits])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the shared supernet is untouched"


def test_records_carry_the_target_the_real_cost_and_which_arch_is_reported(tmp_path):
    space = nasbench.load_space("tiny")
    torch.manual_seed(0)
    train, val = search_data(load_dataset("digits"), 0.2, seed=0)

    def evaluate(arch):
        cost = count(arch, 10)
        return {"acc": 0.5, "macs": cost.macs, "params": cost.params, "latency_pred_ms": math.nan}

    ctx = SearchContext(
        space=space, num_classes=10, objectives=("acc", "macs"), limits={}, seed=0, evaluate=evaluate,
        supernet=Supernet(space, 10), train=train, val=val,
    )  # fmt: skip
    run = RunDir.create({"space": "tiny", "data": "digits", "searcher": "proximal"}, out=tmp_path / "run")
    clock = BudgetClock(Budget(TRIALS, 100))
    sink = RecordSink(run, "proximal", seed=0, num_classes=10, objectives=ctx.objectives, limits={}, clock=clock)
    try:
        ProximalSearcher(targets=2, steps=2).search(ctx, clock.start(), sink)
    finally:
        clock.stop()
    records = run.records().to_dict("records")
    extras = [json.loads(r["extra"]) for r in records]
    targets = cost_range(space, lambda a: count(a, 10).macs, 2)
    for record, extra in zip(records, extras, strict=True):
        assert extra["cost"] == record["macs"] and extra["cost_objective"] == "macs"
        assert extra["target"] == pytest.approx(targets[extra["target_index"]])
        assert extra["expected_cost"] > 0 and 1 <= extra["step"] <= 2
        assert extra["within_tolerance"] == (abs(extra["cost"] / extra["target"] - 1) <= 0.2)
    finals = [e["target_index"] for e in extras if e["final"]]
    assert sorted(finals) == [0, 1]  # one reported arch per target ...
    firsts = {}
    for e in extras:
        firsts.setdefault(e["target_index"], e)
    assert all(e["final"] for e in firsts.values())  # ... recorded first among that target's records
