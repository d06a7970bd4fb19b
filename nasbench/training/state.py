"""Everything a killed training needs to go on exactly where it was: batch stream, RNG states, checkpoints.

A checkpoint holds plain tensors, numbers, strings and lists only, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs from a run folder). It is written through
``nasbench.atomic``, so a kill at any moment leaves either the previous checkpoint or the new one, never
half of one.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nasbench.atomic import atomic_path
from nasbench.data import DeviceData
from nasbench.errors import NasbenchError

CHECKPOINT_FORMAT = 1
WRITE_ROOM = 64 * 2**20  # free bytes under which a failed checkpoint write counts as a full disk


class BatchStream:
    """Endless augmented training batches, epoch after epoch, resumable in the middle of an epoch.

    Its state is the data generator's state at the start of the current epoch plus the number of batches
    taken since; restoring replays those batches' draws (the shuffle and the augmentation), so the next
    batch is the one an uninterrupted run would have got.

    With ``shard=(rank, world)`` (data-parallel training) every rank draws the same global batch of
    ``world x batch_size`` images, shuffle and augmentation included, and keeps its own ``batch_size``: the
    ranks stay in step without communicating, and together they see exactly the batches one device with
    the global batch size would.
    """

    def __init__(
        self,
        data: DeviceData,
        batch_size: int,
        resolution: int,
        *,
        seed: int,
        channels_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard {shard}: the rank must be in [0, world)")
        self.data, self.batch_size, self.resolution, self.channels_last = data, batch_size, resolution, channels_last
        self.shard = shard
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._start_epoch()

    def _start_epoch(self) -> None:
        # train_batches draws nothing until its first batch is asked for, so this is the epoch's start state
        self._epoch_state = self.generator.get_state()
        global_batch = self.batch_size * self.shard[1]
        self._batches: Iterator = self.data.train_batches(
            global_batch, self.resolution, generator=self.generator, channels_last=self.channels_last
        )
        self.position = 0

    def next(self) -> tuple[Tensor, Tensor]:
        try:
            images, labels = next(self._batches)
        except StopIteration:
            self.epoch += 1
            self._start_epoch()
            images, labels = next(self._batches)
        self.position += 1
        rank, world = self.shard
        if world == 1:
            return images, labels
        keep = slice(rank * self.batch_size, (rank + 1) * self.batch_size)
        return images[keep], labels[keep]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "epoch_state": self._epoch_state.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["epoch_state"])
        self._start_epoch()
        self.epoch = int(state["epoch"])
        for _ in range(int(state["position"])):
            next(self._batches)
        self.position = int(state["position"])


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device a command computes on: ``cpu`` or ``cuda[:N]``; None means CUDA when there is one, else
    the CPU. Anything else, or a CUDA device this machine does not have, is a ``NasbenchError`` naming
    ``--device`` (the one check behind every command's ``--device``, and the Python API's ``device=``)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise NasbenchError(f"--device {device!r} is not a device; use cpu or cuda[:N]") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index not in (None, 0)):
        raise NasbenchError(f"--device {device}: only cpu and cuda[:N] are supported")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NasbenchError(f"--device {device}: no CUDA device is available here; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise NasbenchError(
                f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model initialisation draws from torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """The global generators' states as checkpoint-safe values (tensors, ints, lists)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "python": _random_state(random.getstate()),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_python_state(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _random_state(state: tuple) -> list:
    """``random.Random.getstate()`` as a list (version, internal state, gauss) for the checkpoint."""
    version, internal, gauss = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _python_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return version, tuple(int(v) for v in internal.tolist()), gauss


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (``nasbench.atomic.atomic_path``). A write that fails (torch
    says so with a RuntimeError) is an ``OSError`` naming the file, ENOSPC when the disk has no room left."""
    with atomic_path(path) as tmp:
        try:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
        except RuntimeError as e:
            if "write" not in str(e).lower():
                raise
            full = shutil.disk_usage(tmp.parent).free < WRITE_ROOM
            code = errno.ENOSPC if full else errno.EIO
            raise OSError(code, os.strerror(code), str(path)) from e


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain values only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:  # the disk or its permissions, not the file's content: keep the cause
        raise NasbenchError(f"checkpoint {path} cannot be read: {e.strerror or e}") from e
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as e:
        # truncated, foreign, or written by a torch this one cannot read: one line that says which
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NasbenchError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {first}); a damaged or foreign file, or one"
            " written by another torch version"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise NasbenchError(f"checkpoint {path} is not a nasbench training checkpoint (format {CHECKPOINT_FORMAT})")
    return state
