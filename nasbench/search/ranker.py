"""The ranker a search chooses by: the supernet's validation loss and NASWOT together, as one ``score``.

A supernet's accuracy ranks networks worse than one would hope. On NAS-Bench-Macro (results/BENCHMARKS.md,
"Ground truth") a 60-minute supernet's accuracy ranks 300 networks with Kendall tau 0.60 and picks 7 % of the
true top 5 %; its loss ranks them at 0.65, and NASWOT (a score of the *untrained* network, Mellor et al. 2021)
at 0.74. The two signals err in different places: the loss sees what the shared weights learned, NASWOT how
well the network separates inputs before any training. Their sum ranks better than either (tau 0.81).

``score`` puts them on one scale with no labels: each signal is standardised by its mean and spread over a
*calibration* sample (``CALIBRATION`` architectures drawn uniformly from the space with the run's seed and
evaluated once, before the searchers start), the two are added with equal weights fixed in advance (not
fitted to any ground truth), and the sum is squashed into (0, 1) by the normal CDF of ``sum / 2``. So 0.5 is
a typical architecture of the space, and higher is predicted better; the squashing is monotone, so it ranks
exactly as the sum does, and it keeps the score in the unit range hypervolumes need. The calibration is stored
in the run's state, so a resumed search scores as it began.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nasbench.arch import Arch
from nasbench.build import build
from nasbench.errors import NasbenchError
from nasbench.seeds import fork

CALIBRATION = 24  # architectures whose loss and NASWOT spreads put the two on one scale
PROXY_BATCH = 64  # training images NASWOT sees (the paper uses 128 on CIFAR; 64 keeps a CPU quick)


def naswot_of(arch: Arch, images: torch.Tensor, num_classes: int, seed: int) -> float:
    """NASWOT of ``arch`` built from scratch under ``seed`` (the same initial weights whoever asks), on
    ``images``; the global generator is left as it was."""
    from nasbench.benchmarks.proxies import naswot  # one implementation, shared with the rank report

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build(arch, num_classes=num_classes).to(images.device)
    return naswot(net, images)


@dataclass(frozen=True)
class Ranker:
    """Means and spreads of ``-loss`` and NASWOT over the calibration sample (see the module docstring)."""

    loss_mean: float
    loss_std: float
    naswot_mean: float
    naswot_std: float
    n: int  # calibration architectures
    seed: int  # drew them (the run's seed)

    def __post_init__(self) -> None:
        for name in ("loss_std", "naswot_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise NasbenchError(
                    f"the ranker's calibration has no spread in {name.split('_')[0]} ({value!r}): its "
                    f"{self.n} architectures score alike; the space is too small to rank, or the supernet untrained"
                )

    def score(self, loss: float, naswot: float) -> float:
        """The predicted quality in (0, 1) of a network with this validation loss and NASWOT."""
        total = (self.loss_mean - loss) / self.loss_std + (naswot - self.naswot_mean) / self.naswot_std
        return 0.5 * math.erfc(-total / 2 / math.sqrt(2))  # the normal CDF of total / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ranker:
        return cls(**{k: data[k] for k in ("loss_mean", "loss_std", "naswot_mean", "naswot_std", "n", "seed")})

    @classmethod
    def fit(cls, losses: Sequence[float], naswots: Sequence[float], seed: int) -> Ranker:
        """The ranker of a calibration sample's losses and NASWOT scores."""
        if len(losses) != len(naswots) or len(losses) < 2:
            raise NasbenchError(f"the ranker needs at least 2 calibration scores, got {len(losses)}")
        mean_l, mean_n = sum(losses) / len(losses), sum(naswots) / len(naswots)
        std_l = math.sqrt(sum((x - mean_l) ** 2 for x in losses) / (len(losses) - 1))
        std_n = math.sqrt(sum((x - mean_n) ** 2 for x in naswots) / (len(naswots) - 1))
        return cls(mean_l, std_l, mean_n, std_n, len(losses), seed)


def calibration_archs(space: Any, n: int, seed: int) -> list[Arch]:
    """``n`` architectures drawn uniformly from ``space`` (repeats allowed) with ``seed``."""
    rng = random.Random(fork(seed, "ranker-calibration"))
    return [space.sample(rng) for _ in range(n)]


def ranker_phase(run: Any, ctx: Any, n: int, budget: Any) -> tuple[Any, dict[str, str]]:
    """A search choosing by score (``ctx.objectives[0]``) gets its evaluator's calibrated ranker here: the
    search budget left for the searchers, and the calibration's line for the summary's budget."""
    if ctx.objectives[0] != "score":
        return budget, {}
    ctx.evaluate.ranker, seconds = calibrated(run, ctx.evaluate.measure, ctx.space, ctx.seed, n)
    return after_calibration(budget, seconds), {
        "ranker calibration": f"{seconds:.0f} s ({ctx.evaluate.ranker.n} archs)"
    }


def calibrated(
    run: Any, measure: Callable[[Arch], tuple[float, float]], space: Any, seed: int, n: int = CALIBRATION
) -> tuple[Ranker, float]:
    """The run's ranker and the seconds its calibration took: calibrated once (with a progress bar and ETA)
    and kept in the run's state (a ``RunDir``), so a resumed run scores as it began; a run killed during
    calibration calibrates again."""
    from rich.console import Console
    from rich.progress import Progress

    stored = run.read_state().get("ranker")
    if stored:
        return Ranker.from_dict(stored), float(stored.get("seconds", 0.0))
    console = Console(stderr=True)
    console.print(f"[bold]ranker[/bold] calibrating the score on {n} architectures of the space")
    start = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("calibration", total=n)
        ranker = calibrate(measure, space, seed, n, on_progress=lambda i, _n, _eta: bar.update(task, completed=i))
    seconds = time.perf_counter() - start
    run.write_state({**run.read_state(), "ranker": {**ranker.to_dict(), "seconds": seconds}})
    return ranker, seconds


def after_calibration(budget: Any, seconds: float) -> Any:
    """The search ``Budget`` left to the searchers once the calibration is paid from a time budget (a trials
    budget counts the searchers' evaluations only); at least a tenth of it is left."""
    if not budget.is_time:
        return budget
    return type(budget)(budget.kind, max(budget.amount - seconds, budget.amount / 10))


def calibrate(
    measure: Callable[[Arch], tuple[float, float]],
    space: Any,
    seed: int,
    n: int = CALIBRATION,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> Ranker:
    """The ranker of ``n`` seeded architectures of ``space``; ``measure(arch)`` gives (loss, NASWOT)."""
    losses, naswots = [], []
    start = time.perf_counter()
    for i, arch in enumerate(calibration_archs(space, n, seed), 1):
        loss, score = measure(arch)
        if math.isfinite(loss) and math.isfinite(score):
            losses.append(loss)
            naswots.append(score)
        if on_progress is not None:
            elapsed = time.perf_counter() - start
            on_progress(i, n, elapsed / i * (n - i))
    return Ranker.fit(losses, naswots, seed)
