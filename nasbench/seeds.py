"""Seeds: one way to give each use of a run's seed a stream of its own.

A run has one seed (``--seed``). Every part that draws from it (a sampler, a searcher's steps, a retraining's
mixing, a resumed study) takes ``fork(seed, label, ...)`` instead of an ad-hoc formula, so two uses never share
a stream by accident: NSGA-II's first generation drawn from the run's seed itself would propose the random
searcher's networks.

``fork`` is plain arithmetic on a CRC-32 of the labels, stable across Python versions and processes (unlike
``hash``), so a run resumed elsewhere forks the same seeds.
"""

from __future__ import annotations

import zlib

SEED_SPACE = 2**31  # what every engine accepts (numpy, torch, Optuna's samplers, random.Random)


def fork(seed: int, *labels: str | int) -> int:
    """The seed of one use of ``seed``, named by ``labels`` (``fork(7, "tpe")``, ``fork(7, "proximal-arch", 2)``).

    ``(seed + crc32("/".join(labels))) mod 2**31``: different labels give unrelated seeds, the same labels the
    same seed, and two runs' seeds stay apart by the same amount in every use."""
    if not labels:
        raise ValueError("fork needs at least one label: the use the seed is for")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"a seed is an int, not {type(seed).__name__}")
    key = "/".join(str(label) for label in labels)
    return (seed + zlib.crc32(key.encode())) % SEED_SPACE
