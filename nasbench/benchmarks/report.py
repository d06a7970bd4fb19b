"""The rank report: does a trained supernet order a benchmark space's networks better than the free baselines?

For a seeded sample of the benchmark's networks, stratified over FLOPs quintiles, it scores each network with
every ranker (the supernet's accuracy and its loss, FLOPs alone, parameters alone, zero-cost proxies computed
here on the untrained network) and judges each ranker against the table's true accuracy
(``ranking.rank_report``: Kendall tau with a bootstrap interval, Spearman, top-5% precision, tau within each
FLOPs quintile and their mean). The benchmark's own noise sets the ceiling: one of its training runs ranked
against the mean of its other runs (``table_run1``).

Each network's scores are appended to ``scores.csv`` in the output folder as they are computed, so a killed
report continues where it stopped and loses nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nasbench import atomic
from nasbench.benchmarks.proxies import PROXIES
from nasbench.benchmarks.ranking import format_report, rank_report, stratified_sample
from nasbench.benchmarks.truth import GroundTruth, benchmark_for
from nasbench.build import build
from nasbench.errors import NasbenchError
from nasbench.search.ranker import PROXY_BATCH  # the batch a search's NASWOT sees: the same scores
from nasbench.training.evaluate import evaluate

SCORES = "scores.csv"
REPORT_CSV, REPORT_MD = "report.csv", "report.md"


def sample_keys(truth: GroundTruth, n: int, seed: int) -> list[str]:
    """``n`` of the table's networks (all when ``n`` >= its size), seeded and spread over FLOPs quintiles."""
    table = truth.table
    if n >= len(table):
        return list(table.index)
    return list(table.index[stratified_sample(table["flops"].to_numpy(), n, seed)])


def subset(data: Any, images: int | None) -> Any:
    """The first ``images`` of a split (the validation split is already a seeded random draw)."""
    return data.head(images)


def score_networks(
    truth: GroundTruth,
    keys: Sequence[str],
    trained: Any,
    settings: dict[str, Any],
    out: Path,
    *,
    proxies: Sequence[str] = ("synflow", "naswot"),
    seed: int = 0,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> pd.DataFrame:
    """Each network's scores, one row per key, resumed from and appended to ``out/scores.csv``."""
    path = out / SCORES
    done = _read_scores(path)
    todo = [k for k in keys if k not in done.index]
    net, train, val = trained.supernet, trained.train, trained.val
    batch = next(train.eval_batches(PROXY_BATCH, 32))
    start = time.perf_counter()
    for i, key in enumerate(todo, 1):
        arch = truth.arch(key)
        result = evaluate(net, arch, train, val, seed=seed, **settings)
        row: dict[str, Any] = {"key": key, "supernet_acc": result.top1, "supernet_loss": result.loss}
        for name in proxies:
            torch.manual_seed(seed)  # the same initial weights for a network, whichever report scores it
            row[name] = PROXIES[name](build(arch, num_classes=10), *batch)
        _append(path, row)
        if on_progress is not None:
            elapsed = time.perf_counter() - start
            on_progress(len(keys) - len(todo) + i, len(keys), elapsed / i * (len(todo) - i))
    scores = _read_scores(path)
    missing = [k for k in keys if k not in scores.index]
    if missing:
        raise NasbenchError(f"{path} lacks scores for {len(missing)} networks, e.g. {missing[0]}; delete it and rerun")
    return scores.loc[list(keys)]


def with_ranker_score(
    truth: GroundTruth,
    scores: pd.DataFrame,
    trained: Any,
    settings: dict[str, Any],
    out: Path,
    *,
    seed: int = 0,
    calibration: int | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> tuple[pd.DataFrame, Any]:
    """``scores`` with a ``score`` column: the ranker a search chooses by (``nasbench.search.ranker``),
    calibrated exactly as a search with this seed calibrates it (the same seeded architectures of the space,
    scored into ``out/calibration``, resumable), then applied to each network's supernet loss and NASWOT."""
    from nasbench.search.ranker import CALIBRATION, Ranker, calibration_archs

    keys = [truth.to_key(a) for a in calibration_archs(truth.space, calibration or CALIBRATION, seed)]
    folder = out / "calibration"
    folder.mkdir(exist_ok=True)
    calibration = score_networks(
        truth, keys, trained, settings, folder, proxies=("naswot",), seed=seed, on_progress=on_progress
    )
    ranker = Ranker.fit(calibration["supernet_loss"].tolist(), calibration["naswot"].tolist(), seed)
    score = [ranker.score(loss, n) for loss, n in zip(scores["supernet_loss"], scores["naswot"], strict=True)]
    return scores.assign(score=score), ranker


def _read_scores(path: Path) -> pd.DataFrame:
    """The complete rows of a scores file (a row cut short by a kill is dropped, and recomputed)."""
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(index=pd.Index([], name="key"))
    frame = pd.read_csv(path, dtype={"key": str}, on_bad_lines="skip")
    return frame.dropna().drop_duplicates("key", keep="last").set_index("key")


def _append(path: Path, row: dict[str, Any]) -> None:
    """One row, appended and synced; a header first in a new file, a newline first after a torn tail."""
    lead = ""
    if not path.is_file() or path.stat().st_size == 0:
        lead = ",".join(row) + "\n"
    elif not path.read_bytes().endswith(b"\n"):
        lead = "\n"
    with path.open("a") as f:
        f.write(lead + ",".join(str(v) for v in row.values()) + "\n")
        f.flush()
        os.fsync(f.fileno())


def report_frame(truth: GroundTruth, scores: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The rank report of every ranker in ``scores`` (plus FLOPs, params and the table's own noise)."""
    rows = truth.table.loc[scores.index]
    flops = rows["flops"].to_numpy(dtype=float)
    rankers: dict[str, np.ndarray] = {}
    for column in scores.columns:
        values = scores[column].to_numpy(dtype=float)
        rankers[column] = -values if column.endswith("loss") else values  # higher = predicted better
    rankers["flops"] = flops
    rankers["params"] = rows["params"].to_numpy(dtype=float)
    report = rank_report(rows["acc"].to_numpy(dtype=float), rankers, flops, n_boot=n_boot, seed=seed)
    runs = np.array(rows["acc_runs"].tolist(), dtype=float)
    ceiling = rank_report(runs[:, 1:].mean(axis=1), {"table_run1": runs[:, 0]}, flops, n_boot=n_boot, seed=seed)
    return pd.concat([report, ceiling], ignore_index=True)


def trained_truth(space: Any) -> GroundTruth:
    truth = benchmark_for(space)
    if truth is None:
        raise NasbenchError(
            f"space {space.name} has no ground-truth table; the rank report needs a benchmark space (nas-bench-macro)"
        )
    return truth


def write_report(out: Path, report: pd.DataFrame, header: Sequence[str]) -> str:
    """``report.csv`` and ``report.md`` in ``out``; returns the markdown."""
    text = "\n".join([*header, "", format_report(report), ""])
    atomic.write_text(out / REPORT_CSV, report.to_csv(index=False))
    atomic.write_text(out / REPORT_MD, text)
    return text


def open_trained(supernet_dir: Path, data: str | None = None, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """A finished ``train-supernet`` folder read back by its owner (``train_supernet`` with ``resume``, which
    trains nothing more once the run is complete): ``(space, TrainResult, evaluation settings)``. ``data``
    overrides the dataset path the run recorded (the same data under another path)."""
    from nasbench.budget import parse_budget
    from nasbench.data import load_dataset
    from nasbench.spaces import load_space
    from nasbench.training import TrainConfig, train_supernet
    from nasbench.training.rundir import existing_record
    from nasbench.training.state import load_checkpoint

    record = existing_record(supernet_dir)
    if record is None:
        raise NasbenchError(
            f"{supernet_dir} holds no supernet training (no train_config.json); give a train-supernet --out"
        )
    identity, origin = record["identity"], record.get("origin", {})
    checkpoint = Path(supernet_dir) / "checkpoint.pt"
    total = record.get("plan", {}).get("total_steps")
    done = int(load_checkpoint(checkpoint)["step"]) if checkpoint.is_file() else 0
    if total is None or done < total:  # resuming would train: a report never does
        raise NasbenchError(
            f"{supernet_dir} has trained {done} of {total or '?'} steps; finish it with train-supernet --resume first"
        )
    space = load_space(origin.get("space") or identity["space"]["name"])
    config = TrainConfig.from_dict(identity["config"])
    dataset = load_dataset(data or origin.get("data") or identity["data"]["name"])
    trained = train_supernet(
        space, dataset, parse_budget(identity["budget"]), supernet_dir, config=config,
        seed=identity["seed"], device=device, resume=True, progress=False,
    )  # fmt: skip
    settings = {
        "bn_batches": config.bn_batches,
        "batch_size": config.batch_size,
        "channels_last": config.channels_last,
        "bf16": config.bf16,
    }
    return (
        space,
        trained,
        {"settings": settings, "steps": trained.steps, "budget": identity["budget"], "config": config},
    )
