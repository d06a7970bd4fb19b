"""Pareto fronts and hypervolume: pure functions over numbers and data frames (numpy and pandas, no torch).

Every function takes the *sense* of each objective, ``"max"`` (accuracy) or ``"min"`` (MACs, latency), and
turns it into minimisation internally by negating the ``"max"`` columns, so the algorithms are written once.

Conventions, the same everywhere:

* **dominance** -- ``a`` dominates ``b`` when ``a`` is at least as good in every objective and strictly
  better in at least one. A point is on the front when no other point dominates it. Equal points do not
  dominate each other, so duplicates are either all on the front or all off it (the result never depends
  on row order);
* **missing values** -- a row with a NaN objective (a failed evaluation) is never on the front, dominates
  nothing and adds no hypervolume;
* **hypervolume** -- the measure of the region dominated by the points and bounded by the reference point;
  a point that is not strictly better than the reference in every objective adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nasbench.objectives.table import FIELD_SENSES, OBJECTIVES

SENSES = ("max", "min")
# Senses of the objectives nasbench records, by objective name (the objectives table's) and by record field,
# so callers may name objectives without spelling them out.
KNOWN_SENSES = {**{name: o.direction for name, o in OBJECTIVES.items()}, **FIELD_SENSES}


def _to_min(values: np.ndarray | Sequence, senses: Sequence[str]) -> np.ndarray:
    """Values as a float (n, d) array in which smaller is better in every column."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, len(senses)) if arr.size else arr.reshape(0, len(senses))
    if arr.ndim != 2 or arr.shape[1] != len(senses):
        raise ValueError(f"expected an (n, {len(senses)}) array of objective values, got shape {arr.shape}")
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise ValueError(f"objective sense {bad[0]!r} is not 'max' or 'min'")
    sign = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    return arr * sign


def pareto_mask(values: np.ndarray | Sequence, senses: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n x d) that no other row dominates.

    Rows are visited in lexicographic order, so every row's dominators come before it (a dominator is
    lexicographically smaller, exactly, without the rounding a sum of mixed-scale objectives would suffer),
    and each row is checked only against the front found so far: domination is transitive, so a row that
    any earlier row dominates is also dominated by a front member. Cost O(n log n + n * front size).
    """
    pts = _to_min(values, senses)
    mask = np.zeros(len(pts), dtype=bool)
    valid = np.flatnonzero(~np.isnan(pts).any(axis=1))
    order = valid[np.lexsort(pts[valid].T[::-1])]
    front = np.empty_like(pts)
    size = 0
    for i in order:
        members = front[:size]
        if size and ((members <= pts[i]).all(axis=1) & (members < pts[i]).any(axis=1)).any():
            continue
        front[size] = pts[i]
        size += 1
        mask[i] = True
    return mask


def resolve_objectives(objectives: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """``{"acc": "max", "macs": "min"}`` from a mapping of column to sense, or from known column names."""
    if isinstance(objectives, str):
        objectives = [objectives]
    if isinstance(objectives, Mapping):
        resolved = dict(objectives)
    else:
        unknown = [o for o in objectives if o not in KNOWN_SENSES]
        if unknown:
            raise ValueError(f"objective {unknown[0]!r} has no known sense; pass a mapping column -> 'max'/'min'")
        resolved = {o: KNOWN_SENSES[o] for o in objectives}
    if not resolved:
        raise ValueError("at least one objective is needed")
    for col, sense in resolved.items():
        if sense not in SENSES:
            raise ValueError(f"objective {col!r} has sense {sense!r}; expected 'max' or 'min'")
    return resolved


def sort_front(df: pd.DataFrame, objectives: Mapping[str, str] | Sequence[str]) -> pd.DataFrame:
    """Rows sorted by the first cost (``"min"``) objective, cheapest first; ties by the other objectives,
    best first, then by the original order (a stable sort), so the order is deterministic."""
    obj = resolve_objectives(objectives)
    cols = list(obj)
    costs = [c for c in cols if obj[c] == "min"]
    first = costs[0] if costs else cols[0]
    keys = [first] + [c for c in cols if c != first]
    return df.sort_values(keys, ascending=[obj[c] == "min" for c in keys], kind="stable")


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str] | Sequence[str]) -> pd.DataFrame:
    """The rows of ``df`` on the Pareto front of ``objectives`` (column -> sense, or known column names),
    sorted by the first cost objective. The objectives are kept in ``front.attrs["objectives"]``."""
    obj = resolve_objectives(objectives)
    missing = [c for c in obj if c not in df.columns]
    if missing:
        raise ValueError(f"objective column {missing[0]!r} is not in the frame (columns: {', '.join(df.columns)})")
    values = df[list(obj)].to_numpy(dtype=float, na_value=np.nan)
    front = sort_front(df[pareto_mask(values, list(obj.values()))], obj)
    front.attrs["objectives"] = obj
    return front


def hypervolume(points: np.ndarray | Sequence, reference: Sequence[float], senses: Sequence[str]) -> float:
    """Exact hypervolume of ``points`` (n x d) with respect to ``reference``.

    Algorithm: "hypervolume by slicing objectives" (While, Hingston, Barone and Huband, IEEE TEC 2006).
    Sort the points along the last objective; between two consecutive distinct values of it, the dominated
    region's cross-section is the (d-1)-dimensional dominated region of the points seen so far, so the
    volume is the sum of (cross-section measure) x (slice thickness), recursing down to d = 2, where the
    region is a staircase whose area is summed exactly. Cost O(n^(d-1) log n): instant for the 2 and 3
    objectives nasbench uses, usable for a few more on small fronts.
    """
    ref = _to_min(np.asarray(reference, dtype=float).reshape(1, -1), senses)[0]
    pts = _to_min(points, senses)
    if np.isnan(ref).any():
        raise ValueError("the reference point has a NaN coordinate")
    pts = pts[~np.isnan(pts).any(axis=1)]
    pts = pts[(pts < ref).all(axis=1)]
    pts = pts[pareto_mask(pts, ["min"] * len(ref))]  # dominated points add nothing; dropping them is speed
    return float(_hv_min(pts, ref)) if len(pts) else 0.0


def _hv_min(pts: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of minimisation points that are all strictly better than ``ref``."""
    d = pts.shape[1]
    if d == 1:
        return float(ref[0] - pts[:, 0].min())
    if d == 2:
        return _staircase_area(pts, ref)
    order = np.argsort(pts[:, -1], kind="stable")
    z = pts[order, -1]
    bounds = np.append(z, ref[-1])
    volume = 0.0
    for i in range(len(z)):
        thickness = bounds[i + 1] - bounds[i]
        if thickness > 0:
            volume += _hv_min(pts[order[: i + 1], :-1], ref[:-1]) * thickness
    return volume


def _staircase_area(pts: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by 2-D minimisation points: sweep x upward, keep the best y seen so far."""
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    x, y = pts[order, 0], pts[order, 1]
    best_y = np.minimum.accumulate(y)
    widths = np.diff(np.append(x, ref[0]))
    return float(np.sum(widths * (ref[1] - best_y)))


def spread_along_front(
    front: pd.DataFrame,
    k: int,
    objectives: Mapping[str, str] | Sequence[str] | None = None,
    log_scale: Sequence[str] = (),
) -> pd.DataFrame:
    """``k`` rows spread evenly along ``front`` (e.g. the architectures to retrain), in front order.

    The front is sorted by its first cost objective and each objective is scaled to [0, 1] (after a log10
    for the columns in ``log_scale``, e.g. MACs spanning decades); the arc length along that polyline is
    split into ``k - 1`` equal steps and each step's point takes the nearest row not yet taken. Both ends
    of the front are always taken when ``k >= 2``; all rows are returned when ``k >= len(front)``.
    ``objectives`` defaults to ``front.attrs["objectives"]``, which ``pareto_front`` sets.
    """
    if objectives is None:
        objectives = front.attrs.get("objectives")
        if objectives is None:
            raise ValueError("pass the objectives: this frame was not made by pareto_front")
    obj = resolve_objectives(objectives)
    ordered = sort_front(front, obj)
    if k <= 0:
        return ordered.iloc[:0]
    if k >= len(ordered):
        return ordered
    coords = ordered[list(obj)].to_numpy(dtype=float, na_value=np.nan)
    for j, col in enumerate(obj):
        if col in log_scale:
            coords[:, j] = np.log10(np.maximum(coords[:, j], np.finfo(float).tiny))
    span = np.nanmax(coords, axis=0) - np.nanmin(coords, axis=0)
    scaled = (coords - np.nanmin(coords, axis=0)) / np.where(span > 0, span, 1.0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(scaled, axis=0), axis=1))])
    taken: list[int] = []
    for target in np.linspace(0.0, arc[-1], k):
        distance = np.abs(arc - target)
        distance[taken] = np.inf
        taken.append(int(np.argmin(distance)))
    return ordered.iloc[sorted(taken)]
