"""The proximal searcher's pieces as pure functions, checked against autograd and by hand."""

import torch
import torch.nn.functional as F

from nasbench.search.proximal import (
    box_project,
    discrete_gradient,
    geometric_targets,
    probabilities,
    proximal_step,
    resource_penalty,
)


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


def test_proximal_search_moves_towards_its_cost_target():
    """A short real run on the tiny space: a low MACs target must end on a cheaper arch than a high one."""
    import nasbench
    from nasbench.counting import count
    from nasbench.data import load_dataset, search_data
    from nasbench.objectives.expected import expected_macs
    from nasbench.search.proximal import ProximalConfig, ProximalSearch, cost_range
    from nasbench.supernet import Supernet

    torch.manual_seed(0)
    space = nasbench.load_space("tiny")
    train, val = search_data(load_dataset("digits"), 0.2, seed=0)
    net = Supernet(space, 10)
    macs = expected_macs(space, 10)
    low, high = cost_range(space, lambda a: count(a, 10).macs, 2)
    config = ProximalConfig(
        steps=12, batch_size=16, decisions_per_step=2, record_every=6, arch_lr=0.2, resource_weight=5.0
    )
    reports = []
    search = ProximalSearch(space, net, train, val, macs, config=config, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for index, target in enumerate([low, high]):
        search.search_target(index, target, lambda arch, info: reports.append((arch, info)), lambda: False)
    final = {info["target_index"]: arch for arch, info in reports}  # the last report per target
    assert set(final) == {0, 1}
    assert count(final[0], 10).macs < count(final[1], 10).macs
    assert all(space.contains(arch) for arch, _ in reports)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the shared supernet is untouched"
