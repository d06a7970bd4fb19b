"""Search spaces: labelled choices over architectures, loaded from YAML, torch-free.

A space file (``search_spaces/<name>.yaml`` or any path) lists stages; per stage the allowed block types,
kernels and expand ratios (chosen per layer), and the depth and width choices (chosen per stage); globally
the input resolutions and stem and head widths. Each stage also names a ``base`` configuration, and the
``references`` section names compound-scaled points of that base the way EfficientNet defines them:
widths scaled and rounded to multiples of ``compound.divisor`` (never down by more than 10%), repeats
scaled and rounded up. Widths may be written as a list of channels or as ``{mult: [...]}`` of the base,
rounded the same way, so the compound points and the elastic widths agree.

Loading validates everything and raises ``NasbenchError`` with one sentence naming the file, the key path
and what would be valid. See ``docs`` in the README for the full schema.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nasbench.arch import ACTIVATIONS, ATTENTION_HEAD_DIM, BLOCK_TYPES, Arch, Layer, Stage
from nasbench.errors import NasbenchError

# Order used by ``largest``/``smallest`` to pick a block type: by parameter count at equal kernel, expand
# and width (attention carries qkv, output and MLP projections; Fused-MBConv a full kxk conv).
BLOCK_SIZE_RANK = {"mbconv": 0, "dynconv": 1, "attention": 2, "fused_mbconv": 3}
KERNELS = (1, 3, 5, 7, 9)


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
    name: str
    stride: int
    se: float
    blocks: tuple[str, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    base: Layer  # the reference layer of this stage
    base_depth: int
    base_width: int

    @property
    def layer_choices(self) -> int:
        return len(self.blocks) * len(self.kernels) * len(self.expands)


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
                dims += [
                    Dimension(f"{s.name}.l{j}.block", s.blocks),
                    Dimension(f"{s.name}.l{j}.kernel", s.kernels),
                    Dimension(f"{s.name}.l{j}.expand", s.expands),
                ]
        return dims

    @property
    def size(self) -> int:
        """Number of distinct architectures (layers beyond a stage's depth do not count)."""
        n = len(self.resolutions) * len(self.stem_widths) * len(self.head_widths)
        for s in self.stages:
            n *= len(s.widths) * sum(s.layer_choices**d for d in s.depths)
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
                    Layer(
                        choices[f"{s.name}.l{j}.block"],
                        choices[f"{s.name}.l{j}.kernel"],
                        choices[f"{s.name}.l{j}.expand"],
                    )
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
                lay = a.layers[j - 1] if j <= a.depth else Layer(s.blocks[0], s.kernels[0], s.expands[0])
                choices.update(
                    {
                        f"{s.name}.l{j}.block": lay.block,
                        f"{s.name}.l{j}.kernel": lay.kernel,
                        f"{s.name}.l{j}.expand": lay.expand,
                    }
                )
        return choices

    def sample(self, seed: int | random.Random) -> Arch:
        """A uniform choice per dimension, from an explicit seed or generator."""
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return self.decode({d.label: rng.choice(d.choices) for d in self.dimensions()})

    def _extreme(self, pick: Any) -> Arch:
        choices: dict[str, Any] = {}
        for d in self.dimensions():
            key = (lambda b: BLOCK_SIZE_RANK[b]) if d.label.endswith(".block") else None
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


# ------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------


def shipped_spaces() -> list[str]:
    """Names of the spaces that ship with nasbench."""
    root = resources.files("nasbench.search_spaces")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a shipped space by name (``efficientnet``) or a user's YAML file by path, fully validated."""
    text, source = _read_space_text(str(name_or_path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise NasbenchError(f"search space {source}: YAML does not parse{where}: {problem}") from None
    return _Parser(source).space(data)


def _read_space_text(name_or_path: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise NasbenchError(f"search space file {name_or_path} does not exist")
        return path.read_text(), str(path)
    resource = resources.files("nasbench.search_spaces") / f"{name_or_path}.yaml"
    if not resource.is_file():
        raise NasbenchError(
            f"unknown search space {name_or_path!r}; shipped spaces are {', '.join(shipped_spaces())},"
            " or pass a path to a YAML file"
        )
    return resource.read_text(), name_or_path


class _Parser:
    """Turns the YAML tree into a ``SearchSpace``; every error names the file and the key path."""

    TOP = {"name", "description", "activation", "resolution", "compound", "stem", "head", "stages", "references"}
    STAGE = {"name", "stride", "se", "blocks", "kernel", "expand", "depth", "width", "base"}
    BASE = {"block", "kernel", "expand", "depth", "width"}

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> NasbenchError:
        return NasbenchError(f"search space {self.source}: {path}: {message}")

    def mapping(self, node: Any, path: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(node, dict):
            raise self.fail(path, f"must be a mapping with keys {sorted(allowed)}, got {type(node).__name__}")
        for key in node:
            if key not in allowed:
                raise self.fail(f"{path}.{key}" if path else str(key), f"unknown key; valid keys are {sorted(allowed)}")
        for key in sorted(required):
            if key not in node:
                raise self.fail(f"{path}.{key}" if path else key, "is required")
        return node

    def integer(self, node: Any, path: str, *, minimum: int = 1, allowed: tuple | None = None) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            raise self.fail(path, f"must be an integer, got {node!r}")
        if allowed is not None and node not in allowed:
            raise self.fail(path, f"{node} is not valid; valid values are {list(allowed)}")
        if node < minimum:
            raise self.fail(path, f"must be at least {minimum}, got {node}")
        return node

    def number(self, node: Any, path: str, lo: float, hi: float) -> float:
        if isinstance(node, bool) or not isinstance(node, (int, float)) or not lo <= node < hi:
            raise self.fail(path, f"must be a number in [{lo}, {hi}), got {node!r}")
        return float(node)

    def choices(self, node: Any, path: str, **kw: Any) -> tuple[int, ...]:
        if not isinstance(node, list) or not node:
            raise self.fail(path, f"must be a non-empty list of choices, got {node!r}")
        values = [self.integer(v, f"{path}[{i}]", **kw) for i, v in enumerate(node)]
        return tuple(sorted(set(values)))

    def widths(self, node: Any, path: str, base: int, divisor: int) -> tuple[int, ...]:
        """A list of channel counts, or ``{mult: [...]}`` multiples of ``base`` rounded like EfficientNet."""
        if isinstance(node, dict):
            self.mapping(node, path, {"mult"}, {"mult"})
            mults = node["mult"]
            if not isinstance(mults, list) or not mults:
                raise self.fail(f"{path}.mult", f"must be a non-empty list of multipliers, got {mults!r}")
            return tuple(
                sorted(
                    {
                        round_width(base * self.number(m, f"{path}.mult[{i}]", 0.01, 100), divisor)
                        for i, m in enumerate(mults)
                    }
                )
            )
        return self.choices(node, path)

    def space(self, data: Any) -> SearchSpace:
        d = self.mapping(data, "", self.TOP, {"name", "resolution", "stem", "head", "stages"})
        name = d["name"]
        if not isinstance(name, str) or not name:
            raise self.fail("name", f"must be a non-empty string, got {name!r}")
        act = d.get("activation", "silu")
        if act not in ACTIVATIONS:
            raise self.fail("activation", f"{act!r} is not valid; valid values are {list(ACTIVATIONS)}")
        compound = self.mapping(d.get("compound", {}), "compound", {"divisor"}, set())
        divisor = self.integer(compound.get("divisor", 8), "compound.divisor")
        resolutions = self.choices(d["resolution"], "resolution", minimum=8)

        stem = self.mapping(d["stem"], "stem", {"base", "width", "stride"}, {"base"})
        stem_base = self.integer(stem["base"], "stem.base")
        stem_widths = self.widths(stem.get("width", [stem_base]), "stem.width", stem_base, divisor)
        stem_stride = self.integer(stem.get("stride", 2), "stem.stride", allowed=(1, 2))
        head = self.mapping(d["head"], "head", {"base", "width"}, {"base"})
        head_base = self.integer(head["base"], "head.base")
        head_widths = self.widths(head.get("width", [head_base]), "head.width", head_base, divisor)

        if not isinstance(d["stages"], list) or not d["stages"]:
            raise self.fail("stages", "must be a non-empty list of stages")
        stages = tuple(self.stage(s, f"stages[{i}]", i + 1, divisor) for i, s in enumerate(d["stages"]))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise self.fail("stages", f"stage names must be unique, got {names}")

        references = {}
        refs = d.get("references", {}) or {}
        if not isinstance(refs, dict):
            raise self.fail("references", "must be a mapping of name to {width, depth, resolution}")
        for ref_name, ref in refs.items():
            path = f"references.{ref_name}"
            r = self.mapping(ref, path, {"width", "depth", "resolution"}, {"resolution"})
            references[str(ref_name)] = CompoundPoint(
                width=self.number(r.get("width", 1.0), f"{path}.width", 0.01, 100),
                depth=self.number(r.get("depth", 1.0), f"{path}.depth", 0.01, 100),
                resolution=self.integer(r["resolution"], f"{path}.resolution", minimum=8),
            )
        space = SearchSpace(
            name=name,
            description=str(d.get("description", "")).strip(),
            source=self.source,
            act=act,
            resolutions=resolutions,
            stem_widths=stem_widths,
            stem_stride=stem_stride,
            stem_base=stem_base,
            head_widths=head_widths,
            head_base=head_base,
            divisor=divisor,
            stages=stages,
            references=references,
        )
        for ref_name in references:
            bad = space.violations(space.reference(ref_name))
            if bad:
                raise self.fail(f"references.{ref_name}", f"the compound-scaled point leaves the space: {bad[0]}")
        return space

    def stage(self, node: Any, path: str, index: int, divisor: int) -> StageSpace:
        s = self.mapping(node, path, self.STAGE, {"stride", "blocks", "kernel", "expand", "depth", "width", "base"})
        blocks = s["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise self.fail(f"{path}.blocks", f"must be a non-empty list out of {list(BLOCK_TYPES)}")
        for i, b in enumerate(blocks):
            if b not in BLOCK_TYPES:
                raise self.fail(f"{path}.blocks[{i}]", f"unknown block type {b!r}; valid are {list(BLOCK_TYPES)}")
        base = self.mapping(s["base"], f"{path}.base", self.BASE, self.BASE)
        base_width = self.integer(base["width"], f"{path}.base.width")
        widths = self.widths(s["width"], f"{path}.width", base_width, divisor)
        if "attention" in blocks:
            for w in widths:
                if w % ATTENTION_HEAD_DIM:
                    raise self.fail(
                        f"{path}.width",
                        f"width {w} cannot run attention (heads of {ATTENTION_HEAD_DIM} channels); "
                        f"use multiples of {ATTENTION_HEAD_DIM}",
                    )
        stage = StageSpace(
            name=str(s.get("name", f"s{index}")),
            stride=self.integer(s["stride"], f"{path}.stride", allowed=(1, 2)),
            se=self.number(s.get("se", 0.0), f"{path}.se", 0.0, 1.0),
            blocks=tuple(dict.fromkeys(blocks)),
            kernels=self.choices(s["kernel"], f"{path}.kernel", allowed=KERNELS),
            expands=self.choices(s["expand"], f"{path}.expand"),
            depths=self.choices(s["depth"], f"{path}.depth"),
            widths=widths,
            base=Layer(base["block"], base["kernel"], base["expand"]),
            base_depth=self.integer(base["depth"], f"{path}.base.depth"),
            base_width=base_width,
        )
        for key, value, allowed in (
            ("block", stage.base.block, stage.blocks),
            ("kernel", stage.base.kernel, stage.kernels),
            ("expand", stage.base.expand, stage.expands),
        ):
            if value not in allowed:
                raise self.fail(f"{path}.base.{key}", f"{value!r} is not among the stage's choices {list(allowed)}")
        return stage
