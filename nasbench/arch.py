"""Architectures as plain frozen data.

An ``Arch`` is one point of a search space, complete enough to build a network without the space: the
input resolution, stem, head, activation and, per stage, its width, stride, squeeze-excitation ratio and
the block type, kernel and expand ratio of every layer it runs (depth is the number of layers). It is
frozen and hashable, round-trips through JSON (``to_json``/``from_json``) and through a compact readable
string (``str(arch)`` / ``Arch.parse``), and has a stable short ``id`` derived from that string.

The compact string reads like the tables in the EfficientNet papers::

    r224_stem32s2_head1280_silu|c16s1se0.25:mb3e1|c24s2se0.25:mb3e6,mb3e6|...

Header ``r<resolution>_stem<width>s<stride>_head<width>_<activation>``, then one ``|``-separated group per
stage: ``c<width>s<stride>se<ratio>:`` and its layers ``<block><kernel>e<expand>`` separated by commas,
with block codes ``mb`` (MBConv), ``fu`` (Fused-MBConv), ``dy`` (dynamic-conv MBConv), ``at`` (attention)
and ``sk`` (skip: the identity where the shape is kept, else a 1x1 conv + BN projection; always ``sk1e1``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from nasbench.errors import NasbenchError

BLOCK_TYPES = ("mbconv", "fused_mbconv", "dynconv", "attention", "skip")
BLOCK_CODES = {"mbconv": "mb", "fused_mbconv": "fu", "dynconv": "dy", "attention": "at", "skip": "sk"}
CODE_BLOCKS = {code: block for block, code in BLOCK_CODES.items()}
ACTIVATIONS = ("silu", "relu", "relu6", "hswish")
# Attention blocks use heads of a fixed size, so a narrower width simply means fewer heads (this keeps
# width elastic in the supernet: the leading channels are whole heads).
ATTENTION_HEAD_DIM = 8
DYNCONV_EXPERTS = 4  # K in Chen et al. 2020 ("Dynamic Convolution"), their default


def se_channels(in_ch: int, ratio: float) -> int:
    """Squeeze width, relative to the block's *input* channels as in EfficientNet (0 means no SE)."""
    return max(1, int(in_ch * ratio)) if ratio > 0 else 0


@dataclass(frozen=True)
class Layer:
    """One layer of a stage: which block runs, with which kernel and expand ratio."""

    block: str  # one of BLOCK_TYPES
    kernel: int  # spatial kernel of the block's main conv (attention: its local depthwise conv)
    expand: int  # expansion ratio of the inverted bottleneck (attention: MLP ratio)

    @property
    def code(self) -> str:
        """The compact form used in architecture strings and coupled op choices: ``mb3e6``."""
        return f"{BLOCK_CODES[self.block]}{self.kernel}e{self.expand}"

    @classmethod
    def from_code(cls, code: str) -> Layer:
        """Inverse of ``code``; raises ``NasbenchError`` naming the token that does not parse."""
        m = _LAYER_RE.match(code.strip())
        if not m or m.group(1) not in CODE_BLOCKS:
            raise NasbenchError(
                f"layer {code!r} does not parse; expected <block><kernel>e<expand> with block one of"
                f" {', '.join(CODE_BLOCKS)}, e.g. mb3e6"
            )
        return cls(CODE_BLOCKS[m.group(1)], int(m.group(2)), int(m.group(3)))


@dataclass(frozen=True)
class Stage:
    """A run of layers at one width; only the first layer strides and changes width."""

    width: int  # output channels of every layer in the stage
    stride: int  # stride of the stage's first layer (1 or 2)
    se: float  # squeeze-excitation ratio, relative to a block's input channels; 0 = none
    layers: tuple[Layer, ...]  # the layers that run; depth == len(layers)

    @property
    def depth(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Arch:
    """One architecture: everything ``nasbench.build`` needs, nothing it does not."""

    resolution: int  # input image side, pixels
    stem: int  # stem conv output channels
    stem_stride: int  # stem conv stride (2 for ImageNet-style inputs, 1 for tiny images)
    head: int  # channels of the final 1x1 conv before pooling
    act: str  # activation of convs and SE (attention MLPs use GELU)
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so the value stays hashable.
        stages = tuple(replace(s, layers=tuple(s.layers), se=float(s.se)) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        _check_arch(self)

    # --- identity -------------------------------------------------------------------------------------
    def __str__(self) -> str:
        head = f"r{self.resolution}_stem{self.stem}s{self.stem_stride}_head{self.head}_{self.act}"
        groups = [head]
        for s in self.stages:
            layers = ",".join(lay.code for lay in s.layers)
            groups.append(f"c{s.width}s{s.stride}se{_fmt_ratio(s.se)}:{layers}")
        return "|".join(groups)

    @property
    def id(self) -> str:
        """A stable 10-character id: the start of the SHA-1 of the compact string."""
        return hashlib.sha1(str(self).encode()).hexdigest()[:10]

    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)

    def with_resolution(self, resolution: int) -> Arch:
        return replace(self, resolution=resolution)

    # --- codecs ---------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Arch:
        """Inverse of ``str(arch)``; raises ``NasbenchError`` naming the part that does not parse."""
        return _parse(text.strip())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for s in d["stages"]:
            s["layers"] = [dict(lay) for lay in s["layers"]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        try:
            return cls(
                resolution=int(d["resolution"]),
                stem=int(d["stem"]),
                stem_stride=int(d["stem_stride"]),
                head=int(d["head"]),
                act=str(d["act"]),
                stages=tuple(
                    Stage(
                        width=int(s["width"]),
                        stride=int(s["stride"]),
                        se=float(s["se"]),
                        layers=tuple(
                            Layer(block=str(lay["block"]), kernel=int(lay["kernel"]), expand=int(lay["expand"]))
                            for lay in s["layers"]
                        ),
                    )
                    for s in d["stages"]
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise NasbenchError(f"not an architecture: missing or malformed field {e}") from None

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise NasbenchError(f"architecture JSON does not parse: {e}") from None
        if not isinstance(data, dict):
            raise NasbenchError("architecture JSON must be an object with resolution, stem, head, stages")
        return cls.from_dict(data.get("arch", data))


def _fmt_ratio(x: float) -> str:
    return f"{x:g}"


def _check_arch(a: Arch) -> None:
    """Reject values no network can have, whatever the space (the space checks its own choices)."""

    def bad(msg: str) -> None:
        raise NasbenchError(f"invalid architecture: {msg}")

    if a.resolution < 1:
        bad(f"resolution must be positive, got {a.resolution}")
    if a.stem < 1 or a.head < 1:
        bad(f"stem and head widths must be positive, got {a.stem} and {a.head}")
    if a.stem_stride not in (1, 2):
        bad(f"stem stride must be 1 or 2, got {a.stem_stride}")
    if a.act not in ACTIVATIONS:
        bad(f"activation {a.act!r} is not one of {', '.join(ACTIVATIONS)}")
    if not a.stages:
        bad("it has no stages")
    for i, s in enumerate(a.stages, 1):
        if s.width < 1:
            bad(f"stage {i} width must be positive, got {s.width}")
        if s.stride not in (1, 2):
            bad(f"stage {i} stride must be 1 or 2, got {s.stride}")
        if not 0 <= s.se < 1:
            bad(f"stage {i} se ratio must be in [0, 1), got {s.se}")
        if not s.layers:
            bad(f"stage {i} has no layers")
        for j, lay in enumerate(s.layers, 1):
            if lay.block not in BLOCK_TYPES:
                bad(f"stage {i} layer {j} block {lay.block!r} is not one of {', '.join(BLOCK_TYPES)}")
            if lay.kernel < 1 or lay.kernel % 2 == 0:
                bad(f"stage {i} layer {j} kernel must be odd and positive, got {lay.kernel}")
            if lay.expand < 1:
                bad(f"stage {i} layer {j} expand ratio must be >= 1, got {lay.expand}")
            if lay.block == "skip" and (lay.kernel, lay.expand) != (1, 1):
                bad(f"stage {i} layer {j} skip has no kernel or expand ratio: write it sk1e1")
            if lay.block == "attention" and s.width % ATTENTION_HEAD_DIM:
                bad(f"stage {i} width {s.width} runs attention, so it must be a multiple of {ATTENTION_HEAD_DIM}")


_HEAD_RE = re.compile(r"^r(\d+)_stem(\d+)s(\d+)_head(\d+)_([a-z0-9]+)$")
_STAGE_RE = re.compile(r"^c(\d+)s(\d+)se([0-9.]+):(.+)$")
_LAYER_RE = re.compile(r"^([a-z]{2})(\d+)e(\d+)$")


def _parse(text: str) -> Arch:
    groups = text.split("|")
    m = _HEAD_RE.match(groups[0])
    if not m:
        raise NasbenchError(
            f"architecture string header {groups[0]!r} does not parse; expected e.g. r224_stem32s2_head1280_silu"
        )
    stages = []
    for i, group in enumerate(groups[1:], 1):
        sm = _STAGE_RE.match(group)
        if not sm:
            raise NasbenchError(
                f"architecture string stage {i} {group!r} does not parse; expected e.g. c24s2se0.25:mb3e6"
            )
        layers = []
        for token in sm.group(4).split(","):
            try:
                layers.append(Layer.from_code(token))
            except NasbenchError as e:
                raise NasbenchError(f"architecture string stage {i}: {e}") from None
        try:
            se = float(sm.group(3))
        except ValueError:
            raise NasbenchError(f"architecture string stage {i} se ratio {sm.group(3)!r} is not a number") from None
        stages.append(Stage(int(sm.group(1)), int(sm.group(2)), se, tuple(layers)))
    return Arch(
        resolution=int(m.group(1)),
        stem=int(m.group(2)),
        stem_stride=int(m.group(3)),
        head=int(m.group(4)),
        act=m.group(5),
        stages=tuple(stages),
    )
