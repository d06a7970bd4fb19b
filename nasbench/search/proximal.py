"""Proximal-gradient one-shot search (NASP, Yao et al. 2020), adapted to a chain-structured supernet.

What follows the paper:
* continuous architecture parameters ``alpha`` per decision, kept in the box [0, 1] (NASP's C1);
* the forward pass uses the *discrete* architecture given by the proximal step onto the one-hot set
  (NASP's C: one choice per decision, the current best, ``argmax alpha``);
* the gradient is taken at that discrete point and updates the continuous parameters, which are then
  clipped back into their box (``alpha <- prox_C1(alpha - lr * grad)``);
* a model-complexity term joins the validation loss in that objective (NASP's regulariser on size);
* weight steps (training split) and architecture steps (validation split) alternate.

What is adapted, and why:
* NASP mixes the candidate ops of a cell edge at the edge's output. Here widths, depths and resolutions
  change tensor shapes, so no layer-level mixture exists for them. We mix at the *logits* instead: holding
  every other decision at its discrete value, the relaxed output for decision d is
  ``z(alpha_d) = sum_i alpha_{d,i} * z_i`` where ``z_i`` are the logits of the discrete arch with d set to
  choice i. Its gradient at the one-hot point is ``dL/dalpha_{d,i} = <dL/dz, z_i>`` (``discrete_gradient``):
  one backward to the logits and one extra forward (no backward) per alternative.
* To bound that cost, each architecture step takes the accuracy gradient of a random subset of the
  decisions that are active in the current discrete arch (layers beyond a stage's depth have no effect),
  like ProxylessNAS samples paths.
* NASP's regulariser has a weight, not a target. We want one architecture per cost target, so the resource
  term is ``log(C / T)^2`` (a symmetric form of ProxylessNAS's multiplicative log penalty) of the cost C
  (MACs or latency) of the *discrete* arch, relaxed one decision at a time like the accuracy term:
  ``R_d(alpha_d) = sum_i alpha_{d,i} log(c_{d,i} / T)^2`` with ``c_{d,i}`` the exact cost of the discrete
  arch with d switched to choice i (``switched_costs``: all such vectors from one backward through the
  per-layer cost tables). Its gradient is the penalty of each switched arch (``resource_gradient``): the
  exact change a switch would make, which the cost tables give for free, where the accuracy term must
  linearise. Linearising here too (``2 log(C / T) c_{d,i} / C``) favours the biggest jump in the right
  direction, which on a coarse decision such as the resolution lands far past the target and back (the
  discrete cost of an efficientnet target oscillated between 0.2x and 7x of it); the exact form favours
  the switch that lands closest, and at the target favours staying. An earlier version put the penalty on
  the expected cost of the normalised alphas: the expectation reached each target while the argmax of
  near-uniform alphas sat at the cheapest or the dearest arch.
* Each decision's gradient is centred (its mean over the choices removed, ``centred``): only differences
  between a decision's entries change its argmax, and the common part would push whole rows into a wall
  of the box, where ties, not gradients, would pick the choice.
* The discrete arch may still leave its target for a while (the accuracy term, or several switches in
  one step). The arch a target reports (``choose_final``) is the last discrete arch it visited within
  ``tolerance`` of its target (the most fine-tuned one on target), else the visited one closest to it in
  log cost.
* The supernet arrives pre-trained (sandwich rule); each target fine-tunes its own *copy* of the weights so
  the shared supernet that every searcher's records are evaluated with stays untouched.
* Several targets, spaced geometrically between the smallest and the largest architecture's cost, give
  several discrete architectures that together trace a front.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from nasbench.arch import Arch
from nasbench.objectives.expected import ExpectedCost, switched_costs
from nasbench.seeds import fork
from nasbench.spaces import SearchSpace
from nasbench.training.sandwich import at_resolution, autocast

Alpha = dict[str, Tensor]


# --- pure functions -----------------------------------------------------------------------------------


def proximal_step(alpha: Alpha) -> dict[str, int]:
    """Projection onto the one-hot set: each decision takes its largest parameter (ties: first choice)."""
    return {label: int(torch.argmax(a).item()) for label, a in alpha.items()}


def box_project(alpha: Alpha, low: float = 0.0, high: float = 1.0) -> Alpha:
    """Projection onto the box [low, high] (NASP's C1): a clip, per element."""
    return {label: a.clamp(low, high) for label, a in alpha.items()}


def discrete_gradient(grad_logits: Tensor, alternative_logits: Tensor) -> Tensor:
    """Gradient of the loss w.r.t. one decision's parameters at the one-hot point.

    ``grad_logits`` is dL/dz at the discrete arch, shape (B, C); ``alternative_logits`` stacks the logits of
    the arch with this decision set to each choice, shape (K, B, C). With ``z = sum_i alpha_i z_i``,
    ``dL/dalpha_i = sum_b <dL/dz_b, z_{i,b}>`` — a vector of K entries.
    """
    return torch.einsum("bc,kbc->k", grad_logits, alternative_logits)


def probabilities(alpha: Alpha, floor: float = 1e-3) -> dict[str, Tensor]:
    """alpha normalised per decision (kept away from zero): the distribution whose expected cost a record
    reports beside the discrete arch's own cost."""
    return {label: (a.clamp_min(floor) / a.clamp_min(floor).sum()) for label, a in alpha.items()}


def resource_penalty(cost: Tensor, target: float) -> Tensor:
    """``log(cost / target)^2``: zero on target, symmetric in the ratio."""
    return torch.log(cost / target) ** 2


def resource_gradient(switched: dict[str, Tensor], target: float) -> dict[str, Tensor]:
    """Gradient w.r.t. alpha of the resource term at the discrete arch, relaxed one decision at a time as
    the accuracy term is: ``R_d(alpha_d) = sum_i alpha_{d,i} * log(c_{d,i} / T)^2`` with ``c_{d,i}`` the cost
    of the arch with d switched to choice i (``switched``, from ``switched_costs``); so the gradient is the
    penalty of each switched arch. It favours the choice that brings the arch *closest* to its target,
    where the gradient of the penalty of a mixed cost (``2 log(C / T) c_{d,i} / C``) would favour the
    biggest jump in the right direction, however far past the target it lands."""
    return {label: resource_penalty(c, target) for label, c in switched.items()}


def centred(grad: Tensor) -> Tensor:
    """A decision's gradient less its mean over the choices: what changes which choice is largest.

    The common part would only push every entry of alpha into the same wall of the box, where the
    argmax is decided by ties (the first choice), not by the gradient."""
    return grad - grad.mean()


def choose_final(visits: list[Visit], target: float, tolerance: float) -> Visit | None:
    """The arch a target reports: the last discrete arch visited within ``tolerance`` of ``target`` (the
    latest, most fine-tuned point the proximal iteration reached on target), else the visited one closest
    to it in log cost (the latest of equals)."""
    if not visits:
        return None
    within = [v for v in visits if abs(v.cost / target - 1.0) <= tolerance]
    if within:
        return within[-1]
    return min(reversed(visits), key=lambda v: abs(math.log(v.cost / target)))


def geometric_targets(low: float, high: float, n: int) -> list[float]:
    """``n`` cost targets spaced geometrically inside (low, high), ends excluded."""
    ratio = high / low
    return [low * ratio ** ((i + 1) / (n + 1)) for i in range(n)]


# --- the searcher -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProximalConfig:
    steps: int = 200  # alternating (weight, architecture) step pairs per target
    arch_lr: float = 0.05  # step size on alpha (NASP's epsilon)
    weight_lr: float = 0.005  # fine-tuning lr of the target's copy of the supernet weights
    batch_size: int = 64  # images per weight step and per architecture step
    decisions_per_step: int = 4  # active decisions whose accuracy gradient each architecture step computes
    resource_weight: float = 2.0  # lambda of the resource penalty
    record_every: int = 50  # also record the discrete arch every this many steps (if new)
    init_noise: float = 0.01  # seeded jitter of the uniform alpha initialisation (breaks argmax ties)
    tolerance: float = 0.2  # a discrete arch within this relative distance of its target may be reported
    channels_last: bool = True  # the supernet training's memory format (TrainConfig.channels_last)
    bf16: bool = True  # the supernet training's autocast: bf16 on CUDA, float32 on CPU (TrainConfig.bf16)


@dataclass(frozen=True)
class Visit:
    """The discrete architecture after one architecture step, with its exact cost and the expected cost of
    the distribution ``probabilities(alpha)`` that produced it."""

    step: int
    arch: Arch
    cost: float
    expected_cost: float


@dataclass(frozen=True)
class TargetRun:
    """One target's search: every discrete arch it passed through, in order, and the one it reports."""

    index: int
    target: float
    visits: list[Visit]
    final: Visit | None  # None when the budget ended the search before its first step


class ProximalSearch:
    """Runs NASP for each cost target and reports the discrete architectures it reaches.

    ``cost`` is the per-layer cost model of the space (``nasbench.objectives.expected``: MACs or latency);
    its dimensions (``cost.choices``) are the decisions searched. ``should_stop()`` lets the budget end a
    target's search between steps.
    """

    def __init__(
        self,
        space: SearchSpace,
        supernet: torch.nn.Module,
        train_data: Any,
        val_data: Any,
        cost: ExpectedCost,
        *,
        config: ProximalConfig,
        seed: int,
    ):
        self.space, self.supernet, self.config = space, supernet, config
        self.train_data, self.val_data = train_data, val_data
        self.cost = cost
        self.rng = random.Random(fork(seed, "proximal-decisions"))
        self.seed = seed
        self.dims = dict(cost.choices)
        self.device = next(supernet.parameters()).device  # alphas and every step's tensors live here

    def init_alpha(self, index: int) -> Alpha:
        """Uniform alphas jittered by a CPU generator (the same draws on every device), on the device."""
        gen = torch.Generator().manual_seed(fork(self.seed, "proximal-alpha", index))
        noise = {label: torch.randn(len(c), generator=gen, dtype=torch.float64) for label, c in self.dims.items()}
        return {label: (0.5 + self.config.init_noise * n).to(self.device) for label, n in noise.items()}

    def decode(self, picks: dict[str, int]) -> Arch:
        return self.space.decode({label: self.dims[label][i] for label, i in picks.items()})

    def discrete(self, alpha: Alpha) -> Arch:
        return self.decode(proximal_step(alpha))

    def visit(self, step: int, alpha: Alpha) -> Visit:
        arch = self.discrete(alpha)
        return Visit(step, arch, self.cost.exact(arch), float(self.cost(probabilities(alpha))))

    def search_target(self, index: int, target: float, should_stop: Callable[[], bool]) -> TargetRun:
        """Fine-tune a copy of the supernet while moving ``alpha`` towards ``target``; the reported arch is
        ``choose_final`` of the discrete archs visited."""
        cfg = self.config
        net = copy.deepcopy(self.supernet).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.weight_lr, momentum=0.9, nesterov=True)
        alpha = self.init_alpha(index)
        gen = torch.Generator().manual_seed(fork(self.seed, "proximal-batches", index))
        train_iter, val_iter = self.batches(self.train_data, gen), self.batches(self.val_data, gen)
        visits: list[Visit] = []
        for step in range(1, cfg.steps + 1):
            if should_stop():
                break
            self.weight_step(net, optimizer, self.discrete(alpha), next(train_iter))
            alpha = self.arch_step(net, alpha, target, next(val_iter))
            visits.append(self.visit(step, alpha))
        return TargetRun(index, target, visits, choose_final(visits, target, cfg.tolerance))

    def batches(self, data: Any, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless batches at the space's largest resolution (resized per arch in the steps)."""
        resolution = max(self.space.resolutions)
        while True:
            yield from data.train_batches(
                self.config.batch_size, resolution, generator=gen, channels_last=self.config.channels_last
            )

    def forward(self, net: torch.nn.Module, arch: Arch, x: Tensor) -> Tensor:
        """``arch``'s logits in float32, run as the supernet trained: its memory format and autocast."""
        with autocast(self.device, self.config.bf16):
            return net(at_resolution(x, arch.resolution, self.config.channels_last)).float()

    def weight_step(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, arch: Arch, batch) -> None:
        x, y = batch
        net.set_active(arch)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.forward(net, arch, x), y).backward()
        optimizer.step()

    def arch_step(self, net: torch.nn.Module, alpha: Alpha, target: float, batch) -> Alpha:
        """One proximal step: both gradients at the discrete arch, per decision centred, then the box."""
        cfg = self.config
        picks = proximal_step(alpha)
        grads = self.accuracy_gradient(net, picks, batch)
        _, switched = switched_costs(self.cost, picks)
        resource = {label: r.to(self.device) for label, r in resource_gradient(switched, target).items()}
        return box_project(
            {
                label: alpha[label]
                - cfg.arch_lr * centred(grads.get(label, 0.0) + cfg.resource_weight * resource[label])
                for label in alpha
            }
        )

    def accuracy_gradient(self, net: torch.nn.Module, picks: dict[str, int], batch) -> dict[str, Tensor]:
        """``discrete_gradient`` of the validation loss for a random subset of the active decisions."""
        x, y = batch
        arch = self.decode(picks)
        net.set_active(arch)
        with torch.no_grad():
            logits = self.forward(net, arch, x)
        logits.requires_grad_(True)
        (grad_logits,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
        grads = {}
        for label in self.sample_decisions(arch):
            alternatives = []
            for i in range(len(self.dims[label])):
                if i == picks[label]:
                    alternatives.append(logits.detach())
                    continue
                alt = self.decode(picks | {label: i})
                net.set_active(alt)
                with torch.no_grad():
                    alternatives.append(self.forward(net, alt, x))
            grads[label] = discrete_gradient(grad_logits, torch.stack(alternatives)).to(torch.float64)
        net.set_active(arch)
        return grads

    def sample_decisions(self, arch: Arch) -> list[str]:
        """A random subset of the decisions that matter for ``arch`` (layers that run, global choices)."""
        active = [label for label in self.dims if len(self.dims[label]) > 1 and is_active(label, arch, self.space)]
        return self.rng.sample(active, min(self.config.decisions_per_step, len(active)))


def is_active(label: str, arch: Arch, space: SearchSpace) -> bool:
    """Whether a decision changes ``arch``: a layer decision only while its layer is within the depth."""
    parts = label.split(".")
    if len(parts) < 3:
        return True
    stage = next(i for i, s in enumerate(space.stages) if s.name == parts[0])
    return int(parts[1][1:]) <= arch.stages[stage].depth


def cost_range(space: SearchSpace, cost: Callable[[Arch], float], n: int) -> list[float]:
    """Targets between the smallest and the largest architecture's cost."""
    low, high = cost(space.smallest()), cost(space.largest())
    if not (low > 0 and high > low and math.isfinite(high)):
        raise ValueError(f"cannot space targets between {low} and {high}")
    return geometric_targets(low, high, n)
