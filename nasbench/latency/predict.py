"""Predicting end-to-end latency from a table, and checking the prediction on held-out archs.

Prediction = the table's layer sum, corrected by a ``Correction`` fitted on end-to-end measurements of
some sampled *calibration* archs: ``measured ~= scale * sum + per_layer_ms * layers + offset_ms``, fitted
by least squares on the relative error (the figures validation reports are relative). Validation samples
*held-out* archs from disjoint seeds, measures them together with the calibration archs in one randomized
interleaved session (so background load on a shared machine hits both sets alike), fits on the
calibration archs only, and scores the held-out predictions: Kendall tau, MAPE, share within +-10%.

A correction holds for the machine it was fitted on (``Machine``: host, device model, torch, threads);
``calibrate`` refits it on another machine, in the table's measuring settings, from a few archs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from nasbench.arch import Arch
from nasbench.counting import decompose
from nasbench.errors import NasbenchError
from nasbench.latency.measure import Context, Machine, Stats, measure_interleaved
from nasbench.latency.table import Correction, LatencyTable
from nasbench.spaces import SearchSpace

CALIBRATION_SEED = 0  # calibration archs use seeds CALIBRATION_SEED, +1, ...
HELD_OUT_SEED = 100_000  # held-out archs start here, far from the calibration seeds


def sample_archs(space: SearchSpace, resolutions: Sequence[int], seeds: Sequence[int]) -> list[Arch]:
    """One uniformly sampled arch per seed, at a resolution drawn from ``resolutions`` (a table's)."""
    out = []
    for seed in seeds:
        rng = random.Random(seed)
        resolution = rng.choice(sorted(resolutions))
        out.append(space.sample(rng).with_resolution(resolution))
    return out


def fit_correction(table_sums: Sequence[float], layers: Sequence[int], measured: Sequence[float]) -> Correction:
    """Least squares on relative error: minimise sum(((scale*s + per_layer*l + offset) / m - 1)^2)."""
    s, n, m = (np.asarray(v, dtype=float) for v in (table_sums, layers, measured))
    if len(m) < 3:
        raise NasbenchError(f"fitting a latency correction needs at least 3 measured archs, got {len(m)}")
    design = np.stack([s, n, np.ones_like(s)], axis=1)
    coef, *_ = np.linalg.lstsq(design / m[:, None], np.ones_like(m), rcond=None)
    fit = design @ coef
    return Correction(
        scale=float(coef[0]),
        per_layer_ms=float(coef[1]),
        offset_ms=float(coef[2]),
        archs=len(m),
        fit_mape=float(np.mean(np.abs(fit / m - 1))),
    )


def scores(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Kendall tau (rank agreement), MAPE and the share of predictions within +-10% of the measurement."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    err = np.abs(p / m - 1)
    tau = kendalltau(p, m)
    return {
        "n": len(m),
        "kendall_tau": round(float(tau.statistic), 4),
        "kendall_p": float(tau.pvalue),
        "mape": round(float(err.mean()), 4),
        "within_10pct": round(float((err <= 0.10).mean()), 4),
        "max_abs_pct_error": round(float(err.max()), 4),
    }


SETTINGS = ("device", "dtype", "batch", "memory_format", "threads", "clock")  # Context fields that are not the machine


def check_context(table: LatencyTable, ctx: Context, *, same_machine: bool = True) -> None:
    """Measuring against a table only makes sense in the context it was measured in; with
    ``same_machine=False`` (calibrating on another machine) only in the same measuring settings."""
    diffs = table.context.differences(ctx)
    if not same_machine:
        ignored = ("device_name", "torch") + (("threads",) if ctx.device == "cuda" else ())
        diffs = [d for d in diffs if d.split(":")[0] not in ignored]
    if diffs:
        raise NasbenchError(
            f"latency table {table.where} was measured in another context ({'; '.join(diffs)});"
            " measure with the same options, pass the table of this device with --table, or refit its"
            f" correction here with `nasbench latency calibrate {table.where}`"
        )


def check_validation_context(table: LatencyTable, ctx: Context) -> None:
    """Validation measures here against the table: in its context, or, once ``nasbench latency calibrate``
    has fitted its correction on this machine, in its measuring settings on this machine (the way out that
    ``check_context`` names must lead somewhere)."""
    calibrated_here = table.correction is not None and table.calibration_mismatch() is None
    check_context(table, ctx, same_machine=not calibrated_here)


def _rows(table: LatencyTable, archs: Sequence[Arch], stats: Sequence[Stats], role: str) -> list[dict[str, Any]]:
    return [
        {
            "role": role,
            "id": a.id,
            "arch": str(a),
            "layers": len(decompose(a, table.num_classes)),
            "table_sum_ms": round(table.table_sum(a), 5),
            "measured": st.to_dict(),
        }
        for a, st in zip(archs, stats, strict=True)
    ]


def calibrate(
    table: LatencyTable,
    space: SearchSpace,
    ctx: Context,
    *,
    n: int = 30,
    rounds: int = 30,
    per_round: int = 3,
    warmup: int = 5,
    seconds: float | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Measure ``n`` calibration archs end to end on this machine (``ctx``: the table's measuring settings,
    this machine's device), fit the correction and store it in ``table`` with this ``Machine``.

    ``seconds`` caps the measuring (``measure_interleaved``). Returns a report: the new correction, the
    one it replaces and how that one predicted these archs here, and one row per arch.
    """
    check_context(table, ctx, same_machine=False)
    archs = sample_archs(space, table.resolutions, range(CALIBRATION_SEED, CALIBRATION_SEED + n))
    for a in archs:
        table.table_sum(a)  # a missing config fails before minutes of measuring
    stats = measure_interleaved(
        archs,
        ctx,
        num_classes=table.num_classes,
        rounds=rounds,
        per_round=per_round,
        warmup=warmup,
        seconds=seconds,
        on_round=on_round,
    )
    rows = _rows(table, archs, stats, "calibration")
    previous = table.correction
    table.correction = replace(_fit_rows(rows), machine=Machine.here(ctx.device, ctx.threads))
    measured = [r["measured"]["median_ms"] for r in rows]
    for r in rows:
        r["predicted_ms"] = round(table.correction.apply(r["table_sum_ms"], r["layers"]), 5)
    return {
        "table": table.record(),
        "context": ctx.to_dict(),
        "rounds": stats[0].n // per_round,
        "correction": table.correction.to_json(),
        "previous": previous.to_json() if previous else None,
        "previous_scores": scores([previous.apply(r["table_sum_ms"], r["layers"]) for r in rows], measured)
        if previous
        else None,
        "archs": rows,
    }


def validate(
    table: LatencyTable,
    space: SearchSpace,
    ctx: Context,
    *,
    n: int = 50,
    calibrate_n: int = 30,
    seed: int = HELD_OUT_SEED,
    rounds: int = 30,
    per_round: int = 3,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Measure calibration and held-out archs in one interleaved session; fit on the former, score the latter.

    Returns a report with the refitted correction's scores (``scores``), the scores of the correction the
    table already had (``stored_scores``, when it had one), the machine's noise and one row per arch.
    """
    check_validation_context(table, ctx)
    calib, held = _validation_archs(table, space, n, calibrate_n, seed)
    load_before = os.getloadavg()
    stats = measure_interleaved(
        calib + held, ctx, num_classes=table.num_classes, rounds=rounds, per_round=per_round, on_round=on_round
    )
    rows = _rows(table, calib, stats[:calibrate_n], "calibration") + _rows(table, held, stats[calibrate_n:], "held-out")
    held_rows = rows[calibrate_n:]
    refit = replace(_fit_rows(rows[:calibrate_n]), machine=Machine.here(ctx.device, ctx.threads))
    for r in rows:
        r["predicted_ms"] = round(refit.apply(r["table_sum_ms"], r["layers"]), 5)
    measured = [r["measured"]["median_ms"] for r in held_rows]
    stored = table.correction
    return {
        "table": table.record(),
        "context": ctx.to_dict(),
        "protocol": {
            "held_out": n,
            "held_out_seeds": [seed, seed + n - 1],
            "calibration": calibrate_n,
            "calibration_seeds": [CALIBRATION_SEED, CALIBRATION_SEED + calibrate_n - 1],
            "rounds": rounds,
            "per_round": per_round,
            "statistic": "median over all rounds (rounds visit the archs in a fresh random order)",
        },
        "correction": refit.to_json(),
        "scores": scores([r["predicted_ms"] for r in held_rows], measured),
        "stored_scores": scores([stored.apply(r["table_sum_ms"], r["layers"]) for r in held_rows], measured)
        if stored
        else None,
        "noise": noise_summary(stats[calibrate_n:], load_before, os.getloadavg()),
        "archs": rows,
    }


def _validation_archs(
    table: LatencyTable, space: SearchSpace, n: int, calibrate_n: int, seed: int
) -> tuple[list[Arch], list[Arch]]:
    """The calibration archs and the held-out ones (disjoint seeds), all covered by the table."""
    if seed < CALIBRATION_SEED + calibrate_n:
        raise NasbenchError(f"--seed {seed} overlaps the calibration seeds 0..{calibrate_n - 1}; use a larger seed")
    calib = sample_archs(space, table.resolutions, range(CALIBRATION_SEED, CALIBRATION_SEED + calibrate_n))
    held = sample_archs(space, table.resolutions, range(seed, seed + n))
    if set(calib) & set(held):
        raise NasbenchError("a held-out arch equals a calibration arch; pick another --seed")
    for a in calib + held:
        table.table_sum(a)  # a missing config fails now, not after minutes of measuring
    return calib, held


def _fit_rows(rows: Sequence[dict[str, Any]]) -> Correction:
    return fit_correction(
        [r["table_sum_ms"] for r in rows], [r["layers"] for r in rows], [r["measured"]["median_ms"] for r in rows]
    )


def noise_summary(stats: Sequence[Stats], load_before: Sequence[float], load_after: Sequence[float]) -> dict:
    """How noisy the machine was: the spread of the end-to-end timings relative to their medians."""
    rel_iqr = np.array([s.rel_iqr for s in stats])
    rel_p10_p90 = np.array([(s.p90_ms - s.p10_ms) / s.median_ms for s in stats])
    return {
        "median_rel_iqr": round(float(np.median(rel_iqr)), 4),
        "max_rel_iqr": round(float(rel_iqr.max()), 4),
        "median_rel_p10_p90": round(float(np.median(rel_p10_p90)), 4),
        "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(load_after[0], 2),
        "cpus": os.cpu_count(),
    }
