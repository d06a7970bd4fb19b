"""Expected cost of a distribution over a space's architectures, differentiable in its probabilities.

A one-shot searcher keeps a probability vector per labelled dimension of the space (``space.dimensions()``:
``resolution``, ``stem``, ``head``, ``s1.depth``, ``s1.width``, ``s1.l1.block``, ...), each over that
dimension's ``choices`` in order, and treats the dimensions as independent. Under that product
distribution the expected cost of an arch that is a sum of per-layer costs is exact and cheap:

* layer j of stage s is present with probability P(depth_s >= j);
* its cost depends only on the resolution (through its input size), its input width (the previous stage's
  width for the first layer, the stem's for stage 1, else its own), its width, block, kernel and expand
  (or, in a stage of coupled choices, its one ``op``).

So each layer has a small cost tensor over exactly those choices, built once per space, and the expectation
is one ``einsum`` per layer with the probability vectors: multilinear in them, hence differentiable by
autograd. Layers 2.. of a stage share one tensor (their configs do not depend on j). With a one-hot
distribution the expectation is the arch's exact cost.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from nasbench.arch import Arch, Layer
from nasbench.counting import LayerConfig, decompose, layer_cost
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace

LayerCost = Callable[[LayerConfig], float]


class ExpectedCost:
    """``E[offset + sum of layer_cost over the layers of the arch]`` under per-dimension probabilities.

    ``resolutions`` restricts the resolution axis (e.g. to those a latency table covers); then
    ``probs["resolution"]`` is over ``self.choices["resolution"]``, and may be left out when it has one
    entry, as may any dimension with a single choice.
    """

    def __init__(
        self,
        space: SearchSpace,
        layer_cost: LayerCost,
        *,
        offset: float = 0.0,
        num_classes: int = 1000,
        resolutions: Sequence[int] | None = None,
    ):
        self.space, self.layer_cost, self.offset, self.num_classes = space, layer_cost, float(offset), num_classes
        res = tuple(sorted(resolutions)) if resolutions else space.resolutions
        if not set(res) <= set(space.resolutions):
            raise NasbenchError(f"resolutions {list(res)} are not all resolutions of space {space.name}")
        self.choices: dict[str, tuple] = {d.label: d.choices for d in space.dimensions()}
        self.choices["resolution"] = res
        self._tables = self._build_tables()
        self._cast: dict[tuple, dict] = {}

    # --- cost tensors (numpy float64, built once) ----------------------------------------------------
    def _tensor(self, axes: Sequence[Sequence], make: Callable[..., LayerConfig]) -> np.ndarray:
        values = [self.layer_cost(make(*combo)) for combo in itertools.product(*axes)]
        return np.asarray(values, dtype=np.float64).reshape([len(a) for a in axes])

    def _build_tables(self) -> dict:
        sp, act, res = self.space, self.space.act, self.choices["resolution"]
        sizes = {r: _out_size(r, sp.stem_stride) for r in res}
        tables: dict = {"stem": self._tensor((res, sp.stem_widths), lambda r, w: self._stem(r, w)), "stages": []}
        prev = sp.stem_widths
        for s in sp.stages:
            first_in = dict(sizes)
            sizes = {r: _out_size(first_in[r], s.stride) for r in res}
            first = self._tensor(
                (res, prev, s.widths, *(c for _, c in s.layer_dims(True))),
                lambda r, wp, w, *v, s=s, fi=first_in: _config(s.make_layer(v), wp, w, s.stride, s.se, fi[r], act),
            )
            later = None
            if max(s.depths) > 1:
                later = self._tensor(
                    (res, s.widths, *(c for _, c in s.layer_dims(False))),
                    lambda r, w, *v, s=s, sz=sizes: _config(s.make_layer(v), w, w, 1, s.se, sz[r], act),
                )
            tables["stages"].append((first, later))
            prev = s.widths
        tables["head"] = self._tensor(
            (res, prev, sp.head_widths),
            lambda r, wp, h: LayerConfig("head", wp, h, 1, 1, 1, 0.0, sizes[r], act, self.num_classes),
        )
        return tables

    def _stem(self, resolution: int, width: int) -> LayerConfig:
        return LayerConfig("stem", 3, width, 3, 1, self.space.stem_stride, 0.0, resolution, self.space.act)

    def _on(self, dtype: torch.dtype, device: torch.device) -> dict:
        key = (dtype, device)
        if key not in self._cast:
            t = self._tables

            def conv(a: np.ndarray | None) -> torch.Tensor | None:
                return None if a is None else torch.as_tensor(a, dtype=dtype, device=device)

            self._cast[key] = {
                "stem": conv(t["stem"]),
                "head": conv(t["head"]),
                "stages": [(conv(f), conv(lt)) for f, lt in t["stages"]],
            }
        return self._cast[key]

    # --- expectation ---------------------------------------------------------------------------------
    def __call__(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The expected cost (a 0-d tensor, differentiable in every probability vector)."""
        p = self._check(probs)
        ref = next(iter(p.values()))
        t = self._on(ref.dtype, ref.device)
        pr = p["resolution"]
        total = torch.einsum("r,s,rs->", pr, p["stem"], t["stem"])
        prev = p["stem"]
        for s, (first, later) in zip(self.space.stages, t["stages"], strict=True):
            w, depth = p[f"{s.name}.width"], p[f"{s.name}.depth"]
            for j in range(1, max(s.depths) + 1):
                present = sum(depth[i] for i, d in enumerate(s.depths) if d >= j)  # P(depth >= j)
                layer = [p[f"{s.name}.l{j}.{x}"] for x, _ in s.layer_dims(j == 1)]
                axes = "bke"[: len(layer)]  # block, kernel, expand; or one coupled op
                if j == 1:
                    spec = f"r,p,w,{','.join(axes)},rpw{axes}->"
                    cost = torch.einsum(spec, pr, prev, w, *layer, first)
                else:
                    cost = torch.einsum(f"r,w,{','.join(axes)},rw{axes}->", pr, w, *layer, later)
                total = total + present * cost
            prev = w
        total = total + torch.einsum("r,w,h,rwh->", pr, prev, p["head"], t["head"])
        return total + self.offset

    def _check(self, probs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unknown = sorted(set(probs) - set(self.choices))
        if unknown:
            raise NasbenchError(f"space {self.space.name} has no dimension {unknown[0]!r}")
        ref = next(iter(probs.values()), None)
        out = {}
        for label, choices in self.choices.items():
            if label not in probs:
                if len(choices) > 1:
                    raise NasbenchError(f"no probabilities given for dimension {label!r} (choices {list(choices)})")
                out[label] = torch.ones(1, dtype=ref.dtype if ref is not None else torch.float64)
                continue
            v = probs[label]
            if v.shape != (len(choices),):
                raise NasbenchError(
                    f"probabilities of {label!r} must have shape ({len(choices)},) for choices {list(choices)},"
                    f" got {tuple(v.shape)}"
                )
            out[label] = v
        return out

    # --- exact cost of one arch, and its one-hot distribution ----------------------------------------
    def exact(self, arch: Arch) -> float:
        """The cost of one arch, summed layer by layer (the one-hot expectation must equal this)."""
        return self.offset + sum(self.layer_cost(cfg) for _, cfg in decompose(arch, self.num_classes))

    def one_hot(self, arch: Arch, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
        """The distribution that puts all mass on ``arch``."""
        values = self.space.encode(arch)
        out = {}
        for label, choices in self.choices.items():
            if values[label] not in choices:
                raise NasbenchError(f"{label} = {values[label]} is not among {list(choices)}")
            v = torch.zeros(len(choices), dtype=dtype)
            v[choices.index(values[label])] = 1.0
            out[label] = v
        return out


def _config(lay: Layer, cin: int, cout: int, stride: int, se: float, size: int, act: str) -> LayerConfig:
    return LayerConfig(lay.block, cin, cout, lay.kernel, lay.expand, stride, se, size, act)


def _out_size(size: int, stride: int) -> int:
    return LayerConfig("stem", 3, 1, stride=stride, size=size).out_size  # counting's rule, in one place


_MACS_CACHE: dict[tuple, ExpectedCost] = {}


def expected_macs(space: SearchSpace, num_classes: int = 1000) -> ExpectedCost:
    """Expected MACs (``counting.layer_cost``), its cost tensors cached per space and class count."""
    from nasbench.latency.table import space_fingerprint

    key = (space.name, space.source, space_fingerprint(space), num_classes)
    if key not in _MACS_CACHE:
        _MACS_CACHE[key] = ExpectedCost(space, lambda cfg: float(layer_cost(cfg)[1]), num_classes=num_classes)
    return _MACS_CACHE[key]


def expected_latency(space: SearchSpace, table, *, corrected: bool = True) -> ExpectedCost:
    """Expected latency (ms) from a ``LatencyTable``: its layer sum, with the fitted correction when
    ``corrected`` (exact, since the correction is affine in per-layer terms), over the table's resolutions."""
    table.check_space(space)
    if not corrected:
        return ExpectedCost(space, table.layer_ms, num_classes=table.num_classes, resolutions=table.resolutions)
    c = table.require_correction()
    return ExpectedCost(
        space,
        lambda cfg: c.layer_ms(table.layer_ms(cfg)),
        offset=c.offset_ms,
        num_classes=table.num_classes,
        resolutions=table.resolutions,
    )


def switched_costs(cost: ExpectedCost, picks: Mapping[str, int]) -> tuple[float, dict[str, torch.Tensor]]:
    """The cost of one discrete arch and, per dimension d, the cost of that arch with d switched to each of
    its choices (a vector over ``cost.choices[d]``; its entry at ``picks[d]`` is the arch's own cost).

    ``picks`` gives each dimension's choice *index* into ``cost.choices``. The expectation is linear in each
    dimension's probability vector, so at the one-hot point ``E(p_d = e_i) = E + dE/dp_{d,i} - dE/dp_{d,picks[d]}``:
    one backward gives every vector, exactly (a dimension that does not change the arch, such as a layer
    beyond its stage's depth, gets a constant vector).
    """
    leaves = {}
    for label, choices in cost.choices.items():
        v = torch.zeros(len(choices), dtype=torch.float64)
        v[picks.get(label, 0)] = 1.0
        leaves[label] = v.requires_grad_(True)
    total = cost(leaves)
    grads = torch.autograd.grad(total, list(leaves.values()))
    base = float(total.detach())
    out = {}
    for label, g in zip(leaves, grads, strict=True):
        out[label] = (base + g - g[picks.get(label, 0)]).detach()
    return base, out
