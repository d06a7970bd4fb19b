"""ImageFolder trees (``ROOT/train/<class>/*.png`` and ``ROOT/val/<class>/...``), decoded once and cached.

Decoding tens of thousands of small files takes far longer than training on them for an epoch, so a tree is
decoded once into a .npz file in the cache directory. The cache file is named by the tree's absolute path and
a fingerprint of its image files (relative names, sizes, modification times): editing, adding or removing an
image makes a new cache entry, and an unchanged tree is never decoded twice.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import Progress

from nasbench.data.dataset import ImageDataset, load_npz, save_npz_atomic
from nasbench.errors import NasbenchError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
TEST_SPLIT_NAMES = ("val", "test")  # the first that exists is the tree's held-out split
CACHE_VERSION = 1  # bump when decoding changes, so that stale caches are not reused
PARALLEL_MIN_FILES = 2048  # below this, starting worker processes costs more than it saves
_SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class ScannedSplit:
    """The files of one split of a tree, before decoding."""

    directory: Path
    classes: list[str]
    files: list[Path]  # files with an image suffix, sorted by class then path
    labels: list[int]  # index into classes, one per file
    skipped: list[Path]  # files that are not images by name


def load_image_folder(root: Path, *, cache_dir: Path | None) -> ImageDataset:
    """Load an ImageFolder tree, from the decoded cache in ``cache_dir`` when the tree is unchanged."""
    root = root.expanduser().resolve()
    train, test = scan_tree(root)
    if cache_dir is None:
        return decode_tree(root, train, test)
    cache_path = cache_dir / "folders" / f"{_slug(root.name)}-{tree_fingerprint(root, train, test)}.npz"
    if cache_path.is_file():
        try:
            return load_npz(cache_path, name=root.name)
        except NasbenchError as err:
            warnings.warn(f"Ignoring the unreadable cache {cache_path} ({err}).", stacklevel=2)
    dataset = decode_tree(root, train, test)
    try:
        save_npz_atomic(cache_path, dataset)
    except OSError as err:
        warnings.warn(f"Could not write the image cache {cache_path} ({err}); it will be decoded again.", stacklevel=2)
    return dataset


def scan_tree(root: Path) -> tuple[ScannedSplit, ScannedSplit]:
    """List the (train, held-out) files of a tree, checking its layout."""
    layout = f"expected {root}/train/<class>/<images> and {root}/val/<class>/<images> (or test/)"
    if not (root / "train").is_dir():
        raise NasbenchError(f"{root} has no train/ folder; {layout}.")
    held_out = next((root / name for name in TEST_SPLIT_NAMES if (root / name).is_dir()), None)
    if held_out is None:
        raise NasbenchError(f"{root} has no val/ or test/ folder; {layout}.")
    train = _scan_split(root / "train", expected_classes=None)
    return train, _scan_split(held_out, expected_classes=train.classes)


def _scan_split(directory: Path, expected_classes: list[str] | None) -> ScannedSplit:
    entries = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in entries if p.is_dir()]
    if not class_dirs:
        raise NasbenchError(f"{directory} has no class folders; expected {directory}/<class>/<images>.")
    classes = [p.name for p in class_dirs]
    if expected_classes is not None and classes != expected_classes:
        missing = sorted(set(expected_classes) - set(classes)) or "none"
        extra = sorted(set(classes) - set(expected_classes)) or "none"
        raise NasbenchError(
            f"The class folders of {directory} do not match those of train/ (missing: {missing}, extra: "
            f"{extra}); both splits need the same class folder names."
        )
    files: list[Path] = []
    labels: list[int] = []
    skipped = [p for p in entries if p.is_file()]  # loose files belong to no class
    for label, class_dir in enumerate(class_dirs):
        images, others = _class_files(class_dir)
        if not images:
            raise NasbenchError(
                f"Class folder {class_dir} has no images; expected files ending in {', '.join(IMAGE_SUFFIXES)}."
            )
        files += images
        labels += [label] * len(images)
        skipped += others
    return ScannedSplit(directory, classes, files, labels, skipped)


def _class_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under one class folder, recursively and sorted, hidden ones left out."""
    images, others = [], []
    for parent, subdirs, names in os.walk(class_dir):  # os.walk: far faster than rglob on 50k files
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = Path(parent, name)
            (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others


def tree_fingerprint(root: Path, *splits: ScannedSplit) -> str:
    """A short digest of the tree's path and image files (relative name, size, mtime): the cache key."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}\0{root}".encode())
    for split in splits:
        for path in split.files:
            stat = path.stat()
            digest.update(f"\0{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "tree"


def decode_tree(root: Path, train: ScannedSplit, test: ScannedSplit) -> ImageDataset:
    """Decode every image to RGB and resize the odd ones out to the most common size in the tree."""
    results = _decode_images([*train.files, *test.files])
    train_images, train_y = _usable(train, results[: len(train.files)])
    test_images, test_y = _usable(test, results[len(train.files) :])
    size = Counter(a.shape[:2] for a in (*train_images, *test_images)).most_common(1)[0][0]
    return ImageDataset(
        name=root.name,
        classes=train.classes,
        train_x=_stack(train_images, size),
        train_y=train_y,
        test_x=_stack(test_images, size),
        test_y=test_y,
    )


def _decode_images(paths: list[Path]) -> list[np.ndarray | str]:
    """Each file as an RGB uint8 array, or the reason it could not be read; parallel over processes."""
    names = [str(p) for p in paths]
    workers = _usable_cpus()
    with Progress(transient=True) as progress:
        label = f"Decoding {len(names)} images"
        if workers < 2 or len(names) < PARALLEL_MIN_FILES:
            return list(progress.track(map(_decode_one, names), total=len(names), description=label))
        with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
            decoded = pool.map(_decode_one, names, chunksize=256)
            return list(progress.track(decoded, total=len(names), description=label))


def _decode_one(path: str) -> np.ndarray | str:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"{type(err).__name__}: {err}"


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pool_context() -> multiprocessing.context.BaseContext | None:
    """fork on Linux: workers only run PIL, and forking spares each one from re-importing torch."""
    return multiprocessing.get_context("fork") if sys.platform == "linux" else None


def _usable(split: ScannedSplit, results: list[np.ndarray | str]) -> tuple[list[np.ndarray], np.ndarray]:
    """The decoded images and labels of a split; warns of files left out, fails if a class is left empty."""
    problems = [f"{p} (not an image file name)" for p in split.skipped]
    images, labels = [], []
    for path, label, result in zip(split.files, split.labels, results, strict=True):
        if isinstance(result, str):
            problems.append(f"{path} ({result})")
        else:
            images.append(result)
            labels.append(label)
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        warnings.warn(f"Skipped {len(problems)} unusable file(s) under {split.directory}: {shown}{more}.", stacklevel=4)
    labels_array = np.asarray(labels, dtype=np.int64)
    for label, name in enumerate(split.classes):
        if not np.any(labels_array == label):
            raise NasbenchError(
                f"Class folder {split.directory / name} has no readable images; every class needs at least "
                f"one {', '.join(IMAGE_SUFFIXES)} file that decodes."
            )
    return images, labels_array


def _stack(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Stack into (N, H, W, 3), resizing odd sizes (PIL bilinear, which antialiases when shrinking)."""
    height, width = size
    out = np.empty((len(images), height, width, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.shape[:2] != size:
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
        out[i] = image
    return out
