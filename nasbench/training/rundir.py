"""The training run folder: what it holds, and whether a command may start or resume a run in it.

::

    RUN_DIR/train_config.json    identity (space, data, budget, seed, recipe), environment, step plan
    RUN_DIR/checkpoint.pt        the latest checkpoint (replaced atomically)
    RUN_DIR/train_result.json    written when training reaches its last step
    RUN_DIR/supernet_eval.json   written by the CLI: largest and smallest subnets after BN recalibration
    RUN_DIR/ray_tmp/, ray_train/ data-parallel runs (--workers): Ray's logs and Ray Train's run state

A run's *identity* is everything that decides its result; a folder that holds a run with another identity
is refused rather than overwritten or silently mixed. ``TrainingRecord`` is the record's one reader for
everything that uses a trained supernet (a search, an export, a rank report, the data-parallel driver): its
recipe as a ``TrainConfig``, its plan, and the settings its subnets are evaluated with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasbench.atomic import write_json as write_json  # re-exported: the training command writes with it
from nasbench.budget import Budget
from nasbench.data import DeviceData, ImageDataset
from nasbench.diffing import first_difference
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace
from nasbench.training.config import LEGACY_DEFAULTS, TrainConfig
from nasbench.training.evaluate import EvalSettings

CONFIG_FILE = "train_config.json"
CHECKPOINT_FILE = "checkpoint.pt"
RESULT_FILE = "train_result.json"
EVAL_FILE = "supernet_eval.json"
RUN_KIND = "nasbench supernet training"


def space_identity(space: SearchSpace) -> dict[str, str]:
    """Name plus a hash of every choice, so an edited YAML file under the same name counts as different."""
    body = dataclasses.replace(space, source="", description="")
    return {"name": space.name, "sha1": hashlib.sha1(repr(body).encode()).hexdigest()[:12]}


def data_identity(ds: ImageDataset, train: DeviceData, val: DeviceData) -> dict[str, Any]:
    digest = hashlib.sha1(np.ascontiguousarray(ds.train_y).tobytes())
    digest.update(memoryview(np.ascontiguousarray(ds.train_x)).cast("B"))  # ~0.2 s for CIFAR's 150 MB
    return {
        "name": ds.name,
        "classes": ds.num_classes,
        "image_size": list(ds.image_size),
        "train": len(train),
        "val": len(val),
        "sha1": digest.hexdigest()[:12],
    }


def run_identity(
    space: SearchSpace, data: dict[str, Any], budget: Budget, seed: int, config: TrainConfig
) -> dict[str, Any]:
    return {
        "kind": RUN_KIND,
        "space": space_identity(space),
        "data": data,
        "budget": str(budget),
        "seed": seed,
        "config": config.to_dict(),
    }


def environment(device: torch.device, config: TrainConfig) -> dict[str, Any]:
    """Where and how the run computes; recorded beside the identity, not part of it."""
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": config.channels_last,
        "autocast": "bf16" if cuda and config.bf16 else "off (float32)",
    }


def open_run(out_dir: Path, identity: dict[str, Any], *, resume: bool) -> dict[str, Any] | None:
    """The record of the run already in ``out_dir`` if this command may continue it, else ``None`` for a
    new run. Creates nothing; raises ``NasbenchError`` when the folder holds something else."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NasbenchError(f"--out {out_dir} is a file, not a folder; give a folder for the run")
    record_path = out_dir / CONFIG_FILE
    if not record_path.is_file():
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise NasbenchError(f"--out {out_dir} is not empty and holds no supernet training run; choose another")
        if resume:
            raise NasbenchError(f"--resume: {out_dir} holds no training run to resume; drop --resume to start one")
        return None
    record = read_record(record_path)
    difference = first_difference(record.get("identity", {}), identity)
    if difference:
        raise NasbenchError(
            f"--out {out_dir} holds a different run ({difference}); choose another folder, "
            "or repeat that run's settings with --resume"
        )
    if not resume:
        raise NasbenchError(f"--out {out_dir} already holds this run; pass --resume to continue it")
    return record


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NasbenchError(f"{path} cannot be read as JSON ({e}); the run folder is damaged") from None
    if not isinstance(record, dict) or record.get("identity", {}).get("kind") != RUN_KIND:
        raise NasbenchError(f"{path} is not a supernet training record; choose another --out")
    config = record["identity"].get("config")
    if isinstance(config, dict):  # a field the run predates reads as what the run did (LEGACY_DEFAULTS)
        record["identity"]["config"] = {**LEGACY_DEFAULTS, **config}
    return record


def record_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """Record the run's step plan (before any checkpoint can exist)."""
    path = Path(out_dir) / CONFIG_FILE
    write_json(path, {**read_record(path), "plan": plan})


def record_replan(out_dir: Path, total: int) -> None:
    """Record in the run's plan that its step count was re-planned to ``total`` (the first count is kept)."""
    path = Path(out_dir) / CONFIG_FILE
    record = read_record(path)
    plan = dict(record["plan"])
    plan.setdefault("planned_steps", plan["total_steps"])
    plan["total_steps"] = total
    write_json(path, {**record, "plan": plan})


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """A supernet training folder's record, read back (``read`` / ``find``): the only reader of
    ``train_config.json`` outside this module. Fields a run predates read as what it did (LEGACY_DEFAULTS)."""

    folder: Path
    identity: dict[str, Any]  # what decides the result: kind, space, data, budget, seed, config (, parallel)
    plan: dict[str, Any] | None  # the step plan, once made (total_steps, ...)
    origin: dict[str, Any]  # how the run was asked for (space and data as given), when recorded

    @classmethod
    def find(cls, folder: Path) -> TrainingRecord | None:
        """The record of the training run in ``folder``, or None when it holds none."""
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            return None
        record = read_record(path)
        return cls(Path(folder), record["identity"], record.get("plan"), record.get("origin") or {})

    @classmethod
    def read(cls, folder: Path, *, what: str = "a supernet training folder") -> TrainingRecord:
        """The record in ``folder``; one line naming ``what`` was expected when there is none."""
        found = cls.find(folder)
        if found is None:
            raise NasbenchError(f"{folder} holds no supernet training (no {CONFIG_FILE}); give {what}")
        return found

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.identity["config"])

    @property
    def seed(self) -> int:
        return int(self.identity["seed"])

    @property
    def budget(self) -> str:
        return str(self.identity["budget"])

    @property
    def total_steps(self) -> int | None:
        total = (self.plan or {}).get("total_steps")
        return None if total is None else int(total)

    def eval_settings(self, *, images: int | None = None) -> EvalSettings:
        """How this supernet's subnets are evaluated: its recipe's batch-norm recalibration batches, memory
        format and autocast, and its own validation split (its val_fraction, drawn with its seed)."""
        c = self.config
        return EvalSettings(
            bn_batches=c.bn_batches,
            val_fraction=c.val_fraction,
            data_seed=self.seed,
            channels_last=c.channels_last,
            bf16=c.bf16,
            images=images,
        )

    def check_space(self, space: SearchSpace, run: str) -> None:
        """Refuse a space that is not the one this supernet was trained on (its YAML edited since)."""
        if self.identity["space"] != space_identity(space):
            raise NasbenchError(f"space {space.name} has changed since {run} trained its supernet")
