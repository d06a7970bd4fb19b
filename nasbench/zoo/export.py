"""``export_arch``: one architecture of a search run to a zoo entry, written atomically.

The weights are the retrained ones when ``RUN/retrain/<arch_id>/weights.safetensors`` exists, else the
supernet's, inherited through ``Supernet.export`` and with their batch-norm statistics recalibrated exactly
as the search's evaluation did (same seeded batches), so the exported net scores what the search measured.
The entry is built in a hidden folder next to the target and renamed into place at the end: a failure at
any point leaves no entry, and the old one stays when ``force`` replaces it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import nasbench
import nasbench.zoo.zoo as z
from nasbench.arch import Arch
from nasbench.atomic import write_bytes, write_json, write_text
from nasbench.build import Net, build
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.runs import RunDir
from nasbench.runs.records import Status
from nasbench.zoo.onnx_export import export_onnx

RESULT_FILE = "result.json"  # nasbench.retrain writes it last: a retraining without it has not finished
TEST_ACC_KEYS = ("test_top1", "test_acc")  # where a retraining's result.json keeps its test accuracy


def export_arch(
    run: str | os.PathLike,
    arch_id: str,
    name: str,
    *,
    zoo: str | os.PathLike = z.DEFAULT_ZOO,
    onnx: bool = False,
    force: bool = False,
    device: str | None = None,
) -> z.ZooEntry:
    """Write ``ZOO/NAME/`` (arch.json, weights, card; with ``onnx`` model.onnx) for architecture ``arch_id``
    (or a unique prefix of it) of search run ``run``; returns the entry as ``read_entry`` reads it.
    Inherited weights have their BN statistics recalibrated on ``device`` (None: CUDA when there is one)."""
    from nasbench.training.state import resolve_device

    dev = resolve_device(device)
    target = z.entry_path(name, zoo)
    _refuse_existing(target, force)
    rundir = RunDir.open(run)
    arch, rows = find_arch(rundir, arch_id)
    from nasbench.data import load_dataset
    from nasbench.spaces import load_space

    config = rundir.config
    if not config.get("space") or not config.get("data"):
        raise NasbenchError(f"run {rundir.run_id} does not record its space and data, so it cannot be exported")
    space, dataset = load_space(config["space"]), load_dataset(config["data"])
    space.check(arch)
    num_classes = dataset.num_classes
    retrained = rundir.retrain_dir / arch.id
    if (retrained / z.WEIGHTS_FILE).is_file() and (retrained / RESULT_FILE).is_file():
        model, weights, accuracy, extra = _retrained_model(retrained, arch, num_classes)
    else:
        model, weights, accuracy, extra = _inherited_model(rundir, arch, space, dataset, dev)
        if retrained.is_dir():
            weights["note"] += f"; its retraining in {retrained} has not finished"
    card = _card(name, rundir, arch, rows, space.name, num_classes, dataset, weights, accuracy)
    card.update(extra)
    if Path(zoo).exists() and not Path(zoo).is_dir():
        raise NasbenchError(f"--zoo {zoo} is a file, not a folder")
    Path(zoo).mkdir(parents=True, exist_ok=True)
    tmp = Path(zoo) / f".{name}.tmp-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        _write_entry(tmp, model, arch, num_classes, card, onnx)
        _commit(tmp, target, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return z.read_entry(name, zoo)


def _refuse_existing(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise NasbenchError(f"zoo entry {target} already exists; choose another --name or pass --force to replace it")


def find_arch(rundir: RunDir, arch_id: str) -> tuple[Arch, pd.DataFrame]:
    """The architecture ``arch_id`` (or a unique prefix) names in the run, and its records (ok ones first)."""
    records = rundir.records()
    ids = records["arch_id"].astype(str)
    match = records[ids == arch_id] if (ids == arch_id).any() else records[ids.str.startswith(arch_id or "\0")]
    if match["arch_id"].nunique() != 1:
        ok = records[records.status == Status.OK].sort_values("acc", ascending=False)
        few = ", ".join(list(dict.fromkeys(ok["arch_id"].tolist() or ids.tolist()))[:5]) or "(none recorded yet)"
        what = "is ambiguous" if len(match) else "is not"
        raise NasbenchError(
            f"arch id {arch_id!r} {what} in run {rundir.run_id}; e.g. {few} (see nasbench pareto {rundir.path})"
        )
    rows = match.assign(_ok=match.status == Status.OK).sort_values(["_ok", "acc"], ascending=False).drop(columns="_ok")
    return Arch.parse(rows.iloc[0]["arch"]), rows


# --- weights ------------------------------------------------------------------------------------------


def _retrained_model(folder: Path, arch: Arch, num_classes: int):
    """The finished retraining's weights (``nasbench.retrain`` writes ``result.json`` last)."""
    from safetensors.torch import load_file

    try:
        result = json.loads((folder / RESULT_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NasbenchError(f"{folder / RESULT_FILE} cannot be read as JSON ({e})") from None
    if result.get("arch_id", arch.id) != arch.id or result.get("num_classes", num_classes) != num_classes:
        raise NasbenchError(f"{folder / RESULT_FILE} is not the retraining of {arch.id} with {num_classes} classes")
    model = build(arch, num_classes)
    z.load_weights(model, load_file(folder / z.WEIGHTS_FILE), folder / z.WEIGHTS_FILE)
    test = next((result[k] for k in TEST_ACC_KEYS if isinstance(result.get(k), (int, float))), None)
    how = ", ".join(
        f"{label} {result[key]}" for label, key in (("epochs", "epochs"), ("budget", "budget")) if result.get(key)
    )
    weights = {
        "source": "retrained",
        "note": f"trained from scratch{f' ({how})' if how else ''}, {result.get('weights', 'final')} weights",
        "from": str(folder / z.WEIGHTS_FILE),
    }
    return model.eval(), weights, {"test": test}, {"retrain": result}


def _inherited_model(rundir: RunDir, arch: Arch, space, dataset, device: torch.device = torch.device("cpu")):
    """The supernet's weights for ``arch``, BN recalibrated as the search's evaluation did (on ``device``,
    in the training's layout and autocast), returned on the CPU."""
    from nasbench.data import search_data
    from nasbench.supernet import Supernet
    from nasbench.training import evaluate_model
    from nasbench.training import rundir as train_rundir
    from nasbench.training.state import load_checkpoint

    folder = rundir.supernet_dir
    record = train_rundir.TrainingRecord.find(folder)
    if record is None or not (folder / train_rundir.CHECKPOINT_FILE).is_file():
        raise NasbenchError(
            f"run {rundir.run_id} has no trained supernet in {folder} and no retrained weights for {arch.id}; "
            f"retrain it first (nasbench retrain {rundir.path})"
        )
    state = load_checkpoint(folder / train_rundir.CHECKPOINT_FILE)
    total = record.total_steps
    if total is None or int(state["step"]) < total:
        raise NasbenchError(
            f"the supernet of run {rundir.run_id} stopped at step {state['step']} of {total}; "
            "resume the search to finish training before exporting inherited weights"
        )
    record.check_space(space, f"run {rundir.run_id}")
    supernet = Supernet(space, dataset.num_classes)
    supernet.load_state_dict(state["model"])
    net = supernet.export(arch).to(device)
    s = record.eval_settings()
    train, val = search_data(dataset, s.val_fraction, s.data_seed, device=device)
    if train_rundir.data_identity(dataset, train, val) != record.identity["data"]:
        raise NasbenchError(f"data {rundir.config['data']} differs from the data run {rundir.run_id} trained on")
    if s.channels_last:
        net.to(memory_format=torch.channels_last)
    result = evaluate_model(net, arch, train, val, **s.evaluate_options())
    net = net.cpu().to(memory_format=torch.contiguous_format)
    weights = {
        "source": "inherited",
        "note": f"the supernet's weights (step {state['step']}), BN recalibrated on {result.bn_batches} batches; "
        "not retrained",
        "from": str(folder / train_rundir.CHECKPOINT_FILE),
        "bn_recalibration": {"batches": result.bn_batches, "batch_size": s.batch_size, "seed": s.seed},
    }
    return net.eval(), weights, {"val_export": result.top1}, {}


# --- the card -----------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _latency(rundir: RunDir, row: pd.Series) -> dict[str, Any]:
    out = {"predicted_ms": _clean(row["latency_pred_ms"]), "measured_ms": _clean(row["latency_ms"])}
    table = rundir.config.get("latency_table")
    out.update({"table": table, "device": None})
    if table:
        try:
            from nasbench.latency import load_table

            c = load_table(table).context
            out["device"] = f"{c.device_name} ({c.device}, {c.dtype}, batch {c.batch}, {c.threads} threads)"
        except (NasbenchError, OSError):
            out["device"] = "unknown (the run's latency table cannot be read any more)"
    return out


def _card(name, rundir, arch, rows, space_name, num_classes, dataset, weights, accuracy) -> dict[str, Any]:
    row, cost, config = rows.iloc[0], count(arch, num_classes), rundir.config
    return {
        "format": z.FORMAT,
        "name": name,
        "arch_id": arch.id,
        "arch": str(arch),
        "space": space_name,
        "data": str(config.get("data")),
        "num_classes": num_classes,
        "resolution": arch.resolution,
        "params": cost.params,
        "macs": cost.macs,
        "weights": weights,
        "accuracy": {
            "val_search": _clean(row["acc"]),
            "val_export": accuracy.get("val_export"),
            "test": accuracy.get("test"),
        },
        "latency": _latency(rundir, row),
        "search": {
            "run_id": rundir.run_id,
            "run": str(rundir.path),
            "searcher": row["searcher"],
            "trial": int(row["trial"]),
            "found_by": sorted(set(rows["searcher"])),
            "budget": config.get("budget"),
            "seed": config.get("seed"),
            "objectives": config.get("objectives"),
        },
        "preprocess": {
            "resolution": arch.resolution,
            "mean": [round(float(v), 6) for v in dataset.mean],
            "std": [round(float(v), 6) for v in dataset.std],
        },
        "onnx": None,
        "nasbench_version": nasbench.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- writing ------------------------------------------------------------------------------------------


def _write_entry(folder: Path, model: Net, arch: Arch, num_classes: int, card: dict[str, Any], onnx: bool) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": f"nasbench-zoo-{z.FORMAT}", "arch": str(arch), "num_classes": str(num_classes)}
    write_bytes(folder / z.WEIGHTS_FILE, save(state, metadata=meta))
    card["weights"]["sha256"] = z.sha256(folder / z.WEIGHTS_FILE)
    arch_meta = {
        "format": z.FORMAT,
        "arch_id": arch.id,
        "arch_string": str(arch),
        "arch": arch.to_dict(),
        "num_classes": num_classes,
        "space": card["space"],
        "preprocess": card["preprocess"],
        "nasbench_version": nasbench.__version__,
    }
    write_json(folder / z.ARCH_FILE, arch_meta)
    if onnx:
        card["onnx"] = export_onnx(model, folder / z.ONNX_FILE)
    write_json(folder / z.CARD_JSON, card)
    write_text(folder / z.CARD_MD, z.render_card(card))


def _commit(tmp: Path, target: Path, force: bool) -> None:
    """Rename the finished folder into place; with ``force`` the old entry goes only once the new is in."""
    old = None
    if target.exists():
        _refuse_existing(target, force)  # another export may have finished meanwhile
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(3)}")
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
