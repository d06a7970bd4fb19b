"""Analytic counts against tracers: fvcore (every block type) and thop (conv/linear-only archs)."""

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from thop import profile
from torch import nn

import nasbench
from nasbench.arch import Arch, Layer
from nasbench.build import build
from nasbench.counting import count

N_ARCHS = 20


def sdpa_macs(inputs, outputs):
    """fvcore skips scaled_dot_product_attention; count its two matmuls (QK^T and AV)."""
    b, h, n, d = get_shape(inputs[0])
    m = get_shape(inputs[1])[2]
    return 2 * b * h * n * m * d


def fvcore_macs(model, res):
    fca = FlopCountAnalysis(model.eval(), torch.randn(1, 3, res, res))
    fca.set_op_handle("aten::scaled_dot_product_attention", sdpa_macs)
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    return fca.total()


def test_b0_matches_the_standard_figure():
    b0 = nasbench.load_space("efficientnet").reference("b0")
    cost = count(b0, 1000)
    assert cost.params == 5_288_548
    assert round(cost.macs / 1e6, 2) == 399.35
    assert fvcore_macs(build(b0, 1000), 224) == cost.macs
    assert sum(m for _, m in cost.parts.values()) == cost.macs == sum(cost.by_op.values())


def test_analytic_matches_fvcore_for_sampled_archs(space):
    # The counts are formulas in the resolution, so the big spaces are traced at 32 px to stay fast; the
    # slow test below repeats this at each space's own smallest resolution, and B0 runs at 224 above.
    check_against_fvcore(space, 32 if space.name != "tiny" else min(space.resolutions))


@pytest.mark.slow
def test_analytic_matches_fvcore_at_space_resolution(space):
    check_against_fvcore(space, min(space.resolutions))


def check_against_fvcore(space, res):
    for seed in range(N_ARCHS):
        arch = space.sample(seed).with_resolution(res)
        model = build(arch, 10)
        cost = count(arch, 10)
        assert cost.params == sum(p.numel() for p in model.parameters()), str(arch)
        traced = fvcore_macs(model, res)
        assert abs(cost.macs - traced) <= 0.01 * traced, (str(arch), cost.macs, traced)


def conv_linear_only(arch: Arch) -> Arch:
    stages = tuple(
        s.__class__(
            s.width,
            s.stride,
            s.se,
            tuple(
                Layer("mbconv" if lay.block in ("dynconv", "attention") else lay.block, lay.kernel, lay.expand)
                for lay in s.layers
            ),
        )
        for s in arch.stages
    )
    return Arch(arch.resolution, arch.stem, arch.stem_stride, arch.head, arch.act, stages)


def zero(module, inputs, output):
    module.total_ops += torch.zeros(1, dtype=torch.float64)


@pytest.mark.parametrize("space_name", ["tiny", "mobile", "efficientnet"])
def test_conv_and_linear_macs_match_thop(space_name):
    space = nasbench.load_space(space_name)
    free = {m: zero for m in (nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.SiLU, nn.ReLU6, nn.ReLU, nn.Dropout)}
    for seed in range(5):
        arch = conv_linear_only(space.sample(seed)).with_resolution(min(space.resolutions))
        model = build(arch, 10).eval()
        macs, params = profile(
            model, inputs=(torch.randn(1, 3, arch.resolution, arch.resolution),), custom_ops=free, verbose=False
        )
        cost = count(arch, 10)
        expected = cost.by_op["conv"] + cost.by_op["linear"]
        assert abs(macs - expected) <= 0.01 * expected, (str(arch), macs, expected)
        assert params == cost.params


def test_costs_grow_with_every_dimension():
    space = nasbench.load_space("efficientnet")
    b0 = space.reference("b0")
    base = count(b0).macs
    assert count(b0.with_resolution(260)).macs > base
    assert count(space.reference("b1")).macs > base
    assert count(space.largest()).macs > count(space.reference("b3")).macs > count(space.smallest()).macs


def test_layer_costs_add_up_to_the_arch_cost(space):
    from nasbench.counting import decompose, layer_cost

    for seed in range(5):
        arch = space.sample(seed)
        layers = decompose(arch, 10)
        assert layers[0][1].kind == "stem" and layers[-1][1].kind == "head"
        assert len(layers) == arch.depth + 2
        total = [sum(x) for x in zip(*(layer_cost(cfg) for _, cfg in layers), strict=True)]
        cost = count(arch, 10)
        assert total == [cost.params, cost.macs]
