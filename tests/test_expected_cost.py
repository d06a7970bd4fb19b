"""Expected MACs and latency of a product distribution: exact, differentiable, and equal to the arch's
cost when the distribution is one-hot."""

import itertools

import pytest
import torch

import nasbench
from nasbench.counting import count, decompose
from nasbench.errors import NasbenchError
from nasbench.latency.lut import space_configs
from nasbench.latency.measure import Context
from nasbench.latency.table import Correction, Entry, LatencyTable, config_key, space_fingerprint
from nasbench.objectives import ExpectedCost, expected_latency, expected_macs

TINY = nasbench.load_space("tiny")


def random_probs(ec: ExpectedCost, seed: int, dtype=torch.float64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.softmax(torch.randn(len(c), generator=g, dtype=dtype), 0) for k, c in ec.choices.items()}


def synthetic_table(space, resolutions, *, correction=True) -> LatencyTable:
    """A table with made-up latencies (no measuring): what matters here is the bookkeeping."""
    ctx = Context("cuda", "NVIDIA H100", "2.13.0", "float32", 1, "contiguous", 1, "wall")
    entries = {}
    for i, cfg in enumerate(space_configs(space, resolutions)):
        entries[config_key(cfg)] = Entry([0.01 * (i % 17) + 0.001 * cfg.cout + 0.002 * cfg.size], 0.0)
    table = LatencyTable(space.name, space_fingerprint(space), ctx, 1000, list(resolutions), {}, entries)
    table.correction = Correction(1.1, 0.02, 0.4, 10, 0.03) if correction else None
    return table


@pytest.mark.parametrize("name", ["tiny", "efficientnet"])
def test_one_hot_expected_macs_equal_exact_count(name):
    space = nasbench.load_space(name)
    ec = expected_macs(space)
    for seed in range(5):
        arch = space.sample(seed)
        assert ec(ec.one_hot(arch)).item() == count(arch).macs, str(arch)


def test_one_hot_expected_latency_equals_table_sum_and_prediction():
    table = synthetic_table(TINY, [16, 24])
    raw, corrected = expected_latency(TINY, table, corrected=False), expected_latency(TINY, table)
    for seed in range(5):
        arch = TINY.sample(seed).with_resolution(24 if seed % 2 else 16)
        assert raw(raw.one_hot(arch)).item() == pytest.approx(table.table_sum(arch), rel=1e-12)
        assert corrected(corrected.one_hot(arch)).item() == pytest.approx(table.predict(arch), rel=1e-12)


def test_expectation_is_exact_over_an_enumerated_distribution():
    """Mass on two choices of a few dimensions (the rest one-hot): enumerate every arch and weigh it."""
    ec = expected_macs(TINY)
    base = TINY.encode(TINY.sample(1))
    free = {"resolution": 0.3, "s2.depth": 0.6, "s2.width": 0.2, "s2.l2.block": 0.7, "s3.l1.kernel": 0.4, "head": 0.9}
    probs = ec.one_hot(TINY.decode(base))
    for label, p in free.items():
        probs[label] = torch.tensor([p, 1 - p, 0.0][: len(ec.choices[label])], dtype=torch.float64)
    expected = 0.0
    for picks in itertools.product((0, 1), repeat=len(free)):
        choice, weight = dict(base), 1.0
        for (label, p), i in zip(free.items(), picks, strict=True):
            choice[label] = ec.choices[label][i]
            weight *= p if i == 0 else 1 - p
        expected += weight * count(TINY.decode(choice)).macs
    assert ec(probs).item() == pytest.approx(expected, rel=1e-12)


def test_gradients_match_finite_differences():
    ec = expected_macs(TINY)
    probs = random_probs(ec, 0)
    labels = list(probs)
    scale = ec.exact(TINY.largest())  # keep the function O(1) so the default tolerances are meaningful

    def f(*tensors):
        return ec(dict(zip(labels, tensors, strict=True))) / scale

    inputs = tuple(p.clone().requires_grad_(True) for p in probs.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8)


def test_latency_gradients_through_softmax_logits():
    """What a searcher does: logits -> softmax -> expected latency -> backward, vs central differences."""
    ec = expected_latency(TINY, synthetic_table(TINY, [16, 24]))
    g = torch.Generator().manual_seed(1)
    logits = {k: torch.randn(len(c), generator=g, dtype=torch.float64) for k, c in ec.choices.items()}

    def f(lg):
        return ec({k: torch.softmax(v, 0) for k, v in lg.items()})

    leaf = {k: v.clone().requires_grad_(True) for k, v in logits.items()}
    f(leaf).backward()
    for label in ("resolution", "s3.depth", "s3.l2.block", "s4.width", "head"):
        for i in range(len(logits[label])):
            up, down = dict(logits), dict(logits)
            up[label] = logits[label].clone()
            up[label][i] += 1e-6
            down[label] = logits[label].clone()
            down[label][i] -= 1e-6
            numeric = (f(up) - f(down)).item() / 2e-6
            assert leaf[label].grad[i].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_float32_probabilities_work_and_stay_close():
    ec = expected_macs(TINY)
    p64 = random_probs(ec, 3)
    p32 = {k: v.float() for k, v in p64.items()}
    assert ec(p32).dtype == torch.float32
    assert ec(p32).item() == pytest.approx(ec(p64).item(), rel=1e-5)


def test_bad_probabilities_are_clear_errors():
    ec = expected_macs(TINY)
    probs = random_probs(ec, 0)
    with pytest.raises(NasbenchError, match="s2.width"):
        ec({k: v for k, v in probs.items() if k != "s2.width"})
    with pytest.raises(NasbenchError, match="shape"):
        ec(probs | {"head": torch.ones(3, dtype=torch.float64)})
    with pytest.raises(NasbenchError, match="no dimension"):
        ec(probs | {"s9.depth": torch.ones(1)})
    del probs["s1.depth"]  # one choice: may be left out
    ec(probs)


def test_latency_needs_the_tables_configs_and_correction():
    table = synthetic_table(TINY, [16], correction=False)
    with pytest.raises(NasbenchError, match="no fitted correction"):
        expected_latency(TINY, table)
    ec = expected_latency(TINY, table, corrected=False)
    assert ec.choices["resolution"] == (16,)
    arch = TINY.sample(0).with_resolution(16)
    assert ec(ec.one_hot(arch)).item() == pytest.approx(sum(table.layer_ms(c) for _, c in decompose(arch)))
    del table.entries[config_key(decompose(arch)[0][1])]
    with pytest.raises(NasbenchError, match="no entry"):
        expected_latency(TINY, table, corrected=False)
    with pytest.raises(NasbenchError, match="measured for space"):
        expected_latency(nasbench.load_space("mobile"), table)
