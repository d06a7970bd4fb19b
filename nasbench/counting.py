"""Exact parameter and MAC counts, computed analytically from an ``Arch`` (no torch, no tracing).

Unit: ``macs`` are multiply-accumulates, counted with fvcore's conventions so the figures agree with the
ones papers and model cards quote (EfficientNet-B0 at 224x224: 399.35 M; fvcore calls them "flops", but
one conv or linear "flop" there is one multiply-accumulate):

* conv, linear and matmul: one MAC per multiply-accumulate (bias adds are free);
* scaled-dot-product attention: the two matmuls, ``2 * N^2 * C`` (fvcore needs a handle for it);
* batch norm at inference: 2 per element; layer norm: 5 per element; adaptive average pool: 1 per input
  element. Activations, the SE squeeze (a mean) and elementwise products are free.

``parts`` breaks the totals down by stem, stage and head; ``by_op`` by the categories above. Tests check
``macs`` against fvcore's traced count and the conv/linear share against thop, and ``params`` against
``sum(p.numel())`` of the built model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from nasbench.arch import DYNCONV_EXPERTS, Arch, Layer, se_channels


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    parts: dict[str, tuple[int, int]] = field(hash=False)  # part name -> (params, macs)
    by_op: dict[str, int] = field(hash=False)  # conv, linear, matmul, attention, norm, pool -> macs


class _Tally:
    def __init__(self) -> None:
        self.part = ""
        self.params: dict[str, int] = defaultdict(int)
        self.macs: dict[str, int] = defaultdict(int)
        self.by_op: dict[str, int] = defaultdict(int)

    def add(self, op: str, macs: int, params: int = 0) -> None:
        self.macs[self.part] += macs
        self.params[self.part] += params
        self.by_op[op] += macs

    def conv(self, cin: int, cout: int, k: int, hw: int, groups: int = 1, bias: bool = False) -> None:
        self.add(
            "conv", cout * (cin // groups) * k * k * hw * hw, cout * (cin // groups) * k * k + (cout if bias else 0)
        )

    def bn(self, ch: int, hw: int) -> None:
        self.add("norm", 2 * ch * hw * hw, 2 * ch)

    def conv_bn(self, cin: int, cout: int, k: int, hw: int, groups: int = 1) -> None:
        self.conv(cin, cout, k, hw, groups)
        self.bn(cout, hw)

    def linear(self, fin: int, fout: int, tokens: int = 1) -> None:
        self.add("linear", tokens * fin * fout, fin * fout + fout)

    def layer_norm(self, ch: int, tokens: int) -> None:
        self.add("norm", 5 * ch * tokens, 2 * ch)


def _out(hw: int, stride: int) -> int:
    return (hw - 1) // stride + 1  # a k x k conv with padding k // 2, k odd


def _mbconv(t: _Tally, cin: int, cout: int, lay: Layer, stride: int, se: float, hw: int, dynamic: bool) -> None:
    mid, k, ho = cin * lay.expand, lay.kernel, _out(hw, stride)
    if lay.expand != 1:
        t.conv_bn(cin, mid, 1, hw)
    if dynamic:
        hidden = max(4, mid // 4)
        t.linear(mid, hidden)
        t.linear(hidden, DYNCONV_EXPERTS)
        t.add("matmul", DYNCONV_EXPERTS * mid * k * k, DYNCONV_EXPERTS * mid * k * k)  # mix the experts
        t.add("conv", mid * k * k * ho * ho)
        t.bn(mid, ho)
    else:
        t.conv_bn(mid, mid, k, ho, groups=mid)
    reduced = se_channels(cin, se)
    if reduced:
        t.conv(mid, reduced, 1, 1, bias=True)
        t.conv(reduced, mid, 1, 1, bias=True)
    t.conv_bn(mid, cout, 1, ho)


def _fused(t: _Tally, cin: int, cout: int, lay: Layer, stride: int, hw: int) -> None:
    ho = _out(hw, stride)
    if lay.expand != 1:
        t.conv_bn(cin, cin * lay.expand, lay.kernel, ho)
        t.conv_bn(cin * lay.expand, cout, 1, ho)
    else:
        t.conv_bn(cin, cout, lay.kernel, ho)


def _attention(t: _Tally, cin: int, cout: int, lay: Layer, stride: int, hw: int) -> None:
    ho = _out(hw, stride)
    n = ho * ho
    t.conv_bn(cin, cin, lay.kernel, ho, groups=cin)
    t.conv_bn(cin, cout, 1, ho)
    t.layer_norm(cout, n)
    t.linear(cout, 3 * cout, n)
    t.add("attention", 2 * n * n * cout)
    t.linear(cout, cout, n)
    t.layer_norm(cout, n)
    t.linear(cout, cout * lay.expand, n)
    t.linear(cout * lay.expand, cout, n)


@dataclass(frozen=True)
class LayerConfig:
    """One layer as a cost model sees it: everything its parameters, MACs and latency depend on.

    ``kind`` is ``stem``, ``head`` or a block type. Equal configs cost the same wherever they occur, which
    is what a latency lookup table keys on.
    """

    kind: str
    cin: int
    cout: int
    kernel: int = 1
    expand: int = 1
    stride: int = 1
    se: float = 0.0
    size: int = 1  # input height = width
    act: str = "silu"
    num_classes: int = 0  # head only

    @property
    def out_size(self) -> int:
        return _out(self.size, self.stride)


def decompose(arch: Arch, num_classes: int = 1000) -> list[tuple[str, LayerConfig]]:
    """The layers of ``build(arch)`` in order, each with the part (stem, s1.., head) it belongs to."""
    hw = arch.resolution
    out = [("stem", LayerConfig("stem", 3, arch.stem, 3, 1, arch.stem_stride, 0.0, hw, arch.act))]
    hw, cin = _out(hw, arch.stem_stride), arch.stem
    for i, stage in enumerate(arch.stages, 1):
        for j, lay in enumerate(stage.layers):
            stride = stage.stride if j == 0 else 1
            cfg = LayerConfig(lay.block, cin, stage.width, lay.kernel, lay.expand, stride, stage.se, hw, arch.act)
            out.append((f"s{i}", cfg))
            hw, cin = _out(hw, stride), stage.width
    out.append(("head", LayerConfig("head", cin, arch.head, 1, 1, 1, 0.0, hw, arch.act, num_classes)))
    return out


def _tally_layer(t: _Tally, c: LayerConfig) -> None:
    lay = Layer(c.kind, c.kernel, c.expand) if c.kind not in ("stem", "head") else None
    if c.kind == "stem":
        t.conv_bn(3, c.cout, c.kernel, c.out_size)
    elif c.kind == "head":
        t.conv_bn(c.cin, c.cout, 1, c.size)
        t.add("pool", c.cout * c.size * c.size)
        t.linear(c.cout, c.num_classes)
    elif c.kind in ("mbconv", "dynconv"):
        _mbconv(t, c.cin, c.cout, lay, c.stride, c.se, c.size, dynamic=c.kind == "dynconv")
    elif c.kind == "skip":
        if c.stride != 1 or c.cin != c.cout:
            t.conv_bn(c.cin, c.cout, 1, c.out_size)
    elif c.kind == "fused_mbconv":
        _fused(t, c.cin, c.cout, lay, c.stride, c.size)
    else:
        _attention(t, c.cin, c.cout, lay, c.stride, c.size)


def layer_cost(cfg: LayerConfig) -> tuple[int, int]:
    """``(params, macs)`` of one layer."""
    t = _Tally()
    _tally_layer(t, cfg)
    return sum(t.params.values()), sum(t.macs.values())


def count(arch: Arch, num_classes: int = 1000) -> Cost:
    """Parameters and MACs of ``build(arch, num_classes)`` for one image at ``arch.resolution``."""
    t = _Tally()
    for part, cfg in decompose(arch, num_classes):
        t.part = part
        _tally_layer(t, cfg)
    parts = {name: (t.params[name], t.macs[name]) for name in t.macs}
    return Cost(params=sum(t.params.values()), macs=sum(t.macs.values()), parts=parts, by_op=dict(t.by_op))
