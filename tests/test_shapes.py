"""The supernet's hot path for the GPU, checked on the CPU: a bounded set of conv shapes, an op count per
sandwich step that stays near the exported subnets' and does not grow with the batch, and no host sync."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

import nasbench
from nasbench.supernet import Supernet
from nasbench.supernet.shapes import ConvShapeRecorder, forward_conv_shapes, possible_conv_shapes
from nasbench.training import sandwich_archs, sandwich_step
from nasbench.training.coverage import CoverageSampler


def supernet_and_data(space, batch: int, device: str = "cpu"):
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    res = max(space.resolutions)  # fetched at the largest resolution, resized per subnet, as in training
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, res, res, generator=gen).to(device)
    labels = torch.randint(0, 10, (batch,), generator=gen).to(device)
    return net, opt, images, labels


def run_steps(space, steps: int, batch: int, device: str = "cpu", seed: int = 0) -> ConvShapeRecorder:
    net, opt, images, labels = supernet_and_data(space, batch, device)
    sampler = CoverageSampler(space, seed)
    with ConvShapeRecorder() as rec:
        for _ in range(steps):
            sandwich_step(net, sandwich_archs(space, sampler, 2), images, labels, optimizer=opt, channels_last=True)
    return rec


def test_tiny_training_meets_only_the_conv_shapes_its_choices_allow():
    space = nasbench.load_space("tiny")
    rec = run_steps(space, steps=200, batch=2)
    possible = possible_conv_shapes(space, batch=2)
    assert rec.shapes <= possible, sorted(rec.shapes - possible)[:3]
    # tiny's choices: 3 resolutions, 2 widths per stage, kernels 3/5, expands; the dynamic conv's K experts run
    # as plain depthwise convs, so they share the MBConv's depthwise shapes
    assert len(possible) == 444
    assert len(rec.shapes) >= len(possible) // 2  # the recorder sees the training's convs, not a few of them


def test_the_forward_replay_counts_what_the_sandwich_steps_ran():
    space = nasbench.load_space("tiny")
    replay_sampler = CoverageSampler(space, 0)  # the same seed as run_steps: the same subnets
    ran = run_steps(space, steps=5, batch=2).shapes
    replayed = forward_conv_shapes(space, [a for _ in range(5) for a in sandwich_archs(space, replay_sampler, 2)], 2)
    assert replayed == ran


@pytest.mark.slow
def test_every_space_meets_only_the_conv_shapes_its_choices_allow(space):
    sampler = CoverageSampler(space, 0)
    archs = [a for _ in range(200) for a in sandwich_archs(space, sampler, 2)]
    assert forward_conv_shapes(space, archs, batch=2) <= possible_conv_shapes(space, batch=2)


def without_batch(shapes):
    return {(x[1:], w, stride, groups) for x, w, stride, groups in shapes}


def test_conv_shapes_do_not_depend_on_the_batch_size():
    """A batch-folded conv (groups = batch x channels) would give each batch size its own shapes."""
    space = nasbench.load_space("tiny")
    two, three = (run_steps(space, steps=3, batch=b).shapes for b in (2, 3))
    assert without_batch(two) == without_batch(three)
    assert {x[0] for x, *_ in three} == {3}


def aten_ops(fn, steps: int) -> dict[str, float]:
    """aten ops per call of ``fn`` (every level: what a backend would launch is among them)."""
    fn()  # warm-up: first-call work is not per step
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    counts: dict[str, float] = {}
    for e in prof.events():
        if e.name.startswith("aten::"):
            counts[e.name] = counts.get(e.name, 0) + 1 / steps
    return counts


def sandwich_ops(space, archs, batch: int) -> dict[str, float]:
    net, opt, images, labels = supernet_and_data(space, batch)
    return aten_ops(lambda: sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True), steps=2)


def exported_ops(space, archs, batch: int) -> float:
    """aten ops of one plain training step of each exported subnet, at its resolution: the floor."""
    net, _, images, labels = supernet_and_data(space, batch)
    total = 0.0
    for arch in archs:
        model = net.export(arch).train().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = F.interpolate(images, size=(arch.resolution,) * 2).contiguous(memory_format=torch.channels_last)

        def step(model=model, opt=opt, x=x):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), labels).backward()
            opt.step()

        total += sum(aten_ops(step, steps=2).values())
    return total


def test_sandwich_step_op_count_is_bounded_and_batch_independent():
    space = nasbench.load_space("tiny")
    archs = sandwich_archs(space, random.Random(0), 2)
    small, large = sandwich_ops(space, archs, batch=2), sandwich_ops(space, archs, batch=8)
    assert sum(small.values()) <= 20_000  # about 13 k with torch 2.13 on CPU
    assert sum(small.values()) <= 1.5 * exported_ops(space, archs, batch=2)  # about 1.25x: the slicing
    # a conv loop over groups shows up as one select per group: none here, at any batch size
    assert small.get("aten::select", 0) <= 64
    assert small.get("aten::select", 0) == large.get("aten::select", 0)


class HostSyncDetector(TorchDispatchMode):
    """Fails on any read of a tensor's value into Python (``.item()``, ``float(t)``, ``bool(t)``), which
    on a GPU waits for every queued kernel; and on any copy to the CPU from another device."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise AssertionError("a host sync: a tensor's value was read into Python")
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and isinstance(out, torch.Tensor):
            source = args[0].device if isinstance(args[0], torch.Tensor) else out.device
            assert not (out.device.type == "cpu" and source.type != "cpu"), "a host sync: a copy to the CPU"
        return out


def test_sandwich_step_reads_no_tensor_value_on_the_host():
    space = nasbench.load_space("tiny")
    net, opt, images, labels = supernet_and_data(space, batch=4)
    archs = sandwich_archs(space, random.Random(0), 2)
    with HostSyncDetector():
        losses = sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True, student_label_weight=0.3)
    assert losses.total.device == images.device and losses.total.ndim == 0
    with pytest.raises(AssertionError, match="host sync"), HostSyncDetector():
        losses.total.item()  # the detector itself works


@pytest.mark.gpu
def test_sandwich_step_on_cuda_has_no_host_sync():
    space = nasbench.load_space("tiny")
    net, opt, images, labels = supernet_and_data(space, batch=8, device="cuda")
    archs = sandwich_archs(space, random.Random(0), 2)
    sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True, bf16=True)  # lazy inits
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = sandwich_step(net, archs, images, labels, optimizer=opt, channels_last=True, bf16=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert losses.total.is_cuda
