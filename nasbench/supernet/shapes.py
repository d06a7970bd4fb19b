"""The convolution shapes a network runs, observed and derived from a space's choices.

cuDNN does per-shape work (an execution plan, with ``torch.backends.cudnn.benchmark`` a timing run) the
first time it meets a (input shape, weight shape, stride, groups) combination; a supernet that keeps
producing new ones never gets past that work. ``ConvShapeRecorder`` records what actually runs;
``possible_conv_shapes`` is every shape a space's subnets can run, built from its choices alone: input
resolutions, stem/head/stage widths, expand ratios, kernels and strides. The supernet stays inside that
set by design (elastic kernels are the centre of the largest, transformed, at the space's kernel sizes;
channels are the leading ones, at the space's widths; the dynamic conv's groups are its channels, not
batch x channels), which is what the tests check.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from nasbench.arch import Arch, se_channels
from nasbench.spaces.space import SearchSpace, StageSpace
from nasbench.supernet.supernet import Supernet

ConvShape = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]  # input, weight, stride, groups


class ConvShapeRecorder(TorchDispatchMode):
    """Records the shape of every forward convolution run inside it (``with ConvShapeRecorder() as rec``).

    A dispatch mode, not module hooks, so it sees the convs that functions run (the dynamic conv's
    experts) as well as modules', exactly as the backend receives them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[ConvShape] = set()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            x, weight, stride, groups = args[0], args[1], args[3], args[8]
            self.shapes.add((tuple(x.shape), tuple(weight.shape), tuple(stride), groups))
            self.calls += 1
        return func(*args, **(kwargs or {}))


def _out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # an odd k x k conv with padding k // 2


def _conv(batch: int, cin: int, size: int, cout: int, kernel: int, stride: int, groups: int = 1) -> ConvShape:
    return (batch, cin, size, size), (cout, cin // groups, kernel, kernel), (stride, stride), groups


def _block_convs(block: str, batch: int, cin: int, cout: int, kernel: int, expand: int, stride: int, size: int, se):
    """The convs one block runs, in the order it runs them (mirrors ``nasbench.blocks``)."""
    out = _out(size, stride)
    if block in ("mbconv", "dynconv"):
        mid, reduced = cin * expand, se_channels(cin, se)
        if expand != 1:
            yield _conv(batch, cin, size, mid, 1, 1)
        yield (batch, mid, size, size), (mid, 1, kernel, kernel), (stride, stride), mid  # dynconv: K of these
        if reduced:
            yield _conv(batch, mid, 1, reduced, 1, 1)
            yield _conv(batch, reduced, 1, mid, 1, 1)
        yield _conv(batch, mid, out, cout, 1, 1)
    elif block == "skip":
        if stride != 1 or cin != cout:
            yield _conv(batch, cin, size, cout, 1, stride)
    elif block == "fused_mbconv":
        if expand == 1:
            yield _conv(batch, cin, size, cout, kernel, stride)
        else:
            yield _conv(batch, cin, size, cin * expand, kernel, stride)
            yield _conv(batch, cin * expand, out, cout, 1, 1)
    else:  # attention: local depthwise conv, then the 1x1 to the output width
        yield _conv(batch, cin, size, cin, kernel, stride, groups=cin)
        yield _conv(batch, cin, out, cout, 1, 1)


def _layer_positions(space: SearchSpace, resolution: int) -> Iterator[tuple[StageSpace, bool, int, int]]:
    """Every layer position: (its stage's choices, whether it is the stage's first, stride, input size)."""
    size = _out(resolution, space.stem_stride)
    for stage in space.stages:
        yield stage, True, stage.stride, size
        size = _out(size, stage.stride)
        for _ in range(1, max(stage.depths)):
            yield stage, False, 1, size


def possible_conv_shapes(space: SearchSpace, batch: int) -> set[ConvShape]:
    """Every conv shape some subnet of ``space`` runs at ``batch`` (an upper bound on what training meets)."""
    shapes: set[ConvShape] = set()
    for res in space.resolutions:
        shapes |= {_conv(batch, 3, res, w, 3, space.stem_stride) for w in space.stem_widths}
        cins = space.stem_widths
        for stage, first, stride, size in _layer_positions(space, res):
            for cout, x in itertools.product(stage.widths, stage.layer_options(first)):
                for cin in cins if first else (cout,):  # later positions read the stage's own width
                    shapes.update(_block_convs(x.block, batch, cin, cout, x.kernel, x.expand, stride, size, stage.se))
            cins = stage.widths
        size = functools.reduce(_out, [space.stem_stride, *(s.stride for s in space.stages)], res)
        shapes |= {_conv(batch, w, size, h, 1, 1) for w in cins for h in space.head_widths}
    return shapes


def forward_conv_shapes(space: SearchSpace, archs: Iterable[Arch], batch: int) -> set[ConvShape]:
    """The conv shapes the supernet's forward runs for ``archs`` at ``batch``, each at its resolution.

    Run on the meta device (shapes need no values, so nothing is computed). The sandwich step's forward
    convs are exactly these (its input is resized to each subnet's resolution); backward convs repeat them.
    """
    res = max(space.resolutions)
    with torch.device("meta"):
        net = Supernet(space, num_classes=10).train()
        images = torch.empty(batch, 3, res, res)
    with ConvShapeRecorder() as rec, torch.no_grad():
        for arch in set(archs):
            net.set_active(arch)
            net(F.interpolate(images, size=(arch.resolution, arch.resolution), mode="bilinear"))
    return rec.shapes
