"""Channel re-ordering changes nothing it should not: every subnet whose hidden channels the sort maps onto
themselves (all of a block's hidden channels, or at expand 1 those tied to the block's input) computes the
same outputs, in every shipped space; and the optimizer's state moves with the weights (a step after
re-ordering equals the re-ordered step).

A subnet that keeps only the leading hidden channels (a smaller expand, or a narrower input) does change:
it keeps the most important channels after the sort, which is what the sort is for."""

import copy
from dataclasses import replace

import pytest
import torch

import nasbench
from nasbench.arch import Arch
from nasbench.supernet import Supernet
from nasbench.training import TrainConfig, make_optimizer, sandwich_step
from nasbench.training.optim import reorder_channels
from tests.test_supernet import perturb_norms

N_SAMPLED = 4


def expands_of(choices, block: str, first: bool) -> tuple[int, ...]:
    """The expand ratios ``block`` may run with at a stage's first (or a later) layer."""
    return choices.position_blocks(first).get(block, ((), ()))[1]


def full_hidden(arch: Arch, space, expand_one: bool = False) -> Arch:
    """``arch`` at every maximal width and expand, so each block uses all of its hidden channels.

    With ``expand_one``, layers of stages that allow expand 1 alternate between MBConv and dynamic-conv
    MBConv at expand 1, where the hidden channels are the block's input channels. Layers of coupled stages
    keep their block and take its largest expand at their position.
    """
    stages = []
    for stage, choices in zip(arch.stages, space.stages, strict=True):
        tied = [b for b in ("mbconv", "dynconv") if 1 in expands_of(choices, b, False)] if expand_one else []
        layers = tuple(
            replace(layer, block=tied[j % len(tied)], expand=1)
            if tied
            else replace(layer, expand=max(expands_of(choices, layer.block, j == 0)))
            for j, layer in enumerate(stage.layers)
        )
        if choices.coupled:  # whole layers: the largest expand of each layer's block that the position offers
            options = [choices.layer_options(j == 0) for j in range(len(layers))]
            layers = tuple(
                max((x for x in opts if x.block == lay.block), key=lambda x: (x.expand, x.kernel))
                for lay, opts in zip(stage.layers, options, strict=True)
            )
        stages.append(replace(stage, width=max(choices.widths), layers=layers))
    return replace(arch, stem=max(space.stem_widths), stages=tuple(stages))


def kept_archs(space) -> list[Arch]:
    """Subnets whose hidden channels re-ordering maps onto themselves: blocks, kernels, depths and
    resolutions of the extremes and a few samples, at full hidden width or expand 1."""
    archs = [space.smallest()] + [space.sample(s) for s in range(N_SAMPLED)]
    kept = [space.largest()] + [full_hidden(a, space, expand_one=one) for a in archs for one in (False, True)]
    if any(1 in expands_of(s, b, False) for s in space.stages for b in ("mbconv", "dynconv")):
        assert any(
            lay.expand == 1 and lay.block != "fused_mbconv" for a in kept for st in a.stages for lay in st.layers
        )
    return kept


def subnet_outputs(net: Supernet, archs: list[Arch], resolution: int | None) -> list[torch.Tensor]:
    outputs = []
    for arch in archs:
        res = resolution or arch.resolution
        x = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(1))
        net.set_active(arch)
        with torch.inference_mode():
            outputs.append(net(x))
    return outputs


def assert_unchanged(before: torch.Tensor, after: torch.Tensor, what: str) -> None:
    """At most 1e-5 apart, on the outputs' scale: a new channel order changes float32 summation order, so
    randomly initialised big nets, whose logits reach thousands, differ by rounding there (a wrong channel
    differs by a few percent of the scale)."""
    scale = max(1.0, before.abs().max().item())
    assert (before - after).abs().max().item() <= 1e-5 * scale, what


def test_reorder_leaves_every_subnet_that_keeps_its_hidden_channels_unchanged(space):
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).eval()
    perturb_norms(net)
    archs = kept_archs(space)
    resolution = None if space.name == "tiny" else 32  # the big spaces at 32 px keep this fast
    before = subnet_outputs(net, archs, resolution)
    moves = net.reorder_channels()
    assert any(not torch.equal(order, torch.arange(len(order))) for _, order, _ in moves), "nothing moved"
    after = subnet_outputs(net, archs, resolution)
    for arch, b, a in zip(archs, before, after, strict=True):
        assert_unchanged(b, a, str(arch))


def expand_one_cases(space, net: Supernet):
    """(block, cin, cout) for every MBConv-like block that may run at expand 1, at every input width it meets."""
    inputs = space.stem_widths
    for choices, positions in zip(space.stages, net.stages, strict=True):
        for j, position in enumerate(positions):
            for name in ("mbconv", "dynconv"):
                if name in position and 1 in expands_of(choices, name, j == 0):
                    for cin in inputs if j == 0 else choices.widths:
                        yield position[name], cin, min(choices.widths)
        inputs = choices.widths


def test_expand_one_blocks_keep_their_function_at_every_input_width(space):
    """Expand 1 reads the hidden-channel weights with the block's *input* channels, at any narrower width."""
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).eval()
    perturb_norms(net)
    cases = list(expand_one_cases(space, net))
    if not cases:
        pytest.skip(f"{space.name} has no MBConv at expand 1")
    inputs = [torch.randn(2, cin, 8, 8, generator=torch.Generator().manual_seed(cin)) for _, cin, _ in cases]
    with torch.inference_mode():
        before = [configured(block, cin, cout)(x) for (block, cin, cout), x in zip(cases, inputs, strict=True)]
        net.reorder_channels()
        after = [configured(block, cin, cout)(x) for (block, cin, cout), x in zip(cases, inputs, strict=True)]
    for (block, cin, _), b, a in zip(cases, before, after, strict=True):
        assert_unchanged(b, a, f"{type(block).__name__} at {cin} input channels")


def configured(block, cin: int, cout: int):
    block.configure(cin, cout, min(block.dw.conv.kernels), 1)
    return block


# --- the optimizer's state moves with the weights ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return nasbench.load_space("tiny")


def trained(space, optimizer: str):
    """A tiny supernet and its optimizer after two sandwich steps (so every moment is non-trivial)."""
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).train().double()  # float64: AdamW's normalised steps stay comparable
    opt = make_optimizer(net, TrainConfig(optimizer=optimizer, lr=0.05, weight_decay=1e-3))
    for seed in range(2):
        step(net, opt, space, seed)
    return net, opt


def step(net, opt, space, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    images, labels = (
        torch.randn(8, 3, 32, 32, generator=gen, dtype=torch.float64),
        torch.randint(0, 10, (8,), generator=gen),
    )
    archs = [space.largest(), full_hidden(space.sample(seed), space, expand_one=True)]
    sandwich_step(net, archs, images, labels, optimizer=opt)


def assert_same(a: tuple, b: tuple) -> None:
    (net_a, opt_a), (net_b, opt_b) = a, b
    for (name, x), y in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, msg=name)
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        for field in state_a[key]:
            torch.testing.assert_close(state_a[key][field], state_b[key][field], msg=f"{key}.{field}")


@pytest.mark.parametrize("optimizer", ["sgd-nesterov", "adamw"])
def test_a_step_after_reordering_equals_the_reordered_step(tiny, optimizer):
    net, opt = trained(tiny, optimizer)
    orders = net.channel_orders()
    first = copy.deepcopy((net, opt))  # one deepcopy keeps the optimizer's state keyed by the copied params
    reorder_channels(*first, orders)
    step(*first, tiny, seed=5)
    second = copy.deepcopy((net, opt))
    step(*second, tiny, seed=5)
    reorder_channels(*second, orders)
    assert_same(first, second)


@pytest.mark.parametrize("optimizer", ["sgd-nesterov", "adamw"])
def test_reordering_permutes_the_optimizer_state_like_its_parameters(tiny, optimizer):
    net, opt = trained(tiny, optimizer)
    before = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in opt.state}
    moved = {id(p): (order, dim) for p, order, dim in reorder_channels(net, opt)}
    assert moved
    for p, fields in before.items():
        assert opt.state[p].keys() == fields.keys()  # nothing forgotten
        for name, old in fields.items():
            if id(p) in moved and old.shape == p.shape:
                order, dim = moved[id(p)]
                old = old.index_select(dim, order)
            assert torch.equal(opt.state[p][name], old), name  # AdamW's step count is kept as it was
