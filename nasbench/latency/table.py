"""Latency lookup tables: one JSON file per (space, device, dtype, batch), portable between machines.

A table maps every distinct layer configuration a space can produce (a ``counting.LayerConfig``: block
type, kernel, expand, in/out width, stride, input size; plus stem and head) to its measured latency, and
records the full measuring ``Context``, the space's name and a fingerprint of its dimensions. Loading a
table never touches a device, so a search on a CPU-only machine can use a table measured on a GPU
elsewhere (FBNet's way). A fitted ``Correction`` (see ``predict``) travels in the same file.

Each entry keeps the median of every measuring pass (passes run over the whole table at different times,
so a burst of background load skews one pass of a config, not the config) and the mean within-pass
interquartile range; the entry's figure is the median of its pass medians.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasbench.arch import Arch
from nasbench.atomic import atomic_path
from nasbench.counting import LayerConfig, decompose
from nasbench.errors import NasbenchError
from nasbench.latency.measure import Context
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
    spec = {
        "dimensions": [[d.label, list(d.choices)] for d in space.dimensions()],
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
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Correction:
        return cls(
            float(d["scale"]), float(d["per_layer_ms"]), float(d["offset_ms"]), int(d["archs"]), float(d["fit_mape"])
        )


@dataclass
class LatencyTable:
    """A per-layer latency table for one space in one context, plus its fitted correction (if any)."""

    space: str
    fingerprint: str
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
                f"latency table {self.where} has no fitted correction yet; run `nasbench latency validate"
                f" --space {self.space} --update-table` (or `lut` with --calibrate N) on its device"
            )
        return self.correction

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a table measured for another space (by name or by the space's dimensions)."""
        if space.name != self.space or space_fingerprint(space) != self.fingerprint:
            raise NasbenchError(
                f"latency table {self.where} was measured for space {self.space!r} (fingerprint {self.fingerprint}),"
                f" not for space {space.name!r} (fingerprint {space_fingerprint(space)}); build one with"
                f" `nasbench latency lut --space {space.name}`"
            )

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
