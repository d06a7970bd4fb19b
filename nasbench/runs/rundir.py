"""The search run folder: every file and folder of a run is a named path on ``RunDir``.

::

    RUN/config.json         config_file    the run's full configuration, written once when the run is created
    RUN/records.jsonl       journal_file   one line per evaluated architecture, fsync'ed (the source of truth)
    RUN/records.parquet     parquet_file   the same records as Parquet, replaced atomically at checkpoints
    RUN/pareto.csv          pareto_csv     the front                     } write_outputs, from the records
    RUN/pareto.png          pareto_png     its plot                      }
    RUN/summary.md          summary_file   the run on one page           }
    RUN/search_state.json   state_file     what each searcher has spent (read_state / write_state)
    RUN/supernet/           supernet_dir   the supernet's training folder (nasbench.training's own rules)
    RUN/ray_tmp/            ray_dir        Ray's temporary files (a private local Ray only)
    RUN/tune/               tune_dir       Tune's trial results
    RUN/optuna.db           optuna_db      the Optuna studies (SQLite)
    RUN/retrain/            retrain_dir    the winners retrained from scratch, and their report
    RUN/.lock               lock_file      held (flock) by the one process that writes the run

``RunDir.create`` starts a run, ``RunDir.resume`` continues one (refusing a different configuration), and
``RunDir.open`` reads one, finished or still running. Every file is replaced through ``nasbench.atomic``;
the journal is appended line by line (``records.Journal``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pandas as pd

from nasbench import atomic
from nasbench.diffing import first_difference
from nasbench.errors import NasbenchError
from nasbench.objectives.table import ACCURACY_DEFAULT
from nasbench.runs.naming import DEFAULT_ROOT, make_run_id, resolve_run
from nasbench.runs.outputs import FRONT_COLUMNS, run_front
from nasbench.runs.outputs import write_outputs as write_output_files
from nasbench.runs.records import Journal, Record, records_frame

try:  # POSIX; elsewhere the single-writer rule is simply not enforced
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

CONFIG_FILE = "config.json"  # a folder holding it is a run (analysis.find_runs looks for it)
JOURNAL_FILE = "records.jsonl"
PARQUET_FILE = "records.parquet"
STATE_FILE = "search_state.json"
RETRAIN_DIR = "retrain"
LOCK_FILE = ".lock"
RUN_KIND = "nasbench search run"
FORMAT = 1


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as JSON gives it back (tuples become lists), so stored and new ones compare."""
    return json.loads(json.dumps(dict(config)))


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable (it matters on power loss, not for a killed process)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDir:
    """One search run's folder. Make one with ``create``, ``resume`` (both writable: they hold the run's
    lock) or ``open`` (read-only). A writable ``RunDir`` is the run's only writer; close it (or use it as a
    context manager) to release the lock, which the OS also releases if the process dies."""

    def __init__(self, path: Path, meta: dict[str, Any], *, lock: IO[str] | None = None) -> None:
        self.path = Path(path)
        self.meta = meta
        self.journal = Journal(self.journal_file)
        self._lock = lock
        self._trials: dict[str, set[int]] | None = None  # writer's index, built once from the journal
        self._arches: set[tuple[str, str]] = set()
        self._appending = threading.Lock()  # check-then-append stays atomic if callbacks run on threads

    # --- opening ------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        config: Mapping[str, Any],
        *,
        out: str | os.PathLike | None = None,
        root: str | os.PathLike = DEFAULT_ROOT,
        run_id: str | None = None,
    ) -> RunDir:
        """Start a run in ``out`` (or ``root/<run-id>``), which must be missing or empty. The run id is
        made from ``config["space"]`` and ``config["data"]`` unless given."""
        config = _plain(config)
        run_id = run_id or make_run_id(_name(config.get("space")), _name(config.get("data")))
        path = Path(out) if out is not None else Path(root) / run_id
        if path.exists() and not path.is_dir():
            raise NasbenchError(f"{path} is a file, not a folder; give a folder for the run")
        if path.is_dir() and any(path.iterdir()):
            hint = "pass --resume to continue it" if (path / CONFIG_FILE).is_file() else "choose another folder"
            raise NasbenchError(f"{path} is not empty; {hint}")
        path.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(path)
        meta = {"kind": RUN_KIND, "format": FORMAT, "run_id": run_id, "created_at": time.time(), "config": config}
        rundir = cls(path, meta, lock=lock)
        atomic.write_json(rundir.config_file, meta)
        rundir.journal_file.touch()
        _fsync_dir(path)
        return rundir

    @classmethod
    def open(cls, run: str | os.PathLike, *, root: str | os.PathLike = DEFAULT_ROOT) -> RunDir:
        """Read a run (a path, or a run id under ``root``), finished or still running; writes nothing."""
        path = resolve_run(run, Path(root))
        return cls(path, read_meta(path))

    @classmethod
    def resume(
        cls,
        run: str | os.PathLike,
        config: Mapping[str, Any] | None = None,
        *,
        root: str | os.PathLike = DEFAULT_ROOT,
    ) -> RunDir:
        """Continue a run. With ``config``, it must equal the stored one (the error names the first key that
        differs). A torn last journal line, left by a kill, is cut off so the next record starts cleanly."""
        path = resolve_run(run, Path(root))
        meta = read_meta(path)
        if config is not None:
            difference = first_difference(meta["config"], _plain(config))
            if difference:
                raise NasbenchError(
                    f"--resume {path}: that run has a different configuration ({difference}); "
                    "repeat its settings or drop them to take the stored ones"
                )
        lock = _acquire_lock(path)
        rundir = cls(path, meta, lock=lock)
        rundir.journal.cut_torn_tail()
        return rundir

    def close(self) -> None:
        """Release the writer's lock; the object can still read."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- identity and layout ------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def objectives(self) -> tuple[str, ...]:
        """The run's objectives (a run recorded before they were stored searched accuracy and MACs)."""
        return tuple(self.config.get("objectives") or ACCURACY_DEFAULT)

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def journal_file(self) -> Path:
        return self.path / JOURNAL_FILE

    @property
    def parquet_file(self) -> Path:
        return self.path / PARQUET_FILE

    @property
    def pareto_csv(self) -> Path:
        return self.path / "pareto.csv"

    @property
    def pareto_png(self) -> Path:
        return self.path / "pareto.png"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.md"

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    @property
    def supernet_dir(self) -> Path:
        return self.path / "supernet"

    @property
    def ray_dir(self) -> Path:
        return self.path / "ray_tmp"

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    @property
    def optuna_db(self) -> Path:
        return self.path / "optuna.db"

    @property
    def retrain_dir(self) -> Path:
        return self.path / RETRAIN_DIR

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    # --- search state -------------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        """What each searcher has spent so far (``{"spent": {}}`` before the search phase has saved any)."""
        if not self.state_file.is_file():
            return {"spent": {}}
        return json.loads(self.state_file.read_text())

    def write_state(self, state: Mapping[str, Any]) -> None:
        """Replace the search state atomically (a kill leaves the previous state or this one)."""
        atomic.write_json(self.state_file, dict(state))

    # --- records ------------------------------------------------------------------------------------
    def append(self, record: Record | Mapping[str, Any]) -> None:
        """Add one record (a ``Record``, or a mapping of its fields); when this returns, the record survives
        any kill. A second record of the same ``(searcher, trial)`` is refused (ValueError): a resumed run
        must not repeat an evaluation."""
        if not isinstance(record, Record):
            record = Record(**record)
        if not self.writable:
            raise RuntimeError(f"{self.path} was opened read-only; use RunDir.create or RunDir.resume to write")
        if record.run_id and record.run_id != self.run_id:
            raise ValueError(f"record belongs to run {record.run_id!r}, not {self.run_id!r}")
        with self._appending:
            trials = self._index()
            if record.trial in trials.get(record.searcher, ()):
                raise ValueError(f"trial {record.trial} of searcher {record.searcher!r} is already recorded")
            self.journal.append(replace(record, run_id=self.run_id).to_row())
            trials.setdefault(record.searcher, set()).add(record.trial)
            self._arches.add((record.searcher, record.arch_id))

    def records(self) -> pd.DataFrame:
        """Every record, one row each, with the schema's columns and dtypes (``records.SCHEMA``). Read from
        the journal, so it includes what a running search has recorded so far."""
        if not self.journal_file.exists() and self.parquet_file.exists():
            return records_frame(pd.read_parquet(self.parquet_file).to_dict("records"))
        return records_frame(self.journal.read())

    def completed_trials(self, searcher: str) -> set[int]:
        """Trial numbers of ``searcher`` already recorded, whatever their status."""
        return set(self._index().get(searcher, set()))

    def next_trial(self, searcher: str) -> int:
        """One more than the largest trial number ``searcher`` has recorded (0 for none)."""
        done = self._index().get(searcher)
        return max(done) + 1 if done else 0

    def has_evaluated(self, arch_id: str, searcher: str) -> bool:
        """Whether ``searcher`` has a record of ``arch_id`` (ok, failed or infeasible)."""
        self._index()
        return (searcher, arch_id) in self._arches

    def _index(self) -> dict[str, set[int]]:
        """Trials per searcher; cached by the writer (the only one appending), re-read by readers."""
        if self._trials is not None and self.writable:
            return self._trials
        trials: dict[str, set[int]] = {}
        self._arches = set()
        for row in self.journal.read():
            trials.setdefault(row["searcher"], set()).add(int(row["trial"]))
            self._arches.add((row["searcher"], row["arch_id"]))
        self._trials = trials
        return trials

    # --- materialized outputs -----------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Rewrite ``records.parquet`` from the journal, atomically (readers see the old or the new file)."""
        return self._write_parquet(self.records())

    def _write_parquet(self, records: pd.DataFrame) -> Path:
        with atomic.atomic_path(self.parquet_file) as tmp:
            records.to_parquet(tmp, engine="pyarrow", index=False)
        return self.parquet_file

    def front(self, objectives: Sequence[str] | None = None) -> pd.DataFrame:
        """The run's Pareto front (``FRONT_COLUMNS``): under its own objectives, the ``pareto.csv`` its outputs
        wrote when no record came after it; else computed from the records (a run still going, or another
        choice of ``objectives``), as ``write_outputs`` computes it."""
        own = objectives is None or tuple(objectives) == self.objectives
        written = self.read_state().get("front") if self.state_file.is_file() else None
        if own and self.pareto_csv.is_file() and written == self._front_stamp(self.objectives):
            return pd.read_csv(self.pareto_csv, dtype=FRONT_DTYPES)
        front = run_front(self.records(), self.objectives if objectives is None else objectives)
        return front[FRONT_COLUMNS].reset_index(drop=True)

    def write_outputs(
        self,
        objectives: Sequence[str] = ACCURACY_DEFAULT,
        *,
        budget: Mapping[str, Any] | None = None,
        reference: Mapping[str, float] | None = None,
        notes: Sequence[str] = (),
    ) -> dict[str, Path]:
        """Write records.parquet, pareto.csv, pareto.png and summary.md; returns their paths by name.

        ``objectives`` among acc, macs, params, latency (measured where present, else predicted);
        ``budget`` is shown in the summary as given (e.g. the budget and what each phase spent);
        ``reference`` is the hypervolume reference point (default: acc 0, costs 1.1 x the largest seen);
        ``notes`` are shown in the summary (e.g. what a latency table means on this machine).
        """
        stamp, records = self._front_stamp(objectives), self.records()
        paths = {"records": self._write_parquet(records)}
        targets = {"pareto_csv": self.pareto_csv, "pareto_png": self.pareto_png, "summary": self.summary_file}
        paths.update(
            write_output_files(
                records,
                targets,
                run_id=self.run_id,
                config=self.config,
                objectives=objectives,
                budget=budget,
                reference=reference,
                notes=notes,
            )
        )
        self.write_state({**self.read_state(), "front": stamp})  # pareto.csv is this journal's front
        return paths

    def _front_stamp(self, objectives: Sequence[str]) -> dict[str, Any]:
        """What a written front was computed from: the objectives and the journal's length (it only grows,
        or loses a torn tail on resume), so ``front`` knows whether pareto.csv still is the records' front."""
        size = self.journal_file.stat().st_size if self.journal_file.is_file() else None
        return {"objectives": list(objectives), "journal_bytes": size}


FRONT_DTYPES = {"arch_id": str, "searcher": str, "arch": str}  # ids like 1234e56789 stay strings


def read_meta(path: Path) -> dict[str, Any]:
    """The stored ``config.json`` of the run in ``path``; ``NasbenchError`` when it is not a run."""
    path = Path(path)
    if not path.exists():
        raise NasbenchError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise NasbenchError(f"{path} is a file, not a run folder")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise NasbenchError(f"{path} is not a nasbench search run: it has no {CONFIG_FILE}")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NasbenchError(f"{config_path} cannot be read as JSON ({e}); the run folder is damaged") from None
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND or not isinstance(meta.get("config"), dict):
        raise NasbenchError(f"{path} is not a nasbench search run: {config_path} is not a search run's configuration")
    if meta.get("format") != FORMAT:
        raise NasbenchError(f"{path} was written in run format {meta.get('format')!r}; this nasbench reads {FORMAT}")
    return meta


def _acquire_lock(path: Path) -> IO[str]:
    """Hold ``RUN/.lock`` exclusively, so two processes never append to one run (which could repeat trials)."""
    f = open(path / LOCK_FILE, "a+")  # noqa: SIM115 (held open for the life of the RunDir)
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise NasbenchError(
                f"run {path} is in use by another nasbench process; wait for it to finish or stop it first"
            ) from None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _name(value: Any) -> str:
    """A space or data entry of a config as a short name (``{"name": ...}`` or a plain value)."""
    if isinstance(value, Mapping):
        value = value.get("name", "")
    return Path(str(value)).stem if value else "run"
