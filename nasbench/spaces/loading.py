"""Loading a search space from YAML (``search_spaces/<name>.yaml`` or any path), validated throughout.

Widths may be written as a list of channels or as ``{mult: [...]}`` of the stage's base width, rounded as
compound scaling rounds them, so the compound points and the elastic widths agree. A stage's layers are
chosen factored (``blocks``, ``kernel``, ``expand``: every combination) or coupled (``ops``: a list of whole
layers such as ``[mb3e3, mb5e6]``, with ``first_ops`` for the stage's first layer). Every mistake raises
``NasbenchError`` with one sentence naming the file, the key path and what would be valid.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nasbench.arch import ACTIVATIONS, ATTENTION_HEAD_DIM, BLOCK_TYPES, Arch, Layer, Stage
from nasbench.errors import NasbenchError
from nasbench.spaces.space import KERNELS, CompoundPoint, SearchSpace, StageSpace, round_width


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
    STAGE = {"name", "stride", "se", "blocks", "kernel", "expand", "ops", "first_ops", "depth", "width", "base"}
    FACTORED = ("blocks", "kernel", "expand")
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

    def ops(self, node: Any, path: str) -> tuple[Layer, ...]:
        """A list of whole layers as codes (``[mb3e3, mb5e6, sk1e1]``), each checked like a factored choice."""
        if not isinstance(node, list) or not node:
            raise self.fail(path, f"must be a non-empty list of layers such as [mb3e3, mb5e6], got {node!r}")
        out = []
        for i, code in enumerate(node):
            try:
                lay = Layer.from_code(str(code))
                Arch(1, 1, 1, 1, "relu", (Stage(8, 1, 0.0, (lay,)),))  # the per-layer checks of any arch
            except NasbenchError as e:
                raise self.fail(f"{path}[{i}]", str(e).removeprefix("invalid architecture: ")) from None
            if lay.kernel not in KERNELS:
                raise self.fail(f"{path}[{i}]", f"kernel {lay.kernel} is not valid; valid values are {list(KERNELS)}")
            out.append(lay)
        return tuple(dict.fromkeys(out))

    def layer_choices(self, s: dict, path: str) -> tuple:
        """(blocks, kernels, expands, ops, first_ops) of a stage, factored or coupled (``ops``)."""
        if "ops" not in s:
            missing = [k for k in self.FACTORED if k not in s]
            if missing or "first_ops" in s:
                what = f"{path}.{missing[0]}" if missing else f"{path}.first_ops"
                raise self.fail(what, "is required" if missing else "needs ops (coupled layer choices) beside it")
            blocks = s["blocks"]
            if not isinstance(blocks, list) or not blocks:
                raise self.fail(f"{path}.blocks", f"must be a non-empty list out of {list(BLOCK_TYPES)}")
            for i, b in enumerate(blocks):
                if b not in BLOCK_TYPES:
                    raise self.fail(f"{path}.blocks[{i}]", f"unknown block type {b!r}; valid are {list(BLOCK_TYPES)}")
            kernels = self.choices(s["kernel"], f"{path}.kernel", allowed=KERNELS)
            return tuple(dict.fromkeys(blocks)), kernels, self.choices(s["expand"], f"{path}.expand"), None, None
        both = [k for k in self.FACTORED if k in s]
        if both:
            raise self.fail(f"{path}.{both[0]}", "cannot be given with ops: a stage's layers are factored or coupled")
        ops = self.ops(s["ops"], f"{path}.ops")
        first = self.ops(s["first_ops"], f"{path}.first_ops") if "first_ops" in s else None
        every = ops + (first or ())
        return (
            tuple(dict.fromkeys(lay.block for lay in every)),
            tuple(sorted({lay.kernel for lay in every})),
            tuple(sorted({lay.expand for lay in every})),
            ops,
            first,
        )

    def stage(self, node: Any, path: str, index: int, divisor: int) -> StageSpace:
        s = self.mapping(node, path, self.STAGE, {"stride", "depth", "width", "base"})
        blocks, kernels, expands, ops, first_ops = self.layer_choices(s, path)
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
            blocks=blocks,
            kernels=kernels,
            expands=expands,
            depths=self.choices(s["depth"], f"{path}.depth"),
            widths=widths,
            base=Layer(base["block"], base["kernel"], base["expand"]),
            base_depth=self.integer(base["depth"], f"{path}.base.depth"),
            base_width=base_width,
            ops=ops,
            first_ops=first_ops,
        )
        if stage.coupled:
            for first, key in ((True, "first_ops"), (False, "ops")):
                if stage.base not in stage.layer_options(first):
                    raise self.fail(
                        f"{path}.base", f"layer {stage.base.code} is not among the stage's {key}; a reference runs it"
                    )
            return stage
        for key, value, allowed in (
            ("block", stage.base.block, stage.blocks),
            ("kernel", stage.base.kernel, stage.kernels),
            ("expand", stage.base.expand, stage.expands),
        ):
            if value not in allowed:
                raise self.fail(f"{path}.base.{key}", f"{value!r} is not among the stage's choices {list(allowed)}")
        return stage
