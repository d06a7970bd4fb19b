"""The ranking report and the zero-cost proxies: correlations agree with scipy, the bootstrap is honest, the
within-quintile tau exposes a ranker that only knows FLOPs, and the proxies are pure, deterministic functions
of the model that order wide networks above narrow ones."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from nasbench.benchmarks.proxies import PROXIES, naswot, synflow
from nasbench.benchmarks.ranking import (
    bootstrap_interval,
    format_report,
    kendall_tau,
    quintiles,
    rank_report,
    spearman,
    stratified_sample,
    top_precision,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_correlations_equal_scipy_and_are_nan_on_constant_input(rng):
    truth, score = rng.normal(size=50), rng.normal(size=50)
    score[:10] = score[0]  # ties too
    assert kendall_tau(truth, score) == pytest.approx(stats.kendalltau(truth, score).statistic)
    assert spearman(truth, score) == pytest.approx(stats.spearmanr(truth, score).statistic)
    assert math.isnan(kendall_tau(truth, np.ones(50))) and math.isnan(spearman(np.ones(50), score))


def test_a_perfect_ranker_scores_one_and_a_reversed_one_minus_one(rng):
    truth = rng.normal(size=200)
    assert kendall_tau(truth, 3 * truth + 1) == pytest.approx(1.0)
    assert top_precision(truth, np.exp(truth)) == 1.0
    assert kendall_tau(truth, -truth) == pytest.approx(-1.0)
    assert spearman(truth, -truth) == pytest.approx(-1.0)
    assert top_precision(truth, -truth) == 0.0
    assert top_precision(np.arange(100), np.r_[np.arange(98), -1, -2], fraction=0.05) == 0.6  # 3 of the top 5


def test_quintiles_are_equal_sized_and_ordered_by_flops(rng):
    flops = rng.integers(0, 10, size=103)  # many ties
    groups = quintiles(flops)
    sizes = np.bincount(groups)
    assert len(sizes) == 5 and sizes.max() - sizes.min() <= 1
    for g in range(4):
        assert flops[groups == g].max() <= flops[groups == g + 1].min()


def test_stratified_sample_is_seeded_and_spreads_over_the_groups(rng):
    flops = rng.lognormal(size=1000)
    sample = stratified_sample(flops, 50, seed=1)
    assert np.array_equal(sample, stratified_sample(flops, 50, seed=1))
    assert not np.array_equal(sample, stratified_sample(flops, 50, seed=2))
    assert len(np.unique(sample)) == 50
    assert np.bincount(quintiles(flops)[sample], minlength=5).tolist() == [10] * 5
    assert np.bincount(quintiles(flops)[stratified_sample(flops, 52, seed=1)]).max() == 11
    with pytest.raises(ValueError, match="group"):
        stratified_sample(flops[:20], 25, seed=0)  # 5 per group wanted, 4 in each


def test_the_bootstrap_interval_holds_the_estimate_and_narrows_with_n(rng):
    def width(n: int) -> float:
        truth = rng.normal(size=n)
        score = truth + rng.normal(size=n)
        lo, hi = bootstrap_interval(truth, score, kendall_tau, n_boot=300, seed=0)
        assert lo < kendall_tau(truth, score) < hi
        return hi - lo

    assert width(400) < 0.6 * width(60)


@pytest.mark.parametrize("stat", [kendall_tau, spearman])
def test_the_vectorised_bootstrap_equals_calling_scipy_per_resample(rng, stat):
    truth = rng.normal(size=80)
    score = np.round(truth + rng.normal(size=80))  # ties
    fast = bootstrap_interval(truth, score, stat, n_boot=200, seed=3)
    slow = bootstrap_interval(truth, score, lambda t, s: stat(t, s), n_boot=200, seed=3)  # not the fast path
    assert fast == pytest.approx(slow)


def test_within_quintile_tau_exposes_a_ranker_that_only_knows_flops(rng):
    n = 400
    flops = rng.lognormal(size=n)
    truth = quintiles(flops) + rng.uniform(size=n)  # cost sets the group; within a group, FLOPs say nothing
    report = rank_report(truth, {"flops": flops, "oracle": truth, "noise": rng.normal(size=n)}, flops,
                         n_boot=300, seed=0)  # fmt: skip
    by = report.set_index("ranker")
    assert list(report.columns) == ["ranker", "n", "tau", "tau_lo", "tau_hi", "spearman", "top5",
                                    *[f"tau_q{q}" for q in range(1, 6)], "tau_within", "tau_within_lo",
                                    "tau_within_hi"]  # fmt: skip
    assert by.loc["flops", "tau"] > 0.6 and by.loc["flops", "tau_lo"] > 0.5  # ranks well overall ...
    assert abs(by.loc["flops", "tau_within"]) < 0.1  # ... but not among networks of similar cost
    assert by.loc["flops", "tau_within_lo"] < 0 < by.loc["flops", "tau_within_hi"]
    assert by.loc["oracle", "tau_within"] == pytest.approx(1.0) and by.loc["oracle", "top5"] == 1.0
    assert by.loc["noise", "tau_lo"] < 0 < by.loc["noise", "tau_hi"]
    assert by.loc["flops", "tau_within"] == pytest.approx(by.loc["flops", [f"tau_q{q}" for q in range(1, 6)]].mean())
    table = format_report(report)
    assert table.count("\n") == 4 and "| flops | 400 |" in table and "[" in table


# -- proxies --------------------------------------------------------------------------------------------------


def conv_net(width: int, depth: int = 2) -> nn.Module:
    layers, ch = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(ch, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        ch = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(ch, 10))


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 12, 12, generator=gen), torch.randint(0, 10, (16,), generator=gen)


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_proxies_are_deterministic_finite_and_leave_the_model_alone(name, batch):
    torch.manual_seed(0)
    model = conv_net(8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    first, second = PROXIES[name](model, *batch), PROXIES[name](model, *batch)
    assert isinstance(first, float) and math.isfinite(first) and first == second
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's generator is not reseeded


def test_synflow_matches_its_closed_form_on_a_linear_net():
    # With positive weights and a ones input, R = 1^T |W2| |W1| 1 is linear in each layer's weights, so each
    # layer's sum of theta * dR/dtheta is R itself (Tanaka et al.'s conservation): synflow = 2R for two layers.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    w1, w2 = (m.weight.detach().double().abs() for m in (model[0], model[2]))
    r = (w2 @ w1 @ torch.ones(4, dtype=torch.float64)).sum()
    assert synflow(model, torch.randn(5, 4)) == pytest.approx(math.log10(2 * float(r)))


def test_wider_and_deeper_nets_score_higher(batch):
    torch.manual_seed(0)
    narrow, wide = conv_net(2), conv_net(32)
    assert naswot(wide, *batch) > naswot(narrow, *batch) + 20  # more ReLU units, more distinct codes
    assert synflow(conv_net(16, depth=3), *batch) > synflow(conv_net(4, depth=1), *batch)


def test_naswot_scores_distinct_images_above_near_duplicates(batch):
    torch.manual_seed(0)
    model = conv_net(16)
    images, labels = batch
    duplicates = images[:1].repeat(16, 1, 1, 1) + 1e-3 * images  # codes nearly identical: K nearly singular
    assert naswot(model, images, labels) > naswot(model, duplicates, labels) + 10
