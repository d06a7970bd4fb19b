"""The supernet invariant: an exported subnet computes exactly what the supernet computes for it."""

import pytest
import torch

import nasbench
from nasbench.arch import Arch, Layer, Stage
from nasbench.counting import count
from nasbench.supernet import Supernet

N_SAMPLED = 20


def perturb_norms(net: torch.nn.Module) -> None:
    """Non-trivial batch-norm statistics and affine terms, so a wrong slice shows up in the outputs."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            elif hasattr(m, "transforms") and m.transforms:
                for t in m.transforms.values():  # learned kernel transforms, away from the identity
                    t.add_(0.05 * torch.randn(t.shape, generator=gen))


def invariant_archs(space):
    archs = [space.largest(), space.smallest()] + [space.sample(s) for s in range(N_SAMPLED)]
    seen = {lay.block for a in archs for st in a.stages for lay in st.layers}
    assert seen == {b for st in space.stages for b in st.blocks}, "the sampled archs must cover every block type"
    return archs


@pytest.fixture(scope="module")
def supernets():
    cache = {}

    def get(space):
        if space.name not in cache:
            torch.manual_seed(0)
            net = Supernet(space, num_classes=10).eval()
            perturb_norms(net)
            cache[space.name] = net
        return cache[space.name]

    return get


def test_exported_subnet_equals_supernet_subnet(space, supernets):
    net = supernets(space)
    # the tiny space runs at its own resolutions; the big ones at 32 px to keep the suite fast
    for arch in invariant_archs(space):
        res = arch.resolution if space.name == "tiny" else 32
        x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(1))
        net.set_active(arch)
        with torch.inference_mode():
            expected = net(x)
            got = net.export(arch).eval()(x)
        assert got.shape == (2, 10)
        assert (expected - got).abs().max().item() < 1e-5, str(arch)


def test_export_is_a_plain_model_with_its_own_weights(supernets):
    space = nasbench.load_space("tiny")
    net = supernets(space)
    arch = space.sample(3)
    static = net.export(arch)
    assert type(static).__name__ == "Net"
    assert sum(p.numel() for p in static.parameters()) == count(arch, 10).params
    with torch.no_grad():
        next(static.parameters()).add_(1.0)  # a copy: editing it leaves the supernet alone
    net.set_active(arch)
    x = torch.randn(1, 3, 32, 32)
    assert not torch.allclose(net(x), static.eval()(x))


def test_set_active_rejects_arch_outside_space():
    space = nasbench.load_space("tiny")
    net = Supernet(space, 10)
    arch = space.smallest()
    bad = Arch(
        arch.resolution,
        arch.stem,
        arch.stem_stride,
        arch.head,
        arch.act,
        (Stage(12, 1, 0.25, (Layer("mbconv", 3, 1),)),) + arch.stages[1:],
    )
    with pytest.raises(nasbench.NasbenchError, match=r"s1\.width = 12"):
        net.set_active(bad)


def test_subnet_gradients_reach_only_the_shared_slices():
    space = nasbench.load_space("tiny")
    torch.manual_seed(0)
    net = Supernet(space, 10).train()
    arch = space.smallest()
    net.set_active(arch)
    net(torch.randn(4, 3, arch.resolution, arch.resolution)).sum().backward()
    stem_grad = net.stem.conv.weight.grad
    assert stem_grad[: arch.stem].abs().sum() > 0
    assert stem_grad[arch.stem :].abs().sum() == 0
    unused = net.stages[1][1]  # smallest depth is 1: the second layer of stage 2 never ran
    assert all(p.grad is None for p in unused.parameters())


def test_batchnorm_statistics_update_only_active_channels():
    space = nasbench.load_space("tiny")
    net = Supernet(space, 10).train()
    arch = space.smallest()
    net.set_active(arch)
    before = net.stem.bn.running_mean.clone()
    net(torch.randn(8, 3, 16, 16) + 3.0)
    after = net.stem.bn.running_mean
    assert not torch.equal(before[: arch.stem], after[: arch.stem])
    assert torch.equal(before[arch.stem :], after[arch.stem :])


def test_reorder_channels_keeps_the_largest_subnet_and_sorts_by_importance():
    space = nasbench.load_space("tiny")
    torch.manual_seed(0)
    net = Supernet(space, 10).eval()
    perturb_norms(net)
    net.set_active(space.largest())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        net.reorder_channels()
        after = net(x)
    assert torch.allclose(before, after, atol=1e-5)
    block = net.stages[1][0]["mbconv"]
    importance = block.project.conv.weight.abs().sum((0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_reorder_keeps_the_hidden_channels_tied_to_the_input_at_expand_one():
    space = nasbench.load_space("tiny")
    assert 1 in space.stages[0].expands and 3 in space.stages[0].expands
    torch.manual_seed(0)
    net = Supernet(space, 10)
    block = net.stages[0][0]["mbconv"]  # expand 1 reads its first in_max hidden channels with its input's
    tied = block.in_max
    before = block.project.conv.weight.detach().clone()
    net.reorder_channels()
    after = block.project.conv.weight
    assert torch.equal(after[:, :tied], before[:, :tied])
    assert not torch.equal(after[:, tied:], before[:, tied:])
    importance = after[:, tied:].abs().sum((0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_smaller_kernel_starts_as_the_centre_of_the_largest():
    space = nasbench.load_space("tiny")
    net = Supernet(space, 10)
    dw = net.stages[1][0]["mbconv"].dw.conv
    dw.configure(dw.weight.shape[0], dw.weight.shape[0], 3)
    assert torch.equal(dw.active_weights()["weight"], dw.weight[:, :, 1:4, 1:4])


def test_cumulative_batchnorm_matches_torch_without_a_host_sync():
    """momentum None (BN recalibration's cumulative average) as nn.BatchNorm2d computes it, with the
    update factor kept a tensor: nn.BatchNorm2d reads it into Python, a sync per norm per batch on a GPU."""
    from test_shapes import HostSyncDetector

    from nasbench.supernet.ops import ElasticBatchNorm2d

    torch.manual_seed(0)
    ours, ref = ElasticBatchNorm2d(12, eps=1e-3), torch.nn.BatchNorm2d(8, eps=1e-3)
    ours.configure(8)  # the leading 8 of 12 channels
    for m in (ours, ref):
        m.momentum = None
    for i in range(4):
        x = torch.randn(5, 8, 6, 6) * (i + 1) + i
        with HostSyncDetector():
            got = ours(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.running_mean[:8], ref.running_mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.running_var[:8], ref.running_var, atol=1e-5, rtol=1e-5)
    assert torch.equal(ours.running_mean[8:], torch.zeros(4)) and torch.equal(ours.running_var[8:], torch.ones(4))
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 4
