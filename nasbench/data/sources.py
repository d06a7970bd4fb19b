"""``load_dataset``: one entry point that turns a dataset name or a path into an ``ImageDataset``.

Names win over paths: ``digits``, ``cifar10`` and ``cifar100`` are datasets; to load a folder that happens to
be called ``digits`` in the working directory, write ``./digits``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nasbench.data.cifar import CIFAR_SPECS, CifarSpec, find_cifar, load_cifar, read_cifar
from nasbench.data.dataset import ImageDataset, load_npz, stratified_split
from nasbench.data.folder import load_image_folder
from nasbench.errors import NasbenchError

DATASET_NAMES = ("digits", *CIFAR_SPECS)
CACHE_ENV = "NASBENCH_DATA"
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 20240601  # fixed so that everyone's digits test split is the same


def default_cache_dir() -> Path:
    """Where downloads and decoded trees are cached: ``$NASBENCH_DATA``, else ``~/.cache/nasbench/data``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "nasbench" / "data"


def load_dataset(
    name_or_path: str | Path, *, data_dir: Path | None = None, cache_dir: Path | None = None
) -> ImageDataset:
    """Load a dataset by name (``digits``, ``cifar10``, ``cifar100``) or by path.

    A path may be an ImageFolder tree (``ROOT/train/<class>/...`` and ``ROOT/val/...`` or ``test/``), a
    ``.npz`` file, a CIFAR archive or extracted folder, or a directory holding one of those. For the CIFAR
    names, ``data_dir`` is searched before the cache directory (``cache_dir``, else ``default_cache_dir()``),
    and the archive is downloaded into the cache directory when neither has it.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = str(name_or_path).strip().lower()
    if key == "digits":
        return load_digits_dataset()
    if key in CIFAR_SPECS:
        search_dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
        return load_cifar(CIFAR_SPECS[key], search_dirs=[*search_dirs, cache], cache_dir=cache)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _load_path(path, cache)
    raise NasbenchError(
        f"Unknown dataset {str(name_or_path)!r}: it is neither one of {', '.join(DATASET_NAMES)} nor an "
        "existing path to an ImageFolder tree, a .npz file or a CIFAR archive or folder."
    )


def load_digits_dataset() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits as 3-channel uint8 images, with a fixed stratified 20% test split."""
    from sklearn.datasets import load_digits  # imported here: sklearn costs seconds

    bunch = load_digits()
    grey = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # pixel values are 0..16
    images = np.repeat(grey[..., None], 3, axis=3)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    return ImageDataset(
        name="digits",
        classes=[str(int(c)) for c in bunch.target_names],
        train_x=images[train_idx],
        train_y=labels[train_idx],
        test_x=images[test_idx],
        test_y=labels[test_idx],
    )


def _load_path(path: Path, cache_dir: Path) -> ImageDataset:
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        spec = next((s for s in CIFAR_SPECS.values() if path.name == s.archive), None)
        if spec is not None:
            return read_cifar(spec, path)
    elif (path / "train").is_dir():
        return load_image_folder(path, cache_dir=cache_dir)
    else:
        found = _cifar_in(path)
        if len(found) == 1:
            return read_cifar(*found[0])
        if len(found) > 1:
            raise NasbenchError(
                f"{path} holds both CIFAR-10 and CIFAR-100; pass the archive or extracted folder itself, or "
                f"give the name (cifar10 or cifar100) with this directory as the data directory."
            )
    problem = "is an empty folder" if path.is_dir() and not any(path.iterdir()) else "is not a dataset"
    raise NasbenchError(
        f"{path} {problem}; expected an ImageFolder tree ({path}/train/<class>/"
        "<images> plus val/ or test/), a .npz file with x_train, y_train, x_test, y_test, or a CIFAR "
        "archive or extracted folder (or a directory holding one)."
    )


def _cifar_in(directory: Path) -> list[tuple[CifarSpec, Path]]:
    """The CIFAR copies a directory is, or holds (archive or extracted folder), at most one per flavour."""
    found = ((spec, find_cifar(spec, [directory])) for spec in CIFAR_SPECS.values())
    return [(spec, source) for spec, source in found if source is not None]
