"""Comparing stored settings with new ones, to tell a user exactly which setting differs, and the one
resume-merge rule (``merge_resumed``) every resumable command and ``nasbench.search(resume=...)`` use."""

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


def merge_resumed(
    stored: Mapping[str, Any], given: Mapping[str, Any], *, where: str, flags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings of a resumed run: the stored ones, and the options the user gave.

    ``given`` holds only the options given on the command line. A resumed run continues the same run, so a
    given option must equal its stored value; the first one that differs is refused with a ``NasbenchError``
    naming the setting, both values and the flag to drop. ``where`` opens the message (``--out RUN``);
    ``flags`` names the flag of a setting whose flag is not ``--`` + its name with dashes.
    """
    for key, value in given.items():
        if key in stored:
            difference = first_difference(_plain(stored[key]), _plain(value), key)
            if difference:
                flag = (flags or {}).get(key, "--" + key.replace("_", "-"))
                raise NasbenchError(
                    f"{where} holds a different run ({difference}); drop {flag} to use the stored value"
                )
    return {**stored, **given}


def _plain(value: Any) -> Any:
    """As read back from JSON: stored settings hold lists where the options hold tuples."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
