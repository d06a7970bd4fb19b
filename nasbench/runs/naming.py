"""Where runs live and what they are called: run ids, and a run given as a path or a bare id."""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path

DEFAULT_ROOT = Path("results/runs")


def make_run_id(space: str, data: str, now: datetime | None = None, suffix: str | None = None) -> str:
    """``20261122-193000-efficientnet-cifar10-ab12``: local time, space, data and 4 random hex digits (so
    two runs started in the same second do not collide)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_slug(space)}-{_slug(data)}-{suffix or secrets.token_hex(2)}"


def _slug(text: str) -> str:
    """The last part of a name or path, in lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", Path(str(text)).name.lower()).strip("-") or "x"


def resolve_run(run: str | os.PathLike, root: Path = DEFAULT_ROOT) -> Path:
    """A run given as a path, or as a bare run id under ``root``."""
    path = Path(run)
    if not path.exists() and (Path(root) / path).exists():
        return Path(root) / path
    return path
