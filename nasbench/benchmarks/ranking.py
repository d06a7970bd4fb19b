"""How well does a ranker order architectures? Pure numpy/scipy functions, no torch.

A ranker (a zero-cost proxy, a supernet's accuracy, FLOPs) is judged against a ground truth (trained
accuracies) by rank correlation. The overall correlation flatters any ranker that tracks model size, because
across a search space size alone already predicts accuracy well; what a searcher needs at a fixed cost budget is
the order *among networks of similar cost*. So the report also gives Kendall's tau within each FLOPs quintile and
their mean (``tau_within``), with bootstrap intervals so that two rankers' figures can be told apart.

Every ranker is "higher score = predicted better"; callers negate losses or FLOPs themselves.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

Stat = Callable[[np.ndarray, np.ndarray], float]

QUINTILES = 5  # the report's groups: tau_q1 .. tau_q5


def kendall_tau(truth: ArrayLike, score: ArrayLike) -> float:
    """Kendall's tau-b; nan (not an exception or a warning) when either input is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; nan says it already
        return float(stats.kendalltau(np.asarray(truth), np.asarray(score)).statistic)


def spearman(truth: ArrayLike, score: ArrayLike) -> float:
    """Spearman's rho; nan when either input is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(np.asarray(truth), np.asarray(score)).statistic)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values; ties go to the earlier index, so the answer is deterministic."""
    return np.argsort(-values, kind="stable")[:k]


def top_precision(truth: ArrayLike, score: ArrayLike, fraction: float = 0.05) -> float:
    """Of the top ``ceil(fraction * n)`` networks by score, the share that are also in the top as many by truth.

    This is what a searcher that keeps its ranker's best few actually gets, which a correlation over the whole
    space does not show."""
    truth, score = _pair(truth, score)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = math.ceil(fraction * len(truth))
    return len(np.intersect1d(_top(truth, k), _top(score, k))) / k


def quintiles(flops: ArrayLike, k: int = QUINTILES) -> np.ndarray:
    """Group index 0..k-1 of each network by FLOPs rank: equal-count groups (sizes differ by at most one),
    group 0 the cheapest, ties broken by position so that equal FLOPs never make groups uneven."""
    flops = np.asarray(flops)
    if len(flops) < k:
        raise ValueError(f"need at least k={k} networks to form {k} FLOPs groups, got {len(flops)}")
    groups = np.empty(len(flops), dtype=np.int64)
    groups[np.argsort(flops, kind="stable")] = np.arange(len(flops)) * k // len(flops)
    return groups


def stratified_sample(flops: ArrayLike, n: int, seed: int, k: int = QUINTILES) -> np.ndarray:
    """Sorted indices of ``n`` networks drawn without replacement, ``n // k`` from each FLOPs-quantile group
    (the remainder, one each, from groups the generator picks).

    Sampling a space uniformly gives few of its cheapest and dearest networks; equal counts per cost group keep
    every group's within-group tau measurable. Same seed, same sample."""
    groups = quintiles(flops, k)
    rng = np.random.default_rng(seed)
    per_group = np.full(k, n // k)
    per_group[rng.choice(k, size=n % k, replace=False)] += 1
    picked = []
    for g, m in enumerate(per_group):
        members = np.flatnonzero(groups == g)
        if m > len(members):
            raise ValueError(f"cannot draw {n} networks over {k} FLOPs groups: group {g} has only {len(members)}")
        picked.append(rng.choice(members, size=m, replace=False))
    return np.sort(np.concatenate(picked))


def _pair(truth: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    truth, score = np.asarray(truth, dtype=np.float64), np.asarray(score, dtype=np.float64)
    if truth.shape != score.shape or truth.ndim != 1:
        raise ValueError(f"truth and score must be 1-d and of one length, got shapes {truth.shape}, {score.shape}")
    return truth, score


# -- bootstrap ------------------------------------------------------------------------------------------------


def _kendall_resampled(truth: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Tau-b of every resample (rows of ``idx``) at once, exactly as scipy computes it on each.

    Tau-b is sum(sx * sy) / sqrt(sum(sx**2) * sum(sy**2)) over all ordered pairs, sx and sy the signs of the
    pairwise differences. A resample's sum over its pairs is c @ M @ c with c the counts of each original
    index in it, so 1000 resamples are three small matrix products instead of 1000 O(n log n) scipy calls."""
    n = len(truth)
    counts = np.zeros((len(idx), n))
    np.add.at(counts, (np.arange(len(idx))[:, None], idx), 1.0)
    sx = np.sign(truth[:, None] - truth[None, :])
    sy = np.sign(score[:, None] - score[None, :])

    def quad(m: np.ndarray) -> np.ndarray:
        return np.einsum("bi,bi->b", counts @ m, counts)

    with np.errstate(invalid="ignore", divide="ignore"):  # a constant resample has tau nan, as in scipy
        return quad(sx * sy) / np.sqrt(quad(np.abs(sx)) * quad(np.abs(sy)))


def _spearman_resampled(truth: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Spearman's rho of every resample at once: Pearson's r of the average ranks, row by row."""
    rx, ry = stats.rankdata(truth[idx], axis=1), stats.rankdata(score[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))


_VECTORISED: dict[Stat, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    kendall_tau: _kendall_resampled,
    spearman: _spearman_resampled,
}
_MAX_VECTORISED_N = 2000  # the pairwise sign matrices are n x n float64: 32 MB each at 2000


def _resampled(truth: np.ndarray, score: np.ndarray, stat: Stat, idx: np.ndarray) -> np.ndarray:
    fast = _VECTORISED.get(stat)
    if fast is not None and len(truth) <= _MAX_VECTORISED_N:
        return fast(truth, score, idx)
    return np.array([stat(truth[i], score[i]) for i in idx])


def bootstrap_interval(
    truth: ArrayLike,
    score: ArrayLike,
    stat: Stat,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(truth, score)`` over networks resampled with replacement.

    With ``groups``, networks are resampled within each group (keeping the group sizes) and the statistic is
    the mean of the per-group statistics: the interval of ``tau_within``. ``kendall_tau`` and ``spearman``
    are computed for all resamples at once; any other ``stat(truth, score) -> float`` is called per resample.
    Resamples whose statistic is nan (a constant resample) are left out of the percentiles."""
    truth, score = _pair(truth, score)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(truth), dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape != truth.shape:
        raise ValueError(f"groups must give one label per network ({len(truth)}), got shape {labels.shape}")
    per_group = []
    for g in np.unique(labels):
        members = np.flatnonzero(labels == g)
        idx = rng.integers(0, len(members), size=(n_boot, len(members)))
        per_group.append(_resampled(truth[members], score[members], stat, idx))
    boot = np.mean(per_group, axis=0)
    tail = (1 - level) / 2
    lo, hi = np.nanquantile(boot, [tail, 1 - tail]) if np.isfinite(boot).any() else (np.nan, np.nan)
    return float(lo), float(hi)


# -- the report -----------------------------------------------------------------------------------------------


def within_group(truth: np.ndarray, score: np.ndarray, groups: np.ndarray, stat: Stat = kendall_tau) -> list[float]:
    """``stat`` within each group, in group order."""
    return [stat(truth[groups == g], score[groups == g]) for g in np.unique(groups)]


def _report_row(name: str, truth: np.ndarray, score: np.ndarray, groups: np.ndarray, n_boot: int, seed: int):
    per_quintile = within_group(truth, score, groups)
    tau_lo, tau_hi = bootstrap_interval(truth, score, kendall_tau, n_boot=n_boot, seed=seed)
    within_lo, within_hi = bootstrap_interval(truth, score, kendall_tau, n_boot=n_boot, seed=seed, groups=groups)
    return {
        "ranker": name,
        "n": len(truth),
        "tau": kendall_tau(truth, score),
        "tau_lo": tau_lo,
        "tau_hi": tau_hi,
        "spearman": spearman(truth, score),
        "top5": top_precision(truth, score, 0.05),
        **{f"tau_q{q + 1}": t for q, t in enumerate(per_quintile)},
        "tau_within": float(np.mean(per_quintile)),
        "tau_within_lo": within_lo,
        "tau_within_hi": within_hi,
    }


def rank_report(
    truth: ArrayLike,
    rankers: Mapping[str, ArrayLike],
    flops: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per ranker: overall tau with its bootstrap interval, Spearman, top-5% precision, tau within each
    FLOPs quintile (q1 the cheapest) and their mean ``tau_within`` with its interval.

    Every ranker is bootstrapped with the same seed, hence on the same resamples, so differences between rows
    are not resampling noise of their own."""
    truth = np.asarray(truth, dtype=np.float64)
    flops = np.asarray(flops, dtype=np.float64)
    if flops.shape != truth.shape:
        raise ValueError(f"flops must give one value per network ({len(truth)}), got shape {flops.shape}")
    groups = quintiles(flops, QUINTILES)
    rows = []
    for name, score in rankers.items():
        truth_, score_ = _pair(truth, score)
        rows.append(_report_row(name, truth_, score_, groups, n_boot, seed))
    return pd.DataFrame(rows)


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def _interval(row: pd.Series, point: str) -> str:
    return f"{_cell(row[point])} [{_cell(row[point + '_lo'])}, {_cell(row[point + '_hi'])}]"


def format_report(df: pd.DataFrame) -> str:
    """The report as a compact markdown table, intervals folded into their point estimate as ``x [lo, hi]``.

    Written by hand rather than with ``DataFrame.to_markdown`` because that needs ``tabulate``, which is not
    one of the project's dependencies, for a dozen lines' worth of formatting."""
    quintile_cols = [c for c in df.columns if c.startswith("tau_q")]
    header: Sequence[str] = ["ranker", "n", "tau [95% CI]", "spearman", "top5", *quintile_cols, "tau_within [95% CI]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in df.iterrows():
        cells = [str(row["ranker"]), str(row["n"]), _interval(row, "tau"), _cell(row["spearman"]),
                 _cell(row["top5"]), *(_cell(row[c]) for c in quintile_cols), _interval(row, "tau_within")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
