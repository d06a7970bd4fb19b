"""Latency lookup tables: one JSON file per (space, device, dtype, batch), portable between machines.

A table maps every distinct layer configuration a space can produce (a ``counting.LayerConfig``: block
type, kernel, expand, in/out width, stride, input size; plus stem and head) to its measured latency, and
records the full measuring ``Context``, the space's name, a fingerprint of its layer structure (every
dimension but the resolution: which resolutions the table covers is its own field) and those resolutions.
Loading a table never touches a device, so a search on a CPU-only machine can use a table measured on a
GPU elsewhere (FBNet's way). A fitted ``Correction`` (see ``predict``) travels in the same file, with the
``Machine`` it was fitted on: its milliseconds are that machine's, and only rank architectures elsewhere.

Each entry keeps the median of every measuring pass (passes run over the whole table at different times,
so a burst of background load skews one pass of a config, not the config) and the mean within-pass
interquartile range; the entry's figure is the median of its pass medians.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nasbench.arch import Arch
from nasbench.atomic import atomic_path
from nasbench.counting import LayerConfig, decompose
from nasbench.errors import NasbenchError
from nasbench.latency.measure import Context, Machine
from nasbench.spaces import SearchSpace

FORMAT = "nasbench-latency-table/1"
DEFAULT_DIR = Path("results/latency")


def config_key(cfg: LayerConfig) -> str:
    """A readable, unique key for one layer configuration, e.g. ``mbconv_i24_o40_k5_e6_s2_se0.25_hw16_silu``."""
    key = f"{cfg.kind}_i{cfg.cin}_o{cfg.cout}_k{cfg.kernel}_e{cfg.expand}_s{cfg.stride}_se{cfg.se:g}_hw{cfg.size}"
    key += f"_{cfg.act}"
    return key + (f"_nc{cfg.num_classes}" if cfg.kind == "head" else "")


def space_fingerprint(space: SearchSpace) -> str:
    """A short hash of everything that decides which layer configs a space produces (not its name)."""
    return _fingerprint(space, with_resolutions=True)


def layer_fingerprint(space: SearchSpace) -> str:
    """``space_fingerprint`` without the resolution dimension: what a table must match to serve a space
    (at the resolutions it covers), so a space restricted to a table's resolutions still matches it."""
    return _fingerprint(space, with_resolutions=False)


def _fingerprint(space: SearchSpace, *, with_resolutions: bool) -> str:
    dims = [d for d in space.dimensions() if with_resolutions or d.label != "resolution"]
    spec = {
        "dimensions": [[d.label, list(d.choices)] for d in dims],
        "stem_stride": space.stem_stride,
        "act": space.act,
        "stages": [[s.stride, s.se] for s in space.stages],
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def table_path(space: SearchSpace, ctx: Context, root: Path | str = DEFAULT_DIR) -> Path:
    """Where the table of ``space`` measured in ``ctx`` lives: named by space, device, dtype and batch."""
    return Path(root) / f"{space.name}_{ctx.slug}.json"


@dataclass
class Entry:
    """One layer configuration's measurements: the median of each pass, and the mean within-pass IQR."""

    passes: list[float]
    iqr_ms: float

    @property
    def ms(self) -> float:
        return float(np.median(self.passes))

    def to_json(self) -> dict:
        return {"ms": round(self.ms, 5), "passes": [round(p, 5) for p in self.passes], "iqr": round(self.iqr_ms, 5)}

    @classmethod
    def from_json(cls, d: dict) -> Entry:
        return cls(passes=[float(p) for p in d["passes"]], iqr_ms=float(d["iqr"]))


@dataclass(frozen=True)
class Correction:
    """What a layer sum misses, fitted on end-to-end measurements of some archs (``predict.fit_correction``).

    ``measured ~= scale * table_sum + per_layer_ms * layers + offset_ms``: ``scale`` absorbs what differs
    between a layer timed alone and inside the network (cold caches, fusion), ``per_layer_ms`` the
    hand-off between layers, ``offset_ms`` the fixed cost of a call. It is affine in per-layer terms, so
    the expected latency of a distribution of archs is exact (``objectives.expected``).
    """

    scale: float
    per_layer_ms: float
    offset_ms: float
    archs: int  # how many end-to-end measurements it was fitted on
    fit_mape: float  # mean absolute percentage error on those archs
    machine: Machine | None = None  # where those measurements ran (None in tables made before it was recorded)

    def apply(self, table_sum_ms: float, layers: int) -> float:
        return self.scale * table_sum_ms + self.per_layer_ms * layers + self.offset_ms

    def layer_ms(self, table_ms: float) -> float:
        """One layer's share of the corrected prediction (the offset is added once per arch)."""
        return self.scale * table_ms + self.per_layer_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "formula": "measured_ms = scale * table_sum_ms + per_layer_ms * layers + offset_ms",
            "scale": round(self.scale, 6),
            "per_layer_ms": round(self.per_layer_ms, 6),
            "offset_ms": round(self.offset_ms, 6),
            "archs": self.archs,
            "fit_mape": round(self.fit_mape, 5),
            "machine": self.machine.to_dict() if self.machine else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Correction:
        machine = Machine.from_dict(d["machine"]) if d.get("machine") else None
        return cls(
            float(d["scale"]),
            float(d["per_layer_ms"]),
            float(d["offset_ms"]),
            int(d["archs"]),
            float(d["fit_mape"]),
            machine,
        )

    def mismatch(self, here: Machine) -> str | None:
        """Why this correction's milliseconds are not ``here``'s, or None when it was fitted there."""
        if self.machine is None:
            return "does not record the machine its correction was fitted on"
        diffs = self.machine.differences(here)
        if diffs:
            return f"was calibrated on another machine ({'; '.join(diffs)})"
        return None


@dataclass
class LatencyTable:
    """A per-layer latency table for one space in one context, plus its fitted correction (if any)."""

    space: str
    fingerprint: str  # layer_fingerprint of the space (space_fingerprint in tables made before it)
    context: Context
    num_classes: int
    resolutions: list[int]
    settings: dict[str, Any]  # passes, repeats, warmup used to measure the entries
    entries: dict[str, Entry] = field(default_factory=dict)
    correction: Correction | None = None  # None before calibration
    path: Path | None = None

    # --- lookups (no device needed) -------------------------------------------------------------------
    def layer_ms(self, cfg: LayerConfig) -> float:
        """The table's latency of one layer; a config the table lacks is a ``NasbenchError``."""
        entry = self.entries.get(config_key(cfg))
        if entry is None:
            raise NasbenchError(
                f"latency table {self.where} has no entry for layer {config_key(cfg)}; it covers resolutions"
                f" {self.resolutions} and {self.num_classes} classes; rebuild or extend it with `nasbench"
                f" latency lut --space {self.space} --num-classes N --resolution R`"
            )
        return entry.ms

    def table_sum(self, arch: Arch) -> float:
        """Sum of the table's latencies over the layers of ``build(arch, num_classes)``, in ms."""
        if arch.resolution not in self.resolutions:
            raise NasbenchError(
                f"latency table {self.where} covers resolutions {self.resolutions}, not {arch.resolution};"
                f" extend it with `nasbench latency lut --space {self.space} --resolution {arch.resolution}`"
            )
        return sum(self.layer_ms(cfg) for _, cfg in decompose(arch, self.num_classes))

    def predict(self, arch: Arch) -> float:
        """Predicted end-to-end latency (ms): the table sum, corrected by the fitted correction."""
        return self.require_correction().apply(self.table_sum(arch), len(decompose(arch, self.num_classes)))

    def require_correction(self) -> Correction:
        if self.correction is None:
            raise NasbenchError(
                f"latency table {self.where} has no fitted correction yet; run `nasbench latency calibrate"
                f" {self.where}` on the machine whose latency it should predict"
            )
        return self.correction

    def calibration_mismatch(self) -> str | None:
        """Why the table's predictions are not milliseconds of this machine (in the table's measuring
        settings), or None when its correction was fitted here."""
        here = Machine.here(self.context.device, self.context.threads)
        return self.require_correction().mismatch(here)

    def covering(self, space: SearchSpace) -> tuple[SearchSpace, LatencyTable]:
        """``space`` and this table, both restricted to the resolutions they share, so that every arch of
        the space has a prediction; a ``NasbenchError`` naming the space's resolutions when none is covered."""
        self.check_space(space)
        shared = tuple(r for r in space.resolutions if r in self.resolutions)
        if not shared:
            raise NasbenchError(
                f"latency table {self.where} covers resolutions {sorted(self.resolutions)}, none of space"
                f" {space.name}'s resolutions {list(space.resolutions)}; measure them with `nasbench latency lut"
                f" --space {space.name}" + "".join(f" --resolution {r}" for r in space.resolutions) + "`"
            )
        return replace(space, resolutions=shared), replace(self, resolutions=list(shared))

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a table measured for another space (by name or by the dimensions that decide its layers).

        A table from before ``layer_fingerprint`` carries the whole space's fingerprint; once it matches, the
        table takes the layer fingerprint, so the space restricted to its resolutions matches it too."""
        if space.name != self.space or self.fingerprint not in (layer_fingerprint(space), space_fingerprint(space)):
            raise NasbenchError(
                f"latency table {self.where} was measured for space {self.space!r} (fingerprint {self.fingerprint}),"
                f" not for space {space.name!r} (fingerprint {layer_fingerprint(space)}); build one with"
                f" `nasbench latency lut --space {space.name}`"
            )
        self.fingerprint = layer_fingerprint(space)  # an older table's whole-space fingerprint, once checked

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"<{self.space} table>"

    def record(self) -> dict[str, Any]:
        """What a run should store to say which table it used."""
        return {
            "path": str(self.path) if self.path else None,
            "space": self.space,
            "fingerprint": self.fingerprint,
            "context": self.context.to_dict(),
            "entries": len(self.entries),
            "correction": self.correction.to_json() if self.correction else None,
        }

    # --- files ----------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "space": self.space,
            "fingerprint": self.fingerprint,
            "context": self.context.to_dict(),
            "num_classes": self.num_classes,
            "resolutions": sorted(self.resolutions),
            "settings": self.settings,
            "correction": self.correction.to_json() if self.correction else None,
            "entries": {k: e.to_json() for k, e in sorted(self.entries.items())},
        }

    def save(self, path: Path | str | None = None) -> Path:
        """Write the table atomically (``nasbench.atomic``): a crash never leaves half a file."""
        target = Path(path or self.path or "")
        if not target.name:
            raise ValueError("no path to save the latency table to")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
            tmp.chmod(0o644)  # the temporary file is private; a table is meant to be shared
        self.path = target
        return target


def load_table(path: Path | str, space: SearchSpace | None = None) -> LatencyTable:
    """Read a table file (never touching a device); with ``space``, refuse a table for another space."""
    path = Path(path)
    if not path.is_file():
        raise NasbenchError(
            f"latency table {path} does not exist; measure one with `nasbench latency lut"
            f" --space {space.name if space else 'SPACE'} --device DEVICE --batch B`"
        )
    try:
        d = json.loads(path.read_text())
        if d.get("format") != FORMAT:
            raise NasbenchError(f"{path} is not a nasbench latency table (format {d.get('format')!r}, want {FORMAT})")
        table = LatencyTable(
            space=str(d["space"]),
            fingerprint=str(d["fingerprint"]),
            context=Context.from_dict(d["context"]),
            num_classes=int(d["num_classes"]),
            resolutions=[int(r) for r in d["resolutions"]],
            settings=dict(d["settings"]),
            entries={k: Entry.from_json(e) for k, e in d["entries"].items()},
            correction=Correction.from_json(d["correction"]) if d.get("correction") else None,
            path=path,
        )
    except json.JSONDecodeError as e:
        raise NasbenchError(f"latency table {path} is not valid JSON: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NasbenchError(f"latency table {path} is malformed: missing or bad field {e}") from None
    if space is not None:
        table.check_space(space)
    return table
