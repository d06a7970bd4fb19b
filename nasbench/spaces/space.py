"""The ``SearchSpace`` value: labelled choices over architectures, torch-free (loaded by ``loading``).

A space lists stages; per stage the allowed block types, kernels and expand ratios (chosen per layer), and
the depth and width choices (chosen per stage); globally the input resolutions and stem and head widths.
Each stage also names a ``base`` configuration, and ``references`` names compound-scaled points of that
base the way EfficientNet defines them: widths scaled and rounded to multiples of ``compound.divisor``
(never down by more than 10%), repeats scaled and rounded up.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasbench.arch import Arch, Layer, Stage
from nasbench.errors import NasbenchError

# Order used by ``largest``/``smallest`` to pick a block type: by parameter count at equal kernel, expand
# and width (attention carries qkv, output and MLP projections; Fused-MBConv a full kxk conv).
BLOCK_SIZE_RANK = {"skip": -1, "mbconv": 0, "dynconv": 1, "attention": 2, "fused_mbconv": 3}
KERNELS = (1, 3, 5, 7, 9)


def _op_size_rank(code: str) -> tuple[int, int, int]:
    """Order of coupled layer choices for ``largest``/``smallest``: by expand, kernel, then block size."""
    lay = Layer.from_code(code)
    return (lay.expand, lay.kernel, BLOCK_SIZE_RANK[lay.block])


def round_width(channels: float, divisor: int = 8) -> int:
    """EfficientNet's ``round_filters``: nearest multiple of ``divisor``, never more than 10% below."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return int(rounded)


def round_depth(repeats: int, multiplier: float) -> int:
    """EfficientNet's ``round_repeats``: scaled repeats, rounded up."""
    return int(math.ceil(multiplier * repeats))


@dataclass(frozen=True)
class Dimension:
    """One labelled decision of a space; an architecture is one value per dimension."""

    label: str
    choices: tuple


@dataclass(frozen=True)
class StageSpace:
    """One stage's choices. A layer is chosen either *factored* (block, kernel and expand independently:
    three dimensions per layer) or *coupled* (one ``op`` dimension over a list of whole layers, e.g.
    ``[mb3e3, mb5e6]``, where only some combinations exist). ``first_ops`` may give the stage's first
    layer its own list, e.g. a ``skip`` projection that later layers do not offer (a skipped later layer
    is a shallower stage)."""

    name: str
    stride: int
    se: float
    blocks: tuple[str, ...]  # coupled stages: the block types their ops use
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    base: Layer  # the reference layer of this stage
    base_depth: int
    base_width: int
    ops: tuple[Layer, ...] | None = None  # coupled choices for layers 2.. (and layer 1 without first_ops)
    first_ops: tuple[Layer, ...] | None = None  # coupled choices for layer 1

    @property
    def coupled(self) -> bool:
        return self.ops is not None

    def layer_options(self, first: bool) -> tuple[Layer, ...]:
        """Every layer this stage can run at its first position (``first``) or at a later one."""
        if self.coupled:
            return self.first_ops if first and self.first_ops else self.ops
        return tuple(Layer(b, k, e) for b in self.blocks for k in self.kernels for e in self.expands)

    def layer_dims(self, first: bool) -> tuple[tuple[str, tuple], ...]:
        """The per-layer dimensions, as (suffix, choices): block/kernel/expand, or one ``op`` of codes."""
        if self.coupled:
            return (("op", tuple(lay.code for lay in self.layer_options(first))),)
        return (("block", self.blocks), ("kernel", self.kernels), ("expand", self.expands))

    def make_layer(self, values: tuple) -> Layer:
        """The layer for one value per ``layer_dims`` entry, in their order."""
        return Layer.from_code(values[0]) if self.coupled else Layer(*values)

    def layer_values(self, layer: Layer) -> tuple:
        """Inverse of ``make_layer``."""
        return (layer.code,) if self.coupled else (layer.block, layer.kernel, layer.expand)

    def position_blocks(self, first: bool) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per block type at a position, the kernels and expand ratios its elastic weights must cover."""
        out: dict[str, tuple[set, set]] = {}
        for lay in self.layer_options(first):
            kernels, expands = out.setdefault(lay.block, (set(), set()))
            kernels.add(lay.kernel)
            expands.add(lay.expand)
        return {b: (tuple(sorted(k)), tuple(sorted(e))) for b, (k, e) in out.items()}

    def count(self, depth: int) -> int:
        """Distinct layer sequences of one depth."""
        return len(self.layer_options(True)) * len(self.layer_options(False)) ** (depth - 1)

    @property
    def layer_choices(self) -> int:
        return len(self.layer_options(False))


@dataclass(frozen=True)
class CompoundPoint:
    """A named compound-scaled point: width and depth multipliers of the base, and a resolution."""

    width: float
    depth: float
    resolution: int


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    source: str  # the file it was loaded from
    act: str
    resolutions: tuple[int, ...]
    stem_widths: tuple[int, ...]
    stem_stride: int
    stem_base: int
    head_widths: tuple[int, ...]
    head_base: int
    divisor: int
    stages: tuple[StageSpace, ...]
    references: dict[str, CompoundPoint]

    # --- dimensions and size --------------------------------------------------------------------------
    def dimensions(self) -> list[Dimension]:
        """Every labelled decision, in a fixed order; layer decisions exist up to each stage's max depth."""
        dims = [
            Dimension("resolution", self.resolutions),
            Dimension("stem", self.stem_widths),
            Dimension("head", self.head_widths),
        ]
        for s in self.stages:
            dims += [Dimension(f"{s.name}.depth", s.depths), Dimension(f"{s.name}.width", s.widths)]
            for j in range(1, max(s.depths) + 1):
                dims += [Dimension(f"{s.name}.l{j}.{x}", choices) for x, choices in s.layer_dims(j == 1)]
        return dims

    @property
    def size(self) -> int:
        """Number of distinct architectures (layers beyond a stage's depth do not count)."""
        n = len(self.resolutions) * len(self.stem_widths) * len(self.head_widths)
        for s in self.stages:
            n *= len(s.widths) * sum(s.count(d) for d in s.depths)
        return n

    @property
    def log10_size(self) -> float:
        return math.log10(self.size)

    # --- choices <-> architectures --------------------------------------------------------------------
    def decode(self, choices: dict[str, Any]) -> Arch:
        """Build the architecture for one value per dimension (a plain ``dict[label, value]``)."""
        try:
            stages = []
            for s in self.stages:
                depth = choices[f"{s.name}.depth"]
                layers = tuple(
                    s.make_layer(tuple(choices[f"{s.name}.l{j}.{x}"] for x, _ in s.layer_dims(j == 1)))
                    for j in range(1, depth + 1)
                )
                stages.append(Stage(choices[f"{s.name}.width"], s.stride, s.se, layers))
            arch = Arch(
                resolution=choices["resolution"],
                stem=choices["stem"],
                stem_stride=self.stem_stride,
                head=choices["head"],
                act=self.act,
                stages=tuple(stages),
            )
        except KeyError as e:
            raise NasbenchError(f"space {self.name}: no value given for dimension {e.args[0]}") from None
        self.check(arch)
        return arch

    def encode(self, arch: Arch) -> dict[str, Any]:
        """The inverse of ``decode``; layer dimensions beyond a stage's depth take their first choice."""
        self.check(arch)
        choices: dict[str, Any] = {"resolution": arch.resolution, "stem": arch.stem, "head": arch.head}
        for s, a in zip(self.stages, arch.stages, strict=True):
            choices[f"{s.name}.depth"] = a.depth
            choices[f"{s.name}.width"] = a.width
            for j in range(1, max(s.depths) + 1):
                dims = s.layer_dims(j == 1)
                values = s.layer_values(a.layers[j - 1]) if j <= a.depth else tuple(c[0] for _, c in dims)
                choices.update({f"{s.name}.l{j}.{x}": v for (x, _), v in zip(dims, values, strict=True)})
        return choices

    def sample(self, seed: int | random.Random) -> Arch:
        """A uniform choice per dimension, from an explicit seed or generator."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self.decode({d.label: rng.choice(d.choices) for d in self.dimensions()})

    def _extreme(self, pick: Any) -> Arch:
        choices: dict[str, Any] = {}
        for d in self.dimensions():
            key = None
            if d.label.endswith(".block"):
                key = BLOCK_SIZE_RANK.__getitem__
            elif d.label.endswith(".op"):
                key = _op_size_rank
            choices[d.label] = pick(d.choices, key=key)
        return self.decode(choices)

    def largest(self) -> Arch:
        """Every dimension at its largest: resolution, widths, depths, kernels, expands, biggest block."""
        return self._extreme(max)

    def smallest(self) -> Arch:
        return self._extreme(min)

    def reference(self, name: str) -> Arch:
        """A named compound-scaled point of the stages' base configuration (e.g. ``b0``)."""
        if name not in self.references:
            known = ", ".join(self.references) or "none"
            raise NasbenchError(f"space {self.name} has no reference {name!r}; it has: {known}")
        return self._compound(self.references[name])

    def _compound(self, p: CompoundPoint) -> Arch:
        stages = tuple(
            Stage(
                width=round_width(s.base_width * p.width, self.divisor),
                stride=s.stride,
                se=s.se,
                layers=(s.base,) * round_depth(s.base_depth, p.depth),
            )
            for s in self.stages
        )
        return Arch(
            resolution=p.resolution,
            stem=round_width(self.stem_base * p.width, self.divisor),
            stem_stride=self.stem_stride,
            head=round_width(self.head_base * p.width, self.divisor),
            act=self.act,
            stages=stages,
        )

    def resolve(self, spec: str, resolution: int | None = None) -> Arch:
        """An architecture from a user's spec: ``ref:NAME``, ``largest``, ``smallest``, ``sample:SEED``, a
        compact string or a path to a JSON file; it must lie in this space. ``resolution`` then overrides
        its input size (a user's ``--resolution``, which may leave the space's resolution choices)."""
        arch = self._resolve(spec.strip())
        if resolution is None:
            return arch
        if resolution < 8:
            raise NasbenchError(f"--resolution must be at least 8, got {resolution}")
        return arch.with_resolution(resolution)

    def _resolve(self, spec: str) -> Arch:
        if spec.startswith("ref:"):
            return self.reference(spec[4:])
        if spec in ("largest", "smallest"):
            return self.largest() if spec == "largest" else self.smallest()
        if spec.startswith("sample:"):
            try:
                return self.sample(int(spec[7:]))
            except ValueError:
                raise NasbenchError(f"sample:SEED needs an integer seed, got {spec[7:]!r}") from None
        if spec.startswith("r") and "|" in spec:
            arch = Arch.parse(spec)
        elif spec.endswith(".json") or Path(spec).is_file():
            path = Path(spec)
            if not path.is_file():
                raise NasbenchError(f"architecture file {spec} does not exist")
            arch = Arch.from_json(path.read_text())
        else:
            raise NasbenchError(
                f"cannot read architecture {spec!r}; give ref:NAME, largest, smallest, sample:SEED,"
                " a compact string (r224_stem32s2_...) or a JSON file"
            )
        self.check(arch)
        return arch

    # --- membership -----------------------------------------------------------------------------------
    def violations(self, arch: Arch) -> list[str]:
        """Every way ``arch`` leaves this space, each as a short phrase; empty when it is inside."""
        out = []

        def need(label: str, value: Any, allowed: tuple) -> None:
            if value not in allowed:
                out.append(f"{label} = {value!r} is not one of {list(allowed)}")

        need("resolution", arch.resolution, self.resolutions)
        need("stem", arch.stem, self.stem_widths)
        need("stem stride", arch.stem_stride, (self.stem_stride,))
        need("head", arch.head, self.head_widths)
        need("activation", arch.act, (self.act,))
        if len(arch.stages) != len(self.stages):
            out.append(f"it has {len(arch.stages)} stages, the space {len(self.stages)}")
            return out
        for s, a in zip(self.stages, arch.stages, strict=True):
            need(f"{s.name}.depth", a.depth, s.depths)
            need(f"{s.name}.width", a.width, s.widths)
            need(f"{s.name}.stride", a.stride, (s.stride,))
            need(f"{s.name}.se", a.se, (s.se,))
            for j, lay in enumerate(a.layers, 1):
                if s.coupled:
                    need(f"{s.name}.l{j}.op", lay.code, tuple(x.code for x in s.layer_options(j == 1)))
                    continue
                need(f"{s.name}.l{j}.block", lay.block, s.blocks)
                need(f"{s.name}.l{j}.kernel", lay.kernel, s.kernels)
                need(f"{s.name}.l{j}.expand", lay.expand, s.expands)
        return out

    def contains(self, arch: Arch) -> bool:
        return not self.violations(arch)

    def check(self, arch: Arch) -> None:
        """Raise ``NasbenchError`` saying which choice is out of range when ``arch`` is not in the space."""
        bad = self.violations(arch)
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise NasbenchError(f"architecture is not in space {self.name}: {bad[0]}{more}")

    def __hash__(self) -> int:  # references is a dict; hash by identity of the source and name
        return hash((self.name, self.source))
