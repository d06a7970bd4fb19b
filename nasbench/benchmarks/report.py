"""The rank report: does a trained supernet order a benchmark space's networks better than the free baselines?

For a seeded sample of the benchmark's networks, stratified over FLOPs quintiles, it scores each network with
every ranker (the supernet's accuracy and its loss, FLOPs alone, parameters alone, zero-cost proxies computed
here on the untrained network) and judges each ranker against the table's true accuracy
(``ranking.rank_report``: Kendall tau with a bootstrap interval, Spearman, top-5% precision, tau within each
FLOPs quintile and their mean). The benchmark's own noise sets the ceiling: one of its training runs ranked
against the mean of its other runs (``table_run1``).

Each network's scores are appended to ``scores.csv`` in the output folder as they are computed, so a killed
report continues where it stopped and loses nothing. The supernet's subnets are evaluated with its training
record's settings (``TrainingRecord.eval_settings``), those a search of it uses; the folder stores them with
the supernet's identity (``settings.json``), and scores made with other settings are refused, not mixed.
"""

from __future__ import annotations

import dataclasses
import json
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
from nasbench.diffing import first_difference
from nasbench.errors import NasbenchError
from nasbench.search.ranker import PROXY_BATCH  # the batch a search's NASWOT sees: the same scores
from nasbench.training.evaluate import EvalSettings, evaluate

SCORES = "scores.csv"
SETTINGS = "settings.json"
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
    settings: EvalSettings,
    out: Path,
    *,
    proxies: Sequence[str] = ("synflow", "naswot"),
    seed: int = 0,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> pd.DataFrame:
    """Each network's scores, one row per key, resumed from and appended to ``out/scores.csv``."""
    path = out / SCORES
    done = read_scores(path)
    todo = [k for k in keys if k not in done.index]
    net, train, val = trained.supernet, trained.train, trained.val
    batch = next(train.eval_batches(PROXY_BATCH, 32))
    start = time.perf_counter()
    for i, key in enumerate(todo, 1):
        arch = truth.arch(key)
        result = evaluate(net, arch, train, val, **settings.evaluate_options())
        row: dict[str, Any] = {"key": key, "supernet_acc": result.top1, "supernet_loss": result.loss}
        for name in proxies:
            torch.manual_seed(seed)  # the same initial weights for a network, whichever report scores it
            row[name] = PROXIES[name](build(arch, num_classes=10), *batch)
        _append(path, row)
        if on_progress is not None:
            elapsed = time.perf_counter() - start
            on_progress(len(keys) - len(todo) + i, len(keys), elapsed / i * (len(todo) - i))
    scores = read_scores(path)
    missing = [k for k in keys if k not in scores.index]
    if missing:
        raise NasbenchError(f"{path} lacks scores for {len(missing)} networks, e.g. {missing[0]}; delete it and rerun")
    return scores.loc[list(keys)]


def with_ranker_score(
    truth: GroundTruth,
    scores: pd.DataFrame,
    trained: Any,
    settings: EvalSettings,
    out: Path,
    *,
    seed: int = 0,
    calibration: int | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> tuple[pd.DataFrame, Any]:
    """``scores`` with a ``score`` column: the ranker a search chooses by (``nasbench.search.ranker``),
    calibrated exactly as a search with this seed calibrates it (the same seeded architectures of the space,
    scored into ``out/calibration``, resumable), then applied to each network's supernet loss and NASWOT."""
    from nasbench.search.ranker import CALIBRATION, calibration_archs

    keys = [truth.to_key(a) for a in calibration_archs(truth.space, calibration or CALIBRATION, seed)]
    folder = out / "calibration"
    folder.mkdir(exist_ok=True)
    calibration = score_networks(
        truth, keys, trained, settings, folder, proxies=("naswot",), seed=seed, on_progress=on_progress
    )
    return apply_ranker(scores, calibration, seed)


def apply_ranker(scores: pd.DataFrame, calibration: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    """``scores`` with a ``score`` column: the ranker fitted on ``calibration``'s supernet loss and NASWOT
    (``Ranker.fit``), applied to each row's; and the ranker."""
    from nasbench.search.ranker import Ranker

    ranker = Ranker.fit(calibration["supernet_loss"].tolist(), calibration["naswot"].tolist(), seed)
    score = [ranker.score(loss, n) for loss, n in zip(scores["supernet_loss"], scores["naswot"], strict=True)]
    return scores.assign(score=score), ranker


def read_scores(path: Path) -> pd.DataFrame:
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


def claim_folder(out: Path, settings: EvalSettings, identity: dict[str, Any]) -> None:
    """Store the evaluation settings and the supernet's identity in a report folder, or refuse one whose
    scores were made with others (one line naming the first difference): a resumed report never mixes."""
    path, stamp = out / SETTINGS, {"settings": dataclasses.asdict(settings), "supernet": identity}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise NasbenchError(f"{path} cannot be read ({e}); give another --out") from None
        difference = first_difference(stored, json.loads(json.dumps(stamp)))
        if difference:
            raise NasbenchError(
                f"{out} holds scores made with other settings ({difference}); give another --out or delete it"
            )
        return
    if (out / SCORES).is_file():
        raise NasbenchError(f"{out} holds scores of unknown settings (no {SETTINGS}); give another --out")
    atomic.write_json(path, stamp)


def open_trained(supernet_dir: Path, data: str | None = None, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """A finished ``train-supernet`` folder read back by its owner (``train_supernet`` with ``resume``, which
    trains nothing more once the run is complete): ``(space, TrainResult, info)``, where ``info`` holds the
    evaluation ``settings`` (an ``EvalSettings``, the record's), ``steps``, ``budget``, ``config`` and the
    supernet's ``identity``. ``data`` overrides the dataset path the run recorded (the same data elsewhere)."""
    from nasbench.budget import parse_budget
    from nasbench.data import load_dataset
    from nasbench.spaces import load_space
    from nasbench.training import train_supernet
    from nasbench.training.rundir import TrainingRecord
    from nasbench.training.state import load_checkpoint

    record = TrainingRecord.read(supernet_dir, what="a train-supernet --out")
    identity, origin = record.identity, record.origin
    checkpoint = Path(supernet_dir) / "checkpoint.pt"
    total = record.total_steps
    done = int(load_checkpoint(checkpoint)["step"]) if checkpoint.is_file() else 0
    if total is None or done < total:  # resuming would train: a report never does
        raise NasbenchError(
            f"{supernet_dir} has trained {done} of {total or '?'} steps; finish it with train-supernet --resume first"
        )
    space = load_space(origin.get("space") or identity["space"]["name"])
    config = record.config
    dataset = load_dataset(data or origin.get("data") or identity["data"]["name"])
    trained = train_supernet(
        space, dataset, parse_budget(identity["budget"]), supernet_dir, config=config,
        seed=identity["seed"], device=device, resume=True, progress=False,
    )  # fmt: skip
    info = {"settings": record.eval_settings(), "steps": trained.steps, "budget": record.budget, "config": config}
    return space, trained, {**info, "identity": identity}
