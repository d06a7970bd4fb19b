"""Proximal-gradient one-shot search (NASP, Yao et al. 2020), adapted to a chain-structured supernet.

What follows the paper:
* continuous architecture parameters ``alpha`` per decision, kept in the box [0, 1] (NASP's C1);
* the forward pass uses the *discrete* architecture given by the proximal step onto the one-hot set
  (NASP's C: one choice per decision, the current best, ``argmax alpha``);
* the gradient is taken at that discrete point and updates the continuous parameters, which are then
  clipped back into their box (``alpha <- prox_C1(alpha - lr * grad)``);
* weight steps (training split) and architecture steps (validation split) alternate.

What is adapted, and why:
* NASP mixes the candidate ops of a cell edge at the edge's output. Here widths, depths and resolutions
  change tensor shapes, so no layer-level mixture exists for them. We mix at the *logits* instead: holding
  every other decision at its discrete value, the relaxed output for decision d is
  ``z(alpha_d) = sum_i alpha_{d,i} * z_i`` where ``z_i`` are the logits of the discrete arch with d set to
  choice i. Its gradient at the one-hot point is ``dL/dalpha_{d,i} = <dL/dz, z_i>`` (``discrete_gradient``):
  one backward to the logits and one extra forward (no backward) per alternative.
* To bound that cost, each architecture step updates a random subset of the decisions that are active in
  the current discrete arch (layers beyond a stage's depth have no effect and get no accuracy gradient),
  like ProxylessNAS samples paths.
* A resource term on the expected MACs or latency of the distribution ``p_d = alpha_d / sum(alpha_d)``
  (differentiable, from ``nasbench.objectives``) pulls towards a target:
  ``lambda * log(E[cost] / target)^2`` (a symmetric form of ProxylessNAS's multiplicative log penalty).
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
from nasbench.budget import BudgetClock
from nasbench.counting import count
from nasbench.search.base import RecordSink, SearchContext, Searcher
from nasbench.spaces import SearchSpace

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
    """The distribution the resource term sees: alpha normalised per decision (kept away from zero)."""
    return {label: (a.clamp_min(floor) / a.clamp_min(floor).sum()) for label, a in alpha.items()}


def resource_penalty(expected_cost: Tensor, target: float) -> Tensor:
    """``log(E[cost] / target)^2``: zero on target, symmetric in the ratio."""
    return torch.log(expected_cost / target) ** 2


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


class ProximalSearch:
    """Runs NASP for each cost target and reports the discrete architectures it reaches.

    ``expected_cost(probs) -> Tensor`` is the differentiable expected MACs (or latency) of the product
    distribution over the space's dimensions; ``report(arch, info)`` receives each discrete architecture
    (the caller evaluates it with the shared supernet and writes the record); ``should_stop()`` lets the
    budget end the search between steps.
    """

    def __init__(
        self,
        space: SearchSpace,
        supernet: torch.nn.Module,
        train_data: Any,
        val_data: Any,
        expected_cost: Callable[[dict[str, Tensor]], Tensor],
        *,
        config: ProximalConfig,
        seed: int,
    ):
        self.space, self.supernet, self.config = space, supernet, config
        self.train_data, self.val_data = train_data, val_data
        self.expected_cost = expected_cost
        self.rng = random.Random(seed)
        self.seed = seed
        self.dims = {d.label: d.choices for d in space.dimensions()}

    def init_alpha(self, index: int) -> Alpha:
        gen = torch.Generator().manual_seed(self.seed * 1000 + index)
        return {
            label: 0.5 + self.config.init_noise * torch.randn(len(choices), generator=gen, dtype=torch.float64)
            for label, choices in self.dims.items()
        }

    def discrete(self, alpha: Alpha) -> Arch:
        picks = proximal_step(alpha)
        return self.space.decode({label: self.dims[label][i] for label, i in picks.items()})

    def search_target(self, index: int, target: float, report: Callable, should_stop: Callable[[], bool]) -> None:
        cfg = self.config
        net = copy.deepcopy(self.supernet).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.weight_lr, momentum=0.9, nesterov=True)
        alpha = self.init_alpha(index)
        gen = torch.Generator().manual_seed(self.seed * 7919 + index)
        train_iter, val_iter = self.batches(self.train_data, gen), self.batches(self.val_data, gen)
        seen: set[str] = set()

        def emit(step: int) -> None:
            arch = self.discrete(alpha)
            if arch.id not in seen:
                seen.add(arch.id)
                expected = float(self.expected_cost(probabilities(alpha)))
                report(arch, {"target": target, "target_index": index, "step": step, "expected_cost": expected})

        step = 0
        for step in range(1, cfg.steps + 1):
            if should_stop():
                break
            self.weight_step(net, optimizer, self.discrete(alpha), next(train_iter))
            alpha = self.arch_step(net, alpha, target, next(val_iter))
            if step % cfg.record_every == 0:
                emit(step)
        emit(step)  # the arch the target ended on, also when the budget cut it short

    def batches(self, data: Any, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless batches at the space's largest resolution (resized per arch in the steps)."""
        resolution = max(self.space.resolutions)
        while True:
            yield from data.train_batches(self.config.batch_size, resolution, generator=gen)

    def weight_step(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, arch: Arch, batch) -> None:
        x, y = batch
        net.set_active(arch)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(resize(x, arch.resolution)), y).backward()
        optimizer.step()

    def arch_step(self, net: torch.nn.Module, alpha: Alpha, target: float, batch) -> Alpha:
        cfg = self.config
        x, y = batch
        picks = proximal_step(alpha)
        arch = self.discrete(alpha)
        net.set_active(arch)
        with torch.no_grad():
            logits = net(resize(x, arch.resolution))
        logits.requires_grad_(True)
        (grad_logits,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
        grads = {label: torch.zeros_like(a) for label, a in alpha.items()}
        for label in self.sample_decisions(arch):
            alternatives = []
            for i, value in enumerate(self.dims[label]):
                if i == picks[label]:
                    alternatives.append(logits.detach())
                    continue
                choice = {lab: self.dims[lab][j] for lab, j in picks.items()} | {label: value}
                alt = self.space.decode(choice)
                net.set_active(alt)
                with torch.no_grad():
                    alternatives.append(net(resize(x, alt.resolution)))
            grads[label] = discrete_gradient(grad_logits, torch.stack(alternatives)).to(alpha[label].dtype)
        net.set_active(arch)
        # the resource term's gradient reaches every decision through the expected cost
        leaves = {label: a.detach().clone().requires_grad_(True) for label, a in alpha.items()}
        penalty = cfg.resource_weight * resource_penalty(self.expected_cost(probabilities(leaves)), target)
        penalty.backward()
        stepped = {label: alpha[label] - cfg.arch_lr * (grads[label] + leaves[label].grad) for label in alpha}
        return box_project(stepped)

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


def resize(x: Tensor, resolution: int) -> Tensor:
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


def cost_range(space: SearchSpace, cost: Callable[[Arch], float], n: int) -> list[float]:
    """Targets between the smallest and the largest architecture's cost."""
    low, high = cost(space.smallest()), cost(space.largest())
    if not (low > 0 and high > low and math.isfinite(high)):
        raise ValueError(f"cannot space targets between {low} and {high}")
    return geometric_targets(low, high, n)


# --- the searcher protocol ------------------------------------------------------------------------------


class ProximalSearcher(Searcher):
    """``ProximalSearch`` behind the searcher protocol: targets spread over the space's cost range (capped
    at a ``--max-macs`` / ``--max-latency`` limit), each given an equal share of a time budget; every
    discrete architecture a target reaches is evaluated with the shared supernet and recorded once.
    Searches under latency when it is an objective and a predictor is given, else under MACs."""

    name = "proximal"

    def search(self, ctx: SearchContext, clock: BudgetClock, sink: RecordSink) -> None:
        from nasbench.objectives.expected import expected_latency, expected_macs

        steps = int(ctx.options.get("proximal_steps", ProximalConfig.steps))
        if "latency" in ctx.objectives and ctx.predictor is not None:
            expected, cost, limit = expected_latency(ctx.space, ctx.predictor), ctx.predictor.predict, "latency"
        else:
            expected, limit = expected_macs(ctx.space, ctx.num_classes), "macs"

            def cost(arch: Arch) -> float:
                return count(arch, ctx.num_classes).macs

        targets = cost_range(ctx.space, cost, int(ctx.options.get("proximal_targets", 4)))
        if limit in ctx.limits:
            targets = [min(t, ctx.limits[limit]) for t in targets]
        config = ProximalConfig(steps=steps, record_every=max(1, steps // 4))
        algorithm = ProximalSearch(ctx.space, ctx.supernet, ctx.train, ctx.val, expected, config=config, seed=ctx.seed)
        share = clock.budget.amount / len(targets)

        def report(arch: Arch, info: dict) -> None:
            if not sink.evaluated(arch):
                sink.evaluate(ctx.evaluate, arch, extra=info)

        for index, target in enumerate(targets):
            if clock.exhausted:
                break

            def should_stop(index: int = index) -> bool:
                return clock.exhausted or (clock.budget.is_time and clock.spent > share * (index + 1))

            algorithm.search_target(index, target, report, should_stop)
