"""Comparing stored settings with new ones, to tell a user exactly which setting differs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nasbench.errors import NasbenchError


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The first key (dotted, in sorted order) whose value differs, as ``key: old there, new now``;
    ``None`` when both are equal. Nested dicts are compared key by key, anything else with ``==``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if old == new else f"{path}: {old!r} there, {new!r} now"


def merge_settings(stored: Mapping[str, Any], given: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """A resumed run's settings: the ``stored`` ones, completed by those ``given``; a given setting that
    differs from the stored one is refused, naming it as a ``--flag`` (``what`` says which run)."""
    for key, value in given.items():
        if key in stored and stored[key] != value:
            raise NasbenchError(
                f"{what}: --{key.replace('_', '-')} {value!r} differs from the run's {stored[key]!r}; "
                "drop it to use the stored value"
            )
    return {**stored, **given}
