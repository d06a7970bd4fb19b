"""Evaluation records: a fixed schema, one frozen ``Record`` per evaluated architecture, and the journal.

The journal (``records.jsonl``) is the run's source of truth: one JSON object per line, appended with
``write`` + ``flush`` + ``fsync`` before ``append`` returns. A process killed at any moment therefore leaves
every record whose append returned intact; at worst the last line is torn (written in part), and such a
tail is ignored on read with a warning and cut off before the next append, so it cannot glue onto the next
record. NaN is written as ``null`` so the lines are standard JSON (``jq`` reads them).

One process writes a run's journal (``RunDir`` holds a lock for that); any number may read it meanwhile.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nasbench.errors import NasbenchError
from nasbench.status import STATUSES, Status

if TYPE_CHECKING:
    from nasbench.arch import Arch


# The records' columns and their pandas dtypes, in order. Readers rely on it: keep it fixed, add at the end.
SCHEMA: dict[str, str] = {
    "run_id": "str",
    "trial": "int64",  # per-searcher trial number (Optuna's for trial searchers), unique per searcher
    "searcher": "str",
    "seed": "int64",
    "arch_id": "str",
    "arch": "str",  # compact string, Arch.parse() reads it
    "arch_json": "str",
    "resolution": "int64",
    "status": "str",  # one of STATUSES
    "error": "str",  # why it failed or is infeasible; empty when ok
    "acc": "float64",  # validation top-1 in [0, 1]; NaN unless ok
    "macs": "Int64",  # nullable: <NA> only when a failed evaluation never got as far as counting
    "params": "Int64",
    "latency_pred_ms": "float64",  # NaN without a latency table
    "latency_ms": "float64",  # measured; NaN when not measured
    "eval_seconds": "float64",
    "finished_at": "float64",  # unix seconds
    "extra": "str",  # JSON object of searcher-specific fields (e.g. the proximal searcher's target)
    "score": "float64",  # the ranker's score in (0, 1) (nasbench.search.ranker); NaN unless ok and ranked
}
COLUMNS = tuple(SCHEMA)


@dataclass(frozen=True)
class Record:
    """One evaluated architecture; ``RunDir.append`` fills ``run_id``. Use ``Record.for_arch`` to fill the
    architecture's fields from an ``Arch``."""

    trial: int
    searcher: str
    seed: int
    arch_id: str
    arch: str
    arch_json: str
    resolution: int
    status: str
    macs: int | None  # analytic; None (or NaN) allowed only for a failed record that never counted them
    params: int | None
    eval_seconds: float
    acc: float = math.nan
    error: str = ""
    latency_pred_ms: float = math.nan
    latency_ms: float = math.nan
    finished_at: float = field(default_factory=time.time)
    extra: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    score: float = math.nan

    def __post_init__(self) -> None:
        _check_record(self)

    @classmethod
    def for_arch(cls, arch: Arch, **fields_: Any) -> Record:
        """A record of ``arch``: its id, compact string, JSON and resolution, plus the given fields."""
        return cls(arch_id=arch.id, arch=str(arch), arch_json=arch.to_json(), resolution=arch.resolution, **fields_)

    def to_row(self) -> dict[str, Any]:
        """The record as one row of the schema: ``extra`` as a JSON string, NaN as ``None``."""
        row: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        row["extra"] = json.dumps(dict(self.extra), sort_keys=True)
        out = {}
        for col, dtype in SCHEMA.items():
            value = row[col]
            if value is not None and dtype != "str":  # plain Python numbers: numpy scalars are not JSON
                value = float(value) if dtype == "float64" else int(value)
            out[col] = None if isinstance(value, float) and math.isnan(value) else value
        return out


def _check_record(r: Record) -> None:
    """Reject records that would make the table lie; these are bugs in the caller, hence ValueError."""
    if r.status not in STATUSES:
        raise ValueError(f"record status {r.status!r} is not one of {', '.join(STATUSES)}")
    for name in ("macs", "params"):
        value = getattr(r, name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if r.status != Status.FAILED:
                raise ValueError(f"a {r.status} record needs its {name}")
            object.__setattr__(r, name, None)  # one spelling of "unknown" (frozen, hence object.__setattr__)
    for name in ("trial", "seed", "resolution", "macs", "params"):
        value = getattr(r, name)
        if value is None and name in ("macs", "params"):
            continue
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"record field {name} must be an int, got {value!r}")
        if value < 0 and name != "seed":
            raise ValueError(f"record field {name} must be >= 0, got {value}")
    if not r.searcher or not r.arch_id:
        raise ValueError("record needs a searcher and an arch_id")
    if r.status == Status.OK:
        if not 0.0 <= r.acc <= 1.0:
            raise ValueError(f"an ok record needs acc in [0, 1], got {r.acc!r}")
        if r.error:
            raise ValueError("an ok record carries no error")
        if not (math.isnan(r.score) or 0.0 <= r.score <= 1.0):
            raise ValueError(f"an ok record's score lies in [0, 1] (or is NaN), got {r.score!r}")
    else:
        if not (math.isnan(r.acc) and math.isnan(r.score)):
            raise ValueError(f"a {r.status} record has no accuracy or score (NaN), got {r.acc!r}, {r.score!r}")
        if not r.error:
            raise ValueError(f"a {r.status} record needs an error saying why")
    if not isinstance(r.extra, Mapping):
        raise ValueError(f"record extra must be a mapping, got {type(r.extra).__name__}")
    json.dumps(dict(r.extra))  # fails early, here, on values JSON cannot hold


def records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with exactly the schema's columns and dtypes, also when empty."""
    if not rows:
        return pd.DataFrame({col: pd.Series(dtype=dtype) for col, dtype in SCHEMA.items()})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col, dtype in SCHEMA.items():
        if dtype == "str":
            df[col] = df[col].fillna("")
    return df.astype(SCHEMA)


class Journal:
    """An append-only JSON-lines file that survives ``SIGKILL`` at any moment (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row as one line and return only once it is on disk."""
        line = (json.dumps(dict(row), allow_nan=False, separators=(",", ":")) + "\n").encode()
        # One write() of the whole line (O_APPEND): readers never see two records interleaved.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:  # a full disk: the line may be torn, which a resume drops (it never completed)
            raise OSError(e.errno, e.strerror, str(self.path)) from e
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """Every complete line; a torn last line is ignored with a warning."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        complete, _, tail = data.rpartition(b"\n")
        if _complete_record(tail):  # written whole, only its newline lost: a valid record, kept
            complete, tail = data, b""
        if tail:
            warnings.warn(
                f"{self.path}: ignoring a torn last line ({len(tail)} bytes), left by a process that was stopped "
                "while writing it; the record it held was not completed",
                stacklevel=2,
            )
        rows = []
        for number, line in enumerate(complete.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise NasbenchError(
                    f"{self.path} line {number} is not valid JSON; the run's journal is damaged"
                ) from None
        return rows

    def cut_torn_tail(self) -> None:
        """Remove a torn last line, so the next append starts on a line of its own. A last line that parses
        as a whole record (a process stopped between the record and its newline) is kept: it gets its
        newline instead."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            keep = data.rfind(b"\n") + 1
            if _complete_record(data[keep:]):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
                return
            warnings.warn(
                f"{self.path}: removing a torn last line ({size - keep} bytes) before appending", stacklevel=2
            )
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())


def _complete_record(line: bytes) -> bool:
    """Whether a journal line without its newline still holds a whole record (a JSON object)."""
    if not line.strip():
        return False
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
