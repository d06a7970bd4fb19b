import pytest
import torch

import nasbench
from nasbench.arch import BLOCK_TYPES, DYNCONV_EXPERTS
from nasbench.blocks import mixed_depthwise_conv
from nasbench.build import build


def archs_covering_every_block(space, n=3):
    archs = [space.sample(seed) for seed in range(n)] + [space.smallest()]
    seen = {lay.block for a in archs for s in a.stages for lay in s.layers}
    allowed = {b for s in space.stages for b in s.blocks}
    seed = n
    while seen != allowed and seed < 500:  # keep sampling until every block type the space allows ran
        a = space.sample(seed)
        new = {lay.block for s in a.stages for lay in s.layers} - seen
        if new:
            archs.append(a)
            seen |= new
        seed += 1
    assert seen == allowed
    return archs


def forward_ok(arch, res):
    model = build(arch.with_resolution(res), num_classes=7).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, res, res))
    return out.shape == (1, 7) and bool(torch.isfinite(out).all())


def test_forward_every_block_type_at_the_space_resolutions(space):
    torch.manual_seed(0)
    for i, arch in enumerate(archs_covering_every_block(space)):
        # the big spaces run at their smallest resolutions to keep the suite fast (the slow test runs all)
        res = arch.resolution if space.name == "tiny" else space.resolutions[i % 2 % len(space.resolutions)]
        assert forward_ok(arch, res), str(arch)


@pytest.mark.slow
def test_forward_largest_at_every_resolution(space):
    for res in space.resolutions:
        assert forward_ok(space.largest(), res)


def test_tiny_runs_every_block_type():
    space = nasbench.load_space("tiny")  # all but skip, which nas-bench-macro's first layers run
    assert {b for s in space.stages for b in s.blocks} == set(BLOCK_TYPES) - {"skip"}
    assert "skip" in nasbench.load_space("nas-bench-macro").stages[0].blocks


def test_attention_runs_at_any_resolution():
    space = nasbench.load_space("tiny")
    arch = next(
        a
        for a in (space.sample(s) for s in range(200))
        if any(lay.block == "attention" for st in a.stages for lay in st.layers)
    )
    model = build(arch, 10).eval()
    for res in space.resolutions:
        assert model(torch.randn(1, 3, res, res)).shape == (1, 10)


def test_build_is_pure_and_training_options_work():
    arch = nasbench.load_space("tiny").reference("tiny_ref")
    before = str(arch)
    model = build(arch, 10, drop_path=0.2, dropout=0.3).train()
    loss = model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
    loss.backward()
    assert str(arch) == before
    assert model.dropout.p == 0.3
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_drop_path_changes_training_output_only():
    arch = nasbench.load_space("tiny").reference("tiny_ref")
    torch.manual_seed(0)
    model = build(arch, 10, drop_path=0.5)
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    c = model(x)
    torch.manual_seed(2)
    d = model(x)
    assert not torch.allclose(c, d)


@pytest.mark.parametrize(
    "space_name, ref, params",
    [
        ("efficientnet", "b0", 5_288_548),
        ("efficientnet", "b1", 7_794_184),  # b1..b3: torchvision's efficientnet_b1..b3
        ("efficientnet", "b2", 9_109_994),
        ("efficientnet", "b3", 12_233_232),
        ("efficientnetv2", "v2_s", 21_458_488),
        ("mobile", "mobilenetv2", 3_504_872),
    ],
)
def test_reference_networks_have_the_published_parameter_counts(space_name, ref, params):
    arch = nasbench.load_space(space_name).reference(ref)
    assert sum(p.numel() for p in build(arch, 1000).parameters()) == params


def test_b0_at_ten_classes():
    arch = nasbench.load_space("efficientnet").reference("b0")
    assert sum(p.numel() for p in build(arch, 10).parameters()) == 4_020_358


def batch_folded_depthwise_conv(x, pi, experts, stride):
    """The former ``mixed_depthwise_conv``, kept as the reference: mix the kernels per sample, then run
    them as one grouped conv with the batch folded into the channels (``groups = batch x channels``)."""
    b, c, h, w = x.shape
    k = experts.shape[-1]
    kernels = torch.mm(pi, experts.flatten(1)).view(b * c, 1, k, k)
    y = torch.nn.functional.conv2d(x.reshape(1, b * c, h, w), kernels, None, stride, k // 2, groups=b * c)
    return y.view(b, c, y.shape[2], y.shape[3])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("batch", [1, 5])  # one sample mixes the kernels; a batch mixes the experts' outputs
def test_mixed_depthwise_conv_equals_the_batch_folded_conv(batch, stride, kernel, channels_last):
    gen = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randn(batch, 12, 13, 13, generator=gen)
    pi = torch.softmax(3 * torch.randn(batch, DYNCONV_EXPERTS, generator=gen), dim=1)
    experts = torch.randn(DYNCONV_EXPERTS, 12, kernel, kernel, generator=gen)
    expected = batch_folded_depthwise_conv(x, pi, experts, stride)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = mixed_depthwise_conv(x, pi, experts, stride)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last  # the layout is kept


@pytest.mark.parametrize("batch", [1, 3])
def test_mixed_depthwise_conv_gradients_equal_the_batch_folded_conv(batch):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 8, 9, 9, generator=gen)
    logits = torch.randn(batch, DYNCONV_EXPERTS, generator=gen)
    experts = torch.randn(DYNCONV_EXPERTS, 8, 5, 5, generator=gen)
    grads = []
    for conv in (batch_folded_depthwise_conv, mixed_depthwise_conv):
        leaves = [t.clone().requires_grad_() for t in (x, logits, experts)]
        conv(leaves[0], torch.softmax(leaves[1], dim=1), leaves[2], 1).square().sum().backward()
        grads.append([t.grad for t in leaves])
    for ref, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5)


def test_blocks_take_keyword_arguments():
    """Eight same-typed positional arguments are easy to swap unnoticed: blocks take them by name."""
    from nasbench.blocks import BLOCKS
    from nasbench.supernet.blocks import make_elastic_block

    shape = {"kernel": 3, "expand": 4, "stride": 1, "se": 0.25, "act": "silu"}
    for kind, cls in BLOCKS.items():
        with pytest.raises(TypeError):
            cls(16, 16, 3, 4, 1, 0.25, "silu")
        assert isinstance(cls(in_ch=16, out_ch=16, **shape), cls)
        elastic = make_elastic_block(kind, in_max=16, out_max=16, kernels=[3], expands=[4], stride=1, se=0.25,
                                     act="silu")  # fmt: skip
        assert callable(elastic.zero_init_residual)  # each block owns its zero-init
