"""Budgets: how much a run may spend, parsed from short strings, split across phases, and tracked.

A budget is one positive amount of one kind::

    10gpu-h     device-hours: wall time x devices in use (on a machine without a GPU, the CPU is the device)
    2h, 90min, 45s                  wall time
    300trials                       evaluations of architectures (the search)
    500steps, 3epochs               optimizer steps or passes over the training split (supernet training)

``parse_budget`` turns such a string into a frozen ``Budget`` (``str`` gives it back: ``parse_budget(str(b))
== b``); ``split`` shares one budget across phases; ``BudgetClock`` tracks what a phase has spent, and
resumes from a saved amount.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nasbench.errors import NasbenchError

DEVICE_TIME = "device-time"  # amount in device-seconds
WALL_TIME = "wall-time"  # amount in seconds
TRIALS = "trials"
STEPS = "steps"
EPOCHS = "epochs"
KINDS = (DEVICE_TIME, WALL_TIME, TRIALS, STEPS, EPOCHS)
TIME_KINDS = (DEVICE_TIME, WALL_TIME)

# unit as written -> (kind, multiplier to the kind's base unit). Counted kinds take whole numbers only.
UNITS: dict[str, tuple[str, float]] = {
    "gpu-h": (DEVICE_TIME, 3600.0),
    "gpuh": (DEVICE_TIME, 3600.0),
    "gpu-hours": (DEVICE_TIME, 3600.0),
    "h": (WALL_TIME, 3600.0),
    "hours": (WALL_TIME, 3600.0),
    "min": (WALL_TIME, 60.0),
    "minutes": (WALL_TIME, 60.0),
    "s": (WALL_TIME, 1.0),
    "sec": (WALL_TIME, 1.0),
    "seconds": (WALL_TIME, 1.0),
    "trials": (TRIALS, 1.0),
    "steps": (STEPS, 1.0),
    "epochs": (EPOCHS, 1.0),
}
VALID = "10gpu-h (device-hours), 2h, 90min or 45s (wall time), 300trials, 500steps or 3epochs"
# What a default run spends on each phase; users change it with ``--shares supernet=0.7,search=0.3``.
DEFAULT_SHARES = {"supernet": 0.5, "search": 0.5}

_BUDGET_RE = re.compile(r"^([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z][a-z-]*)$")


@dataclass(frozen=True)
class Budget:
    """A positive amount of one kind: seconds for the time kinds, a whole count for the others."""

    kind: str  # one of KINDS
    amount: float  # device-seconds, seconds, or a count

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"budget kind must be one of {KINDS}, got {self.kind!r}")
        if not math.isfinite(self.amount) or self.amount <= 0:
            raise ValueError(f"budget amount must be positive and finite, got {self.amount}")
        if not self.is_time and self.amount != int(self.amount):
            raise ValueError(f"a {self.kind} budget must be a whole number, got {self.amount}")

    @property
    def is_time(self) -> bool:
        return self.kind in TIME_KINDS

    @property
    def count(self) -> int:
        """The amount of a counted budget (trials, steps, epochs) as an int."""
        if self.is_time:
            raise ValueError(f"a {self.kind} budget is not a count")
        return int(self.amount)

    def __str__(self) -> str:
        if self.kind == DEVICE_TIME:
            return f"{_num(self.amount / 3600)}gpu-h"
        if self.kind == WALL_TIME:
            for unit, scale in (("h", 3600), ("min", 60)):
                if self.amount >= scale and _is_whole(self.amount / scale):
                    return f"{_num(self.amount / scale)}{unit}"
            return f"{_num(self.amount)}s"
        return f"{int(self.amount)}{self.kind}"


def _num(x: float) -> str:
    return f"{x:.10g}"


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9


def parse_budget(text: str) -> Budget:
    """``10gpu-h``, ``2h``, ``90min``, ``45s``, ``300trials``, ``500steps``, ``3epochs`` -> ``Budget``.

    Raises ``NasbenchError`` naming the bad value and listing what is valid.
    """
    raw = text if isinstance(text, str) else str(text)
    s = raw.strip().lower()
    if not s:
        raise NasbenchError(f"the budget is empty; give a positive amount with a unit, e.g. {VALID}")
    m = _BUDGET_RE.match(s)
    if not m:
        raise NasbenchError(f"budget {raw!r} does not parse; give a positive amount with a unit, e.g. {VALID}")
    number, unit = m.groups()
    if unit not in UNITS:
        raise NasbenchError(f"budget {raw!r} has an unknown unit {unit!r}; valid budgets look like {VALID}")
    kind, scale = UNITS[unit]
    value = float(number)
    if not math.isfinite(value) or value <= 0:
        raise NasbenchError(f"budget {raw!r} must be positive; valid budgets look like {VALID}")
    if kind not in TIME_KINDS and value != int(value):
        raise NasbenchError(f"budget {raw!r}: {kind} are counted in whole numbers, e.g. 300{kind}")
    return Budget(kind, value * scale)


def require_kind(budget: Budget, allowed: tuple[str, ...], purpose: str) -> None:
    """Raise ``NasbenchError`` when ``budget`` cannot bound ``purpose`` (e.g. trials for supernet training)."""
    if budget.kind not in allowed:
        examples = {
            DEVICE_TIME: "10gpu-h",
            WALL_TIME: "90min",
            TRIALS: "300trials",
            STEPS: "500steps",
            EPOCHS: "3epochs",
        }
        valid = ", ".join(examples[k] for k in allowed)
        raise NasbenchError(f"a {budget.kind} budget ({budget}) cannot bound {purpose}; give one like {valid}")


# --- shares ---------------------------------------------------------------------------------------------


def after_first_phase(second: Budget, first: Budget, spent: float) -> Budget:
    """The second phase's share of a time budget once the first spent ``spent`` of its share ``first``: what
    the first left unspent is added, what it overran is taken, so the run's total holds (a time budget's step
    plan is made early, and the machine's load can change after it). At least a tenth of ``second`` is kept.
    Budgets of other kinds, or of two different kinds, are returned as they are."""
    if not (second.is_time and first.kind == second.kind):
        return second
    return Budget(second.kind, max(second.amount + first.amount - spent, second.amount / 10))


def split(budget: Budget, shares: dict[str, float]) -> dict[str, Budget]:
    """Share ``budget`` across phases in proportion to ``shares`` (each positive, summing to 1).

    Time is split exactly; counted budgets by largest remainder, so the parts add up to the whole. A phase
    whose part would round to nothing is an error, not a silent zero.
    """
    if not shares:
        raise NasbenchError("budget shares are empty; give at least one phase, e.g. supernet=0.5,search=0.5")
    for phase, share in shares.items():
        if not isinstance(share, (int, float)) or not math.isfinite(share) or share <= 0:
            raise NasbenchError(f"budget share of {phase!r} must be a positive number, got {share!r}")
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        listed = ", ".join(f"{k}={v:g}" for k, v in shares.items())
        raise NasbenchError(f"budget shares must add up to 1, but {listed} add up to {total:g}")
    if budget.is_time:
        return {phase: Budget(budget.kind, budget.amount * share) for phase, share in shares.items()}
    counts = _largest_remainder(budget.count, shares)
    empty = [phase for phase, n in counts.items() if n == 0]
    if empty:
        raise NasbenchError(f"budget {budget} is too small to share: phase {empty[0]!r} would get no {budget.kind}")
    return {phase: Budget(budget.kind, float(n)) for phase, n in counts.items()}


def split_evenly(budget: Budget, names: tuple[str, ...] | list[str]) -> dict[str, Budget]:
    """``budget`` in equal parts, one per name, nothing lost to rounding: 7 trials over 3 searchers are
    3 + 2 + 2 (the first names get the remainder)."""
    return split(budget, {name: 1.0 / len(names) for name in names})


def _largest_remainder(whole: int, shares: dict[str, float]) -> dict[str, int]:
    exact = {phase: whole * share for phase, share in shares.items()}
    counts = {phase: int(math.floor(x)) for phase, x in exact.items()}
    by_remainder = sorted(exact, key=lambda p: (counts[p] - exact[p], list(shares).index(p)))
    for phase in by_remainder[: whole - sum(counts.values())]:
        counts[phase] += 1
    return counts


def parse_shares(text: str) -> dict[str, float]:
    """``supernet=0.7,search=0.3`` -> ``{"supernet": 0.7, "search": 0.3}`` (checked by ``split``)."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = None
        if share is None or not name.strip():
            raise NasbenchError(f"budget share {part!r} does not parse; write PHASE=FRACTION, e.g. supernet=0.5")
        shares[name.strip()] = share
    return shares


# --- spending -------------------------------------------------------------------------------------------


def device_note(budget: Budget, device_type: str) -> str | None:
    """What a device-hour budget means on this machine, when that needs saying (no GPU here)."""
    if budget.kind == DEVICE_TIME and device_type != "cuda":
        return f"no GPU in use: the {budget} budget counts device-hours of the {device_type.upper()}"
    return None


@dataclass
class BudgetClock:
    """What a phase has spent of its budget: device-seconds (wall x devices) or counted units.

    Time runs only between ``start()`` and ``stop()``; counted budgets count only what ``add`` is told.
    ``spent_before`` carries what earlier, saved sessions spent, so a resumed run picks up where the killed
    one had got to (``BudgetClock(budget, spent_before=saved)``).
    """

    budget: Budget
    devices: int = 1  # devices in use; a wall-time budget ignores it
    spent_before: float = 0.0  # spent by earlier sessions of the same run
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _started: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError(f"devices must be at least 1, got {self.devices}")
        if self.spent_before < 0:
            raise ValueError(f"spent must not be negative, got {self.spent_before}")

    def start(self) -> BudgetClock:
        if self._started is None:
            self._started = self.clock()
        return self

    def stop(self) -> None:
        if self._started is not None:
            self.spent_before += self._running()
            self._started = None

    def _running(self) -> float:
        if self._started is None or not self.budget.is_time:
            return 0.0
        scale = self.devices if self.budget.kind == DEVICE_TIME else 1
        return (self.clock() - self._started) * scale

    def add(self, units: float = 1) -> None:
        """Count ``units`` trials, steps or epochs spent (time kinds count themselves)."""
        if self.budget.is_time:
            raise ValueError(f"a {self.budget.kind} budget counts time, not units")
        self.spent_before += units

    @property
    def spent(self) -> float:
        return self.spent_before + self._running()

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget.amount - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget.amount

    def describe_remaining(self) -> str:
        """Remaining budget for people: ``4m 12s left`` or ``120 steps left``."""
        left = self.remaining
        if not self.budget.is_time:
            return f"{int(left)} {self.budget.kind} left"
        unit = " device" if self.budget.kind == DEVICE_TIME else ""
        return f"{format_seconds(left)}{unit} left"


def format_seconds(seconds: float) -> str:
    """``3725`` -> ``1h 02m``; ``252`` -> ``4m 12s``; ``7.5`` -> ``7.5s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    if seconds >= 60:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"
