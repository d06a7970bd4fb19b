"""Comparing stored settings with new ones, to tell a user exactly which setting differs."""

from __future__ import annotations

from typing import Any


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
