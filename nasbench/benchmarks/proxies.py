"""Zero-cost proxies: scores of an untrained (or trained) classifier from one batch, no training.

Each proxy is ``proxy(model, images, labels) -> float``, higher = predicted better, so that
``nasbench.benchmarks.ranking`` can judge them beside any other ranker. Each works on a deep copy of the model
whenever it would change anything (weights, BatchNorm running statistics, ``.grad``, train/eval mode), so the
caller's model comes back exactly as it went in; and each runs under a fixed seed (restored afterwards), so that
drop-path or dropout in train mode cannot make two calls disagree.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

# Activations whose output is positive exactly where their input is: the NASWOT code of a unit is "on" there.
ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.LeakyReLU)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _seeded(device: torch.device, seed: int = 0) -> Iterator[None]:
    """Fix the generator of ``device`` (and the CPU's) inside the block, and restore both after it, rather than
    reseeding the global generators under the caller's feet."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _without_batchnorm(model: nn.Module) -> None:
    """Replace every BatchNorm by an identity, in place (on a copy)."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            _without_batchnorm(child)


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """log10 of SynFlow (Tanaka et al. 2020, as a proxy in Abdelfattah et al. 2021, "Zero-Cost Proxies").

    SynFlow measures how much "signal" a network can pass with data-free inputs: with every weight made
    positive, BatchNorm removed (the ``bn=False`` copy of Abdelfattah et al.; batch statistics of a constant
    input would zero it) and an all-ones input of one image's shape, the sum of the output is a product of
    layer norms, and score = sum over Conv2d/Linear weights of |theta * dR/dtheta|. Computed in float64
    because the score grows exponentially with depth; returned as log10 to stay finite in a float and printable
    (callers rank, so a monotone transform changes nothing). The images serve only for their shape."""
    net = copy.deepcopy(model)
    _without_batchnorm(net)
    net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=_device(net))
    with _seeded(ones.device):
        net(ones).sum().backward()
    weights = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = float(sum((w.detach() * w.grad).abs().sum() for w in weights if w.grad is not None))
    return math.log10(total) if total > 0 else -math.inf


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """The NASWOT score (Mellor et al. 2021, "Neural Architecture Search without Training").

    A network that gives different images different activation patterns can tell them apart before training.
    Each image's binary code marks which units of every activation layer are on (> 0); the kernel K counts,
    for each pair of images, the units on which their codes agree (K = c c^T + (1-c)(1-c)^T, summed over
    layers); the score is log|det K|, large when the codes are far apart. The model runs in train mode as in
    the paper (on a copy, since that updates BatchNorm's running statistics), without gradients."""
    net = copy.deepcopy(model).train()
    batch = len(images)
    kernel = torch.zeros((batch, batch), dtype=torch.float64, device=_device(net))

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = (output.detach().reshape(batch, -1) > 0).float()  # 0/1 sums stay exact in float32 below 2**24
        agree = codes @ codes.T + (1 - codes) @ (1 - codes).T
        kernel.add_(agree.double())

    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, ACTIVATIONS)]
    if not handles:
        raise ValueError(f"naswot needs activation modules ({', '.join(a.__name__ for a in ACTIVATIONS)}); "
                         f"{type(model).__name__} has none")  # fmt: skip
    try:
        with torch.no_grad(), _seeded(kernel.device):
            net(images.to(kernel.device))
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """L2 norm of the gradient of the cross-entropy on the batch over all parameters (Abdelfattah et al. 2021).

    A simple baseline: larger initial gradients mean a network that starts learning faster. Train mode, on a
    copy (BatchNorm statistics and ``.grad`` would change otherwise)."""
    net = copy.deepcopy(model).train()
    device = _device(net)
    net.zero_grad(set_to_none=True)
    with _seeded(device):
        F.cross_entropy(net(images.to(device)), labels.to(device)).backward()
    grads = [p.grad.reshape(-1) for p in net.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.cat(grads)))


PROXIES: dict[str, Proxy] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm}
