"""Pareto masks, fronts, hypervolume and spreading, checked against hand-computed and brute-force values."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from nasbench.objectives.table import OBJECTIVES
from nasbench.pareto import hypervolume, pareto_front, pareto_mask, resolve_objectives, spread_along_front


def brute_mask(values, senses):
    """A point is on the front unless another is at least as good everywhere and better somewhere."""
    sign = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    pts = np.asarray(values, dtype=float) * sign
    mask = []
    for i, p in enumerate(pts):
        if np.isnan(p).any():
            mask.append(False)
            continue
        dominated = any(
            j != i and not np.isnan(q).any() and (q <= p).all() and (q < p).any() for j, q in enumerate(pts)
        )
        mask.append(not dominated)
    return np.array(mask, dtype=bool)


def union_of_boxes(points, reference, senses):
    """Volume of the union of the boxes [point, reference] by inclusion-exclusion over all subsets."""
    sign = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    pts = [p for p in np.asarray(points, dtype=float) * sign if (p < np.asarray(reference) * sign).all()]
    ref = np.asarray(reference, dtype=float) * sign
    total = 0.0
    for size in range(1, len(pts) + 1):
        for subset in itertools.combinations(pts, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(ref - corner)
    return total


# --- pareto_mask ----------------------------------------------------------------------------------------


def test_mask_of_a_small_hand_made_set():
    # (acc, macs): b beats a (cheaper, same acc); c trades; d is dominated by c.
    values = [[0.8, 200], [0.8, 100], [0.9, 300], [0.85, 400]]
    assert pareto_mask(values, ["max", "min"]).tolist() == [False, True, True, False]


@pytest.mark.parametrize("d", [2, 3])
def test_mask_matches_brute_force_with_many_ties(d):
    rng = np.random.default_rng(d)
    senses = ["max", "min", "min"][:d]
    for _ in range(20):
        values = rng.integers(0, 4, size=(int(rng.integers(1, 25)), d))  # small range: ties and duplicates
        assert pareto_mask(values, senses).tolist() == brute_mask(values, senses).tolist()


def test_mask_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, size=(40, 3))
    perm = rng.permutation(40)
    assert (pareto_mask(values, ["min"] * 3)[perm] == pareto_mask(values[perm], ["min"] * 3)).all()


def test_duplicates_are_all_on_or_all_off_the_front():
    values = [[1, 1], [1, 1], [2, 2], [2, 2]]
    assert pareto_mask(values, ["min", "min"]).tolist() == [True, True, False, False]


def test_single_point_empty_input_and_nan_rows():
    assert pareto_mask([[3.0, 4.0]], ["max", "min"]).tolist() == [True]
    assert pareto_mask(np.empty((0, 2)), ["max", "min"]).shape == (0,)
    # A failed evaluation (NaN accuracy) is neither on the front nor dominating anything.
    values = [[math.nan, 1.0], [0.5, 2.0]]
    assert pareto_mask(values, ["max", "min"]).tolist() == [False, True]


def test_mask_rejects_bad_senses_and_shapes():
    with pytest.raises(ValueError, match="sense"):
        pareto_mask([[1, 2]], ["max", "lower"])
    with pytest.raises(ValueError, match="shape"):
        pareto_mask([[1, 2, 3]], ["max", "min"])


# --- pareto_front ---------------------------------------------------------------------------------------


def test_front_is_sorted_by_the_first_cost_and_keeps_its_objectives():
    df = pd.DataFrame(
        {"id": list("abcde"), "acc": [0.9, 0.7, 0.8, 0.6, 0.95], "macs": [30, 10, 20, 15, 60], "latency": 1.0}
    )
    front = pareto_front(df, ["acc", "macs"])
    assert front["id"].tolist() == ["b", "c", "a", "e"]
    assert front.attrs["objectives"] == {"acc": "max", "macs": "min"}
    # A mapping gives the senses explicitly; the first *cost* objective sorts, whatever the order given.
    assert pareto_front(df, {"acc": "max", "macs": "min"})["id"].tolist() == ["b", "c", "a", "e"]


def test_front_of_empty_frame_and_unknown_objectives():
    empty = pd.DataFrame({"acc": pd.Series(dtype=float), "macs": pd.Series(dtype="int64")})
    assert pareto_front(empty, ["acc", "macs"]).empty
    with pytest.raises(ValueError, match="no known sense"):
        pareto_front(empty, ["acc", "flops"])
    with pytest.raises(ValueError, match="not in the frame"):
        pareto_front(empty, ["acc", "latency"])


def test_known_senses_are_the_objectives_tables():
    """Objective names and the record fields behind them take their direction from the one table."""
    for name, objective in OBJECTIVES.items():
        assert resolve_objectives([name, *objective.fields]) == dict.fromkeys(
            [name, *objective.fields], objective.direction
        )
    frame = pd.DataFrame({"acc": [0.5, 0.6, 0.7], "latency_ms": [1.0, 3.0, 2.0]})
    assert pareto_front(frame, ["acc", "latency_ms"])["latency_ms"].tolist() == [1.0, 2.0]


# --- hypervolume ----------------------------------------------------------------------------------------


def test_hypervolume_of_a_2d_staircase():
    # Minimise both: boxes [1,4]x[3,4] + [2,4]x[2,3] + [3,4]x[1,2] = 3 + 2 + 1.
    points = [[1, 3], [2, 2], [3, 1]]
    assert hypervolume(points, [4, 4], ["min", "min"]) == pytest.approx(6.0)
    # The same staircase with accuracy (max) as the first objective, reference acc 0.
    acc_macs = [[0.9, 3], [0.8, 2], [0.7, 1]]
    expected = 0.7 * (2 - 1) + 0.8 * (3 - 2) + 0.9 * (4 - 3)  # best accuracy over each MACs interval
    assert hypervolume(acc_macs, [0.0, 4], ["max", "min"]) == pytest.approx(expected)


def test_hypervolume_of_three_unit_offset_cubes():
    # Boxes of volume 4 each, pairwise overlaps 2, triple overlap 1: 3*4 - 3*2 + 1 = 7.
    points = [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert hypervolume(points, [2, 2, 2], ["min"] * 3) == pytest.approx(7.0)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(d):
    rng = np.random.default_rng(10 + d)
    senses = (["max", "min", "min", "min"])[:d]
    reference = [0.0] + [10.0] * (d - 1)
    for _ in range(10):
        n = int(rng.integers(1, 8))
        points = np.column_stack([rng.uniform(0, 1, n)] + [rng.uniform(0, 12, n) for _ in range(d - 1)])
        points = np.round(points, 1)  # shared coordinates exercise equal slices
        assert hypervolume(points, reference, senses) == pytest.approx(union_of_boxes(points, reference, senses))


def test_hypervolume_edge_cases():
    senses = ["min", "min", "min"]
    assert hypervolume(np.empty((0, 3)), [1, 1, 1], senses) == 0.0
    assert hypervolume([[0.5, 0.5, 0.5]], [1, 1, 1], senses) == pytest.approx(0.125)
    # Worse than the reference, or level with it in one objective: nothing.
    assert hypervolume([[2, 0, 0], [0, 1, 0]], [1, 1, 1], senses) == 0.0
    # Duplicates and dominated points add nothing; NaN rows are skipped.
    base = hypervolume([[0.2, 0.5, 0.1], [0.5, 0.2, 0.3]], [1, 1, 1], senses)
    noisy = [[0.2, 0.5, 0.1], [0.5, 0.2, 0.3], [0.2, 0.5, 0.1], [0.6, 0.6, 0.6], [math.nan, 0, 0]]
    assert hypervolume(noisy, [1, 1, 1], senses) == pytest.approx(base)
    with pytest.raises(ValueError, match="NaN"):
        hypervolume([[0, 0]], [math.nan, 1], ["min", "min"])


# --- spread_along_front ---------------------------------------------------------------------------------


def line_front(n):
    df = pd.DataFrame({"name": [f"p{i}" for i in range(n)], "acc": np.linspace(0.5, 0.9, n), "macs": range(n)})
    return pareto_front(df, ["acc", "macs"])


def test_spread_takes_both_ends_and_even_steps():
    front = line_front(9)
    assert spread_along_front(front, 2)["name"].tolist() == ["p0", "p8"]
    assert spread_along_front(front, 3)["name"].tolist() == ["p0", "p4", "p8"]
    assert spread_along_front(front, 5)["name"].tolist() == ["p0", "p2", "p4", "p6", "p8"]


def test_spread_small_k_and_large_k():
    front = line_front(4)
    assert spread_along_front(front, 0).empty
    assert spread_along_front(front, 1)["name"].tolist() == ["p0"]
    assert spread_along_front(front, 10)["name"].tolist() == ["p0", "p1", "p2", "p3"]


def test_spread_follows_arc_length_not_row_count():
    # Many points crowd the cheap end; an even spread along the front still reaches the far end.
    macs = [1, 2, 3, 4, 5, 6, 7, 8, 100]
    df = pd.DataFrame({"acc": np.linspace(0.1, 0.9, 9), "macs": macs, "name": [f"m{m}" for m in macs]})
    picked = spread_along_front(pareto_front(df, ["acc", "macs"]), 3)["name"].tolist()
    assert picked[0] == "m1" and picked[-1] == "m100"
    # On a log scale the spread is different but still ends at both ends.
    logged = spread_along_front(pareto_front(df, ["acc", "macs"]), 3, log_scale=["macs"])["name"].tolist()
    assert logged[0] == "m1" and logged[-1] == "m100"


def test_spread_needs_objectives_when_frame_has_none():
    with pytest.raises(ValueError, match="objectives"):
        spread_along_front(pd.DataFrame({"acc": [0.1, 0.2]}), 1)
    plain = pd.DataFrame({"acc": [0.2, 0.1], "macs": [2, 1]})
    assert spread_along_front(plain, 1, objectives=["acc", "macs"])["macs"].tolist() == [1]
