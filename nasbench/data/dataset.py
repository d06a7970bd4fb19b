"""The in-memory dataset record, its channel statistics, seeded stratified splits and the .npz format.

An ``ImageDataset`` is plain data: uint8 HWC images and int64 labels for a training split and for the
dataset's own test split. The search only ever sees the training split (it carves its validation set out of
it with ``split_validation``); ``test_x``/``test_y`` are read by retraining and reporting alone.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasbench.atomic import atomic_path
from nasbench.errors import NasbenchError

Stats = tuple[float, float, float]

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole dataset held in memory as uint8 arrays.

    ``mean``/``std`` are per-channel statistics of the training split in [0, 1] units; they are computed
    here, once, so that every consumer normalises the same way.
    """

    name: str
    classes: list[str]
    train_x: np.ndarray  # uint8 (N, H, W, 3)
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray  # uint8 (M, H, W, 3): the dataset's own test/val split, never seen by the search
    test_y: np.ndarray  # int64 (M,)
    mean: Stats = field(init=False)
    std: Stats = field(init=False)

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            _check_split(split, x, y, len(self.classes))
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"train images {self.train_x.shape[1:]} and test {self.test_x.shape[1:]} differ")
        mean, std = channel_stats(self.train_x)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return int(self.train_x.shape[1]), int(self.train_x.shape[2])

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"ImageDataset({self.name!r}, {self.num_classes} classes, {h}x{w}, "
            f"train={len(self.train_y)}, test={len(self.test_y)})"
        )


def _check_split(split: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """Internal invariants; loaders turn bad user data into NasbenchError before reaching here."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise ValueError(f"{split} images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}")
    if y.dtype != np.int64 or y.shape != (len(x),):
        raise ValueError(f"{split} labels must be int64 ({len(x)},), got {y.dtype} {y.shape}")
    if len(x) == 0:
        raise ValueError(f"{split} split is empty")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{split} labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")


def channel_stats(images: np.ndarray) -> tuple[Stats, Stats]:
    """Exact per-channel mean and std of uint8 HWC images, in [0, 1] units.

    Counting the 256 possible values per channel is exact and needs no float copy of the images (a float64
    copy of CIFAR's training split would take 1.2 GB).
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        counts = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        p = counts / counts.sum()
        mean = float(p @ values)
        means.append(mean)
        stds.append(float(np.sqrt(max(p @ (values - mean) ** 2, 1e-12))))
    return tuple(means), tuple(stds)  # type: ignore[return-value]


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices (kept, held_out) holding out ``fraction`` of every class; same seed, same split."""
    if not 0.0 < fraction < 1.0:
        raise NasbenchError(f"The held-out fraction must lie strictly between 0 and 1, got {fraction}.")
    from sklearn.model_selection import StratifiedShuffleSplit  # imported here: sklearn costs seconds

    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    try:
        kept, held_out = next(splitter.split(np.zeros(len(labels)), labels))
    except ValueError as err:  # too few images per class for this fraction
        raise NasbenchError(
            f"Cannot hold out a stratified {fraction:.0%} of {len(labels)} images in "
            f"{len(np.unique(labels))} classes ({err}); use a larger dataset or another fraction."
        ) from err
    return np.sort(kept).astype(np.int64), np.sort(held_out).astype(np.int64)


def split_validation(ds: ImageDataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The search's (train, validation) indices into ``ds.train_x``: stratified, disjoint, seeded.

    The dataset's own test split is deliberately not an input: the search never sees it.
    """
    return stratified_split(ds.train_y, fraction, seed)


def load_npz(path: Path, *, name: str | None = None) -> ImageDataset:
    """Read ``x_train, y_train, x_test, y_test`` (uint8 NHWC or NHW; optional ``classes``) from a .npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise NasbenchError(
                    f"{path} lacks the arrays {', '.join(missing)}; a dataset .npz needs x_train, y_train, "
                    "x_test, y_test (uint8 images NHWC or NHW, integer labels) and optionally classes."
                )
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise NasbenchError(f"{path} is not a readable .npz file ({err}).") from err
    x_train, y_train = _npz_split(path, "train", arrays["x_train"], arrays["y_train"])
    x_test, y_test = _npz_split(path, "test", arrays["x_test"], arrays["y_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NasbenchError(
            f"{path}: x_train images are {x_train.shape[1:3]} but x_test images are {x_test.shape[1:3]}; "
            "both splits need the same height and width."
        )
    classes = _npz_classes(path, arrays.get("classes"), max(y_train.max(), y_test.max()) + 1)
    return ImageDataset(name or path.stem, classes, x_train, y_train, x_test, y_test)


def _npz_split(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate one split of a user's .npz and bring it to uint8 (N, H, W, 3) / int64 (N,)."""
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)):
        raise NasbenchError(
            f"{path}: x_{split} is {x.dtype} with shape {x.shape}; it must be uint8 images shaped "
            "(N, H, W, 3), (N, H, W, 1) or (N, H, W)."
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or len(y) == 0:
        raise NasbenchError(
            f"{path}: y_{split} is {y.dtype} with shape {y.shape}; it must be non-empty integer labels "
            f"shaped ({len(x)},) to match x_{split}."
        )
    if y.min() < 0:
        raise NasbenchError(f"{path}: y_{split} has negative labels; labels must be 0 .. num_classes - 1.")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _npz_classes(path: Path, classes: np.ndarray | None, num_labels: int) -> list[str]:
    if classes is None:
        return [str(i) for i in range(num_labels)]
    names = [str(c) for c in np.asarray(classes).ravel()]
    if len(names) < num_labels:
        raise NasbenchError(
            f"{path}: classes names {len(names)} classes but the labels go up to {num_labels - 1}; "
            "give one class name per label."
        )
    return names


def save_npz_atomic(path: Path, ds: ImageDataset) -> None:
    """Write ``ds`` in the .npz dataset format; readers never see a half-written file (``nasbench.atomic``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:  # a file object: np.savez would append .npz to a name
        np.savez(
            out,
            x_train=ds.train_x,
            y_train=ds.train_y,
            x_test=ds.test_x,
            y_test=ds.test_y,
            classes=np.array(ds.classes, dtype=np.str_),
        )
