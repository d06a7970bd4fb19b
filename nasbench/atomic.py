"""Atomic file writes: the one place nasbench replaces a file.

Every writer goes through ``atomic_path``: the content is written to a temporary file beside the target
(same folder, so the final ``os.replace`` is a rename on one file system), flushed and fsync'ed, then moved
over the target. A process killed at any moment leaves the previous file or the new one, never half of
one, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on a clean exit it replaces ``path``.

    For writers that want a file name (``DataFrame.to_parquet``, ``Figure.savefig``, ``torch.save``,
    safetensors). The parent folder must exist.
    """
    target = Path(path)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a replaced file gets what open() would give
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> Path:
    """Replace ``path`` with ``data`` as JSON (a trailing newline) atomically."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")
