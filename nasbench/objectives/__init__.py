"""Objectives of a search: the one table (``table``, torch-free) and expected costs of a distribution
over a space (``expected``, imported on first use since it needs torch)."""

from __future__ import annotations

from typing import Any

from nasbench.objectives.table import (
    CONSTRAINABLE,
    OBJECTIVES,
    Objective,
    check_limits,
    constraint_excess,
    parse_objectives,
    value,
    values,
    violations,
)

_EXPECTED = ("ExpectedCost", "expected_latency", "expected_macs")

__all__ = [
    "CONSTRAINABLE",
    "OBJECTIVES",
    "Objective",
    "check_limits",
    "constraint_excess",
    "parse_objectives",
    "value",
    "values",
    "violations",
    *_EXPECTED,
]


def __getattr__(name: str) -> Any:
    if name in _EXPECTED:
        from nasbench.objectives import expected

        return getattr(expected, name)
    raise AttributeError(f"module 'nasbench.objectives' has no attribute {name!r}")
