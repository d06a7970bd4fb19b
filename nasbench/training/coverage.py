"""Which subnets the sandwich trains: a seeded sampler that visits every choice regularly, and counts it.

Uniform random subnets leave a space's choices trained by chance: in a space of 10^9 architectures a
block type, kernel or resolution that neither the largest nor the smallest subnet uses is visited only when
a draw happens to pick it. ``CoverageSampler`` draws each dimension's choice from a shuffled cycle of its
choices instead (every choice once per cycle, in a new seeded order each cycle, independently per
dimension), so after ``n`` draws every choice of every dimension has been drawn within one of ``n / k``
times (``k`` choices), while the combinations stay random. ``counts`` records how often each choice was
actually trained (a layer beyond its stage's depth trains nothing, so it is not counted); the run saves it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from nasbench.arch import Arch
from nasbench.spaces import SearchSpace

TEACHER_RESOLUTION = "teacher:resolution"  # the teacher's own cycle in ``cycles`` (not a dimension label)


class CoverageSampler:
    """Random subnets of ``space`` whose choices cycle (see the module docstring); resumable via state."""

    def __init__(self, space: SearchSpace, seed: int):
        self.space = space
        self.rng = random.Random(seed)
        self.dims = {d.label: list(d.choices) for d in space.dimensions()}
        self.cycles: dict[str, list[int]] = {label: [] for label in self.dims}  # indices still to draw
        self.counts: dict[str, dict[str, int]] = defaultdict(dict)

    def sample(self) -> Arch:
        return self.space.decode(self.draw())

    def draw(self) -> dict[str, Any]:
        """The next choice of every dimension (``sample`` decodes them into an ``Arch``)."""
        return {label: self._next(label, choices) for label, choices in self.dims.items()}

    def teacher_resolution(self) -> int:
        """The next resolution of the sandwich's teacher, from a cycle of its own (kept with the others)."""
        return self._next(TEACHER_RESOLUTION, self.space.resolutions)

    def _next(self, cycle: str, choices: Sequence[Any]) -> Any:
        """The next of ``choices`` from the named cycle, refilled in a new seeded order when it runs out."""
        if not self.cycles.get(cycle):
            order = list(range(len(choices)))
            self.rng.shuffle(order)
            self.cycles[cycle] = order
        return choices[self.cycles[cycle].pop()]

    def count(self, arch: Arch) -> None:
        """Add the choices ``arch`` exercises to ``counts`` (see ``trained_choices``)."""
        for label, value in trained_choices(self.space, arch).items():
            key = str(value)
            self.counts[label][key] = self.counts[label].get(key, 0) + 1

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "cycles": dict(self.cycles), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(int(v) for v in internal), gauss))
        self.cycles = {label: [int(i) for i in order] for label, order in state["cycles"].items()}
        self.counts = defaultdict(dict, {k: dict(v) for k, v in state["counts"].items()})


def trained_choices(space: SearchSpace, arch: Arch) -> dict[str, Any]:
    """The choices an arch exercises, by dimension label: every global and per-stage choice, and the
    per-layer choices of the layers within each stage's depth (``STAGE.lJ.kind``)."""
    choices = space.encode(arch)
    out = {}
    for label, value in choices.items():
        parts = label.split(".")
        if len(parts) == 3 and int(parts[1][1:]) > int(choices[f"{parts[0]}.depth"]):
            continue
        out[label] = value
    return out


def coverage_table(counts: dict[str, dict[str, int]], space: SearchSpace) -> dict[str, dict[str, int]]:
    """Every choice of every dimension with its count (0 for a choice never trained), in the space's order."""
    return {d.label: {str(c): counts.get(d.label, {}).get(str(c), 0) for c in d.choices} for d in space.dimensions()}
