"""Tests for nasbench.data: loading (digits, ImageFolder, .npz, CIFAR), caching, errors, augmentation."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasbench.data import (
    DeviceData,
    ImageDataset,
    cifar,
    folder,
    load_dataset,
    search_data,
    split_validation,
    stratified_split,
)
from nasbench.data.cifar import CIFAR_SPECS, CifarSpec
from nasbench.errors import NasbenchError

REAL_CIFAR_TREE = Path("/work/shared/data/cifar10")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache directory, so none reads or writes ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NASBENCH_DATA", str(cache))
    return cache


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_dataset("digits")


# --- helpers: tiny synthetic data -------------------------------------------------------------------


def write_image(path: Path, value: int, size: tuple[int, int] = (8, 8)) -> None:
    """A flat image whose red channel is ``value`` (green and blue derived from it), PNG or JPEG by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[...] = (value, 255 - value, value // 2)
    Image.fromarray(pixels).save(path)


def make_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3) -> Path:
    """ROOT/train/<class>/<i>.png and ROOT/val/<class>/0.png; the red value encodes class and index."""
    for label, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / "train" / name / f"{i}.png", 100 * label + i)
        write_image(root / "val" / name / "0.png", 100 * label + 50)
    return root


def cifar_batch(spec: CifarSpec, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        spec.label_key.encode(): [int(v) for v in rng.integers(0, 3, size=n)],
    }


def write_fake_cifar(spec: CifarSpec, directory: Path, *, archive: bool) -> Path:
    """A tiny copy in the official layout: pickled dicts of (N, 3072) uint8 rows, plus the meta file."""
    members = {m: cifar_batch(spec, 2, seed) for seed, m in enumerate(spec.train_members)}
    members[spec.test_member] = cifar_batch(spec, 3, 99)
    members[spec.meta_member] = {spec.names_key.encode(): [b"apple", b"bear", b"cloud"]}
    extracted = directory / spec.folder
    extracted.mkdir(parents=True)
    for name, record in members.items():
        (extracted / name).write_bytes(pickle.dumps(record, protocol=2))
    if not archive:
        return extracted
    path = directory / spec.archive
    with tarfile.open(path, "w:gz") as tar:
        tar.add(extracted, arcname=spec.folder)
    for file in extracted.iterdir():
        file.unlink()
    extracted.rmdir()
    return path


def flat_dataset(size: int, n_per_class: int = 4, num_classes: int = 3) -> ImageDataset:
    """Images filled with one grey value per class (40 * label + 20), so labels can be read off pixels."""
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), n_per_class)
    images = np.empty((len(labels), size, size, 3), dtype=np.uint8)
    images[...] = (40 * labels + 20)[:, None, None, None]
    return ImageDataset("flat", [str(c) for c in range(num_classes)], images, labels, images, labels)


def replace_images(ds: ImageDataset, images: np.ndarray) -> ImageDataset:
    """The same labels with other images (used as both splits)."""
    return ImageDataset(ds.name, ds.classes, images, ds.train_y, images, ds.test_y)


def to_pixels(batch: torch.Tensor, ds: ImageDataset) -> torch.Tensor:
    """Undo the normalisation by the dataset's statistics: back to 0..255 values."""
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    return (batch * std + mean) * 255


# --- digits and splits ------------------------------------------------------------------------------


def test_digits_shapes_classes_and_fixed_test_split(digits: ImageDataset) -> None:
    assert digits.classes == [str(i) for i in range(10)]
    assert digits.train_x.shape == (1437, 8, 8, 3) and digits.test_x.shape == (360, 8, 8, 3)
    assert digits.train_x.dtype == np.uint8 and digits.train_y.dtype == np.int64
    assert digits.train_x.max() == 255 and np.array_equal(digits.train_x[..., 0], digits.train_x[..., 2])
    assert np.allclose(np.bincount(digits.test_y) / np.bincount(digits.train_y), 0.25, atol=0.03)
    again = load_dataset("digits")
    assert np.array_equal(again.test_x, digits.test_x) and np.array_equal(again.train_y, digits.train_y)
    assert digits.mean[0] == pytest.approx(digits.train_x.mean() / 255)
    assert digits.std[0] == pytest.approx(digits.train_x[..., 0].std() / 255)


def test_split_validation_is_stratified_disjoint_and_seeded(digits: ImageDataset) -> None:
    train_idx, val_idx = split_validation(digits, 0.2, seed=3)
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(digits.train_y)))
    per_class_val = np.bincount(digits.train_y[val_idx], minlength=10)
    assert np.all(np.abs(per_class_val - 0.2 * np.bincount(digits.train_y)) <= 1)
    assert np.array_equal(split_validation(digits, 0.2, seed=3)[1], val_idx)
    assert not np.array_equal(split_validation(digits, 0.2, seed=4)[1], val_idx)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_fraction_outside_zero_one(fraction: float) -> None:
    with pytest.raises(NasbenchError, match="between 0 and 1"):
        stratified_split(np.array([0, 0, 1, 1]), fraction, seed=0)


def test_split_with_too_few_images_per_class_is_a_clear_error() -> None:
    with pytest.raises(NasbenchError, match="Cannot hold out a stratified 10% of 6 images in 3 classes"):
        stratified_split(np.array([0, 0, 1, 1, 2, 2]), 0.1, seed=0)


def test_search_data_never_includes_the_test_split(digits: ImageDataset) -> None:
    train, val = search_data(digits, 0.1, seed=0)
    assert len(train) + len(val) == len(digits.train_y)
    assert train.image_size == (8, 8)


# --- ImageFolder trees ------------------------------------------------------------------------------


def test_image_folder_round_trips(tmp_path: Path) -> None:
    ds = load_dataset(str(make_tree(tmp_path / "pets")))
    assert ds.name == "pets" and ds.classes == ["cat", "dog"]
    assert ds.train_x.shape == (6, 8, 8, 3) and ds.test_x.shape == (2, 8, 8, 3)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1] and ds.test_y.tolist() == [0, 1]
    assert ds.train_x[4, 0, 0].tolist() == [101, 154, 50]  # dog/1.png, PNG is lossless


def test_second_load_hits_cache_and_edits_invalidate_it(tmp_path: Path, monkeypatch) -> None:
    root = make_tree(tmp_path / "pets")
    first = load_dataset(root)
    with monkeypatch.context() as patch:
        patch.setattr(folder, "_decode_images", lambda paths: pytest.fail("decoded again"))
        cached = load_dataset(root)
    assert np.array_equal(cached.train_x, first.train_x) and cached.classes == first.classes
    write_image(root / "train" / "cat" / "extra.png", 7)
    assert len(load_dataset(root).train_y) == 7


def test_unreadable_cache_is_ignored_with_a_warning(tmp_path: Path, cache_dir: Path) -> None:
    root = make_tree(tmp_path / "pets")
    first = load_dataset(root)
    (cache_file,) = (cache_dir / "folders").iterdir()
    cache_file.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="Ignoring the unreadable cache"):
        assert np.array_equal(load_dataset(root).train_x, first.train_x)


def test_image_folder_resizes_to_most_common_size_and_reads_jpeg(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pets")
    write_image(root / "train" / "dog" / "big.jpg", 200, size=(16, 12))
    ds = load_dataset(root)
    assert ds.train_x.shape == (7, 8, 8, 3)


def test_non_image_and_broken_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pets")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "broken.png").write_bytes(b"garbage")
    (root / "train" / "dog" / ".DS_Store").write_bytes(b"hidden files are ignored silently")
    with pytest.warns(UserWarning, match=r"Skipped 2 .*notes\.txt.*broken\.png"):
        ds = load_dataset(root)
    assert len(ds.train_y) == 6


def empty_root(root: Path) -> None:
    root.mkdir()


def train_only(root: Path) -> None:
    (root / "train" / "cat").mkdir(parents=True)


def no_train_classes(root: Path) -> None:
    make_tree(root)
    remove_tree(root / "train")
    (root / "train").mkdir()


def empty_val_class(root: Path) -> None:
    make_tree(root)
    remove_tree(root / "val" / "dog")
    (root / "val" / "dog").mkdir()


def renamed_val_class(root: Path) -> None:
    make_tree(root)
    (root / "val" / "cat").rename(root / "val" / "kitten")


def remove_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    directory.rmdir()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (empty_root, r"bad is an empty folder; expected an ImageFolder tree \(.*/bad/train/<class>/<images>"),
        (train_only, "bad has no val/ or test/ folder"),
        (no_train_classes, "bad/train has no class folders"),
        (empty_val_class, r"bad/val/dog has no images; expected files ending in \.jpg"),
        (renamed_val_class, r"missing: \['cat'\], extra: \['kitten'\]\); both splits need the same"),
    ],
    ids=["empty", "no-val", "no-classes", "empty-class", "class-mismatch"],
)
def test_bad_image_folder_gives_a_clear_error(tmp_path: Path, build, message: str) -> None:
    build(tmp_path / "bad")
    with pytest.raises(NasbenchError, match=message):
        load_dataset(tmp_path / "bad")


def test_class_with_only_unreadable_images_is_an_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pets")
    for path in (root / "train" / "dog").glob("*.png"):
        path.write_bytes(b"not really a png")
    with (
        pytest.warns(UserWarning, match="Skipped 3"),
        pytest.raises(NasbenchError, match="dog has no readable"),
    ):
        load_dataset(root)


def test_unknown_dataset_name_lists_the_valid_ones() -> None:
    with pytest.raises(NasbenchError, match="Unknown dataset 'imagenet9'.*digits, cifar10, cifar100"):
        load_dataset("imagenet9")


def test_directory_that_is_no_dataset_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "readme.txt").write_text("hello")
    with pytest.raises(NasbenchError, match="stuff is not a dataset; expected"):
        load_dataset(tmp_path / "stuff")


# --- .npz -------------------------------------------------------------------------------------------


def test_npz_with_grey_nhw_images_becomes_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    x = rng.integers(0, 256, size=(6, 5, 5), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=np.array([0, 1, 2, 0, 1, 2]), x_test=x[:2], y_test=np.array([0, 1]))
    ds = load_dataset(path)
    assert ds.name == "tiny" and ds.classes == ["0", "1", "2"]
    assert ds.train_x.shape == (6, 5, 5, 3) and np.array_equal(ds.train_x[..., 1], x)


GOOD_NPZ = {
    "x_train": np.zeros((2, 4, 4, 3), np.uint8),
    "y_train": np.array([0, 1]),
    "x_test": np.zeros((1, 4, 4, 3), np.uint8),
    "y_test": np.array([1]),
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"y_train": None, "y_test": None}, "lacks the arrays y_train, y_test; a dataset .npz needs"),
        ({"x_train": np.zeros((2, 4, 4, 3), np.float32)}, "x_train is float32 .* must be uint8 images"),
        ({"x_train": np.zeros((2, 4, 4, 2), np.uint8)}, r"x_train is uint8 with shape \(2, 4, 4, 2\)"),
        ({"y_train": np.array([0, 1, 1])}, r"y_train .* shaped \(2,\) to match x_train"),
        ({"y_test": np.array([-1])}, "y_test has negative labels"),
        ({"x_test": np.zeros((1, 3, 3, 3), np.uint8)}, "both splits need the same height and width"),
        ({"classes": np.array(["only-one"])}, "one class name per label"),
    ],
    ids=[
        "missing-keys",
        "float-images",
        "two-channels",
        "label-count",
        "negative-label",
        "test-size",
        "too-few-classes",
    ],
)
def test_bad_npz_gives_a_clear_error(tmp_path: Path, changes: dict, message: str) -> None:
    arrays = {key: value for key, value in {**GOOD_NPZ, **changes}.items() if value is not None}
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NasbenchError, match=message):
        load_dataset(tmp_path / "bad.npz")


def test_npz_that_is_not_a_zip_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NasbenchError, match=r"junk\.npz is not a readable \.npz"):
        load_dataset(tmp_path / "junk.npz")


# --- CIFAR ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("archive", [True, False], ids=["archive", "extracted"])
def test_fake_cifar10_reads_from_a_given_path(tmp_path: Path, archive: bool) -> None:
    spec = CIFAR_SPECS["cifar10"]
    write_fake_cifar(spec, tmp_path, archive=archive)
    ds = load_dataset(tmp_path)  # the directory holding the archive or the extracted folder
    assert ds.name == "cifar10" and ds.classes == ["apple", "bear", "cloud"]
    assert ds.train_x.shape == (10, 32, 32, 3) and ds.test_x.shape == (3, 32, 32, 3)
    first = cifar_batch(spec, 2, seed=0)
    rows = first[b"data"][0].reshape(3, 32, 32)
    assert np.array_equal(ds.train_x[0], rows.transpose(1, 2, 0))  # planes R, G, B -> HWC
    assert ds.train_y[:2].tolist() == first[b"labels"]


def test_fake_cifar100_found_by_name_in_data_dir_and_cache(tmp_path: Path, cache_dir: Path) -> None:
    spec = CIFAR_SPECS["cifar100"]
    write_fake_cifar(spec, tmp_path / "mine", archive=True)
    assert load_dataset("cifar100", data_dir=tmp_path / "mine").train_x.shape == (2, 32, 32, 3)
    write_fake_cifar(spec, cache_dir, archive=False)
    assert load_dataset("cifar100").test_y.shape == (3,)


def test_cifar_pickle_with_foreign_objects_is_refused(tmp_path: Path) -> None:
    spec = CIFAR_SPECS["cifar10"]
    extracted = write_fake_cifar(spec, tmp_path, archive=False)
    (extracted / "test_batch").write_bytes(pickle.dumps({"data": Path("/etc")}))
    with pytest.raises(NasbenchError, match="not a readable cifar10 copy .*unexpected object"):
        load_dataset(extracted)


def test_failed_download_says_how_to_pass_a_local_copy(cache_dir: Path, monkeypatch) -> None:
    def offline(url: str):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar, "_open_url", offline)
    with pytest.raises(NasbenchError, match=r"Could not download cifar-10-python\.tar\.gz .*--data DIR"):
        load_dataset("cifar10")
    assert list(cache_dir.iterdir()) == []  # no temporary file left behind


def test_download_with_wrong_checksum_leaves_nothing(cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(cifar, "_open_url", lambda url: io.BytesIO(b"an error page, not an archive"))
    with pytest.raises(NasbenchError, match="its MD5 is"):
        load_dataset("cifar100")
    assert list(cache_dir.iterdir()) == []


def test_verified_download_is_kept_under_its_final_name(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    spec = CIFAR_SPECS["cifar10"]
    payload = write_fake_cifar(spec, tmp_path / "server", archive=True).read_bytes()
    monkeypatch.setitem(CIFAR_SPECS, "cifar10", replace(spec, md5=hashlib.md5(payload).hexdigest()))
    monkeypatch.setattr(cifar, "_open_url", lambda url: io.BytesIO(payload))
    assert len(load_dataset("cifar10").train_y) == 10
    assert [p.name for p in cache_dir.iterdir()] == [spec.archive]


# --- DeviceData: batched augmentation ---------------------------------------------------------------


def device_data(ds: ImageDataset) -> DeviceData:
    return DeviceData(ds.train_x, ds.train_y, mean=ds.mean, std=ds.std)


def epoch(
    data: DeviceData, seed: int, *, batch_size: int = 4, resolution: int = 8, drop_last: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return list(data.train_batches(batch_size, resolution, generator=generator, drop_last=drop_last))


@pytest.mark.parametrize("size", [8, 72], ids=["small-crop-pad", "large-random-resized"])
def test_augmentation_is_deterministic_for_a_fixed_seed(size: int) -> None:
    rng = np.random.default_rng(0)
    ds = flat_dataset(size)
    noisy = replace_images(ds, rng.integers(0, 256, size=ds.train_x.shape, dtype=np.uint8))
    data = device_data(noisy)
    first, again, other = epoch(data, 1), epoch(data, 1), epoch(data, 2)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_small_images_keep_labels_aligned_under_crop_and_flip() -> None:
    ds = flat_dataset(8)
    for images, labels in epoch(device_data(ds), 0, resolution=8, drop_last=False):
        centre = to_pixels(images, ds)[:, 0, 4, 4]  # a 1 px shift never reaches the centre
        assert torch.allclose(centre, (40 * labels + 20).float(), atol=1e-3)


def test_large_images_keep_labels_aligned_under_random_resized_crop() -> None:
    ds = flat_dataset(72)
    for images, labels in epoch(device_data(ds), 0, resolution=32):
        expected = (40 * labels + 20).float()[:, None, None, None].expand_as(images)
        assert torch.allclose(to_pixels(images, ds), expected, atol=1e-2)  # crops of a flat image


@pytest.mark.parametrize("size", [8, 72], ids=["small-crop-pad", "large-random-resized"])
def test_flip_and_crop_actually_move_pixels(size: int) -> None:
    step = 240 // size
    ramp = np.arange(size, dtype=np.uint8) * step  # brighter to the right
    ds = replace_images(flat_dataset(size), np.ascontiguousarray(np.broadcast_to(ramp[:, None], (12, size, size, 3))))
    images = torch.cat([b for b, _ in epoch(device_data(ds), 0, resolution=size, drop_last=False)])
    rows = to_pixels(images, ds)[:, 0, size // 2]
    left, right = rows[:, 2], rows[:, -3]
    assert (left < right).any() and (left > right).any()  # some flipped, some not
    assert len({tuple(row.round().tolist()) for row in rows}) > 2  # shifted or cropped differently
    if size > 8:  # random-resized crops zoom in: a row spans less of the ramp
        assert ((right - left).abs() < 0.9 * step * (size - 5)).any()


def test_an_epoch_visits_every_image_once() -> None:
    data = device_data(flat_dataset(8, n_per_class=5))
    labels = torch.cat([y for _, y in epoch(data, 0, batch_size=4, drop_last=False)])
    assert sorted(labels.tolist()) == sorted(data.labels.tolist())
    assert len(epoch(data, 0, batch_size=4)) == data.batches_per_epoch(4) == 3


@pytest.mark.parametrize("resolution", [5, 8, 12])
def test_eval_batches_resize_and_normalise_without_augmentation(resolution: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    ds = replace_images(flat_dataset(8, n_per_class=5, num_classes=2), images)
    batches = list(device_data(ds).eval_batches(4, resolution, channels_last=True))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    out = torch.cat([x for x, _ in batches])
    assert out.shape == (10, 3, resolution, resolution) and out.dtype == torch.float32
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    if resolution == 8:  # no resize: exactly the training split's statistics
        assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
        assert torch.allclose(out.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-4)
        assert torch.allclose(to_pixels(out, ds), torch.from_numpy(images).permute(0, 3, 1, 2).float(), atol=1e-3)


def test_train_batches_have_the_requested_shape_and_dtype(digits: ImageDataset) -> None:
    data = device_data(digits)
    images, labels = next(
        iter(data.train_batches(16, 24, generator=torch.Generator().manual_seed(0), channels_last=True))
    )
    assert images.shape == (16, 3, 24, 24) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and images.is_contiguous(memory_format=torch.channels_last)


def test_batch_size_larger_than_the_split_is_a_clear_error() -> None:
    data = device_data(flat_dataset(8))
    with pytest.raises(NasbenchError, match="Batch size 64 does not fit a split of 12 images"):
        next(data.train_batches(64, 8, generator=torch.Generator()))


# --- the real tree ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CIFAR_TREE.is_dir(), reason=f"{REAL_CIFAR_TREE} is not on this machine")
def test_real_cifar10_tree_loads_and_caches() -> None:
    ds = load_dataset(REAL_CIFAR_TREE)
    assert ds.train_x.shape == (50_000, 32, 32, 3) and ds.test_x.shape == (2_000, 32, 32, 3)
    assert ds.num_classes == 10 and np.bincount(ds.train_y).tolist() == [5_000] * 10
    assert 0.4 < ds.mean[0] < 0.55 and 0.2 < ds.std[0] < 0.3
    assert np.array_equal(load_dataset(REAL_CIFAR_TREE).test_x, ds.test_x)
