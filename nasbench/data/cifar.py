"""CIFAR-10 / CIFAR-100 from the official python archives: find a local copy, else download and verify it.

Where a copy is looked for, in order: the directory the user gave (``--data DIR``), then the cache directory.
Each may hold the archive (``cifar-10-python.tar.gz``) or its extracted folder (``cifar-10-batches-py``). The
archive is read in place (no extraction). A download goes to a temporary name in the cache directory, is
checked against the official MD5 and only then renamed, so a broken download never poses as the archive.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import io
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from rich.progress import Progress

from nasbench.atomic import atomic_path
from nasbench.data.dataset import ImageDataset
from nasbench.errors import NasbenchError

DOWNLOAD_TIMEOUT_S = 30
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR flavour lives and how its official archive is laid out."""

    name: str
    archive: str  # file name of the official archive
    folder: str  # the folder the archive extracts to
    md5: str  # of the archive, as published on the CIFAR page
    train_members: tuple[str, ...]
    test_member: str
    meta_member: str
    label_key: str  # key of the labels in each batch dict
    names_key: str  # key of the class names in the meta dict

    @property
    def url(self) -> str:
        return f"https://www.cs.toronto.edu/~kriz/{self.archive}"


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        md5="c58f30108f718f92721af3b95e74349a",
        train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_member="test_batch",
        meta_member="batches.meta",
        label_key="labels",
        names_key="label_names",
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_members=("train",),
        test_member="test",
        meta_member="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
    ),
}


def find_cifar(spec: CifarSpec, search_dirs: Iterable[Path]) -> Path | None:
    """The first local copy (archive file or extracted folder) of ``spec`` in ``search_dirs``, if any."""
    for directory in search_dirs:
        if directory.name == spec.folder and directory.is_dir():
            return directory
        for candidate in (directory / spec.folder, directory / spec.archive):
            if candidate.exists():
                return candidate
    return None


def load_cifar(spec: CifarSpec, *, search_dirs: Iterable[Path], cache_dir: Path) -> ImageDataset:
    """Load ``spec`` from the first local copy in ``search_dirs``, downloading into ``cache_dir`` if none."""
    source = find_cifar(spec, search_dirs)
    if source is None:
        source = download_verified(spec.url, cache_dir / spec.archive, spec.md5)
    return read_cifar(spec, source)


def read_cifar(spec: CifarSpec, source: Path) -> ImageDataset:
    """Read the official pickled batches from an archive file or an extracted folder."""
    try:
        if source.is_dir():
            return _read_batches(spec, lambda member: (source / member).read_bytes())
        with tarfile.open(source, "r:*") as tar:
            return _read_batches(spec, lambda member: _tar_member(tar, f"{spec.folder}/{member}"))
    except (OSError, tarfile.TarError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as err:
        raise NasbenchError(
            f"{source} is not a readable {spec.name} copy ({err}); expected the official {spec.archive} "
            f"or its extracted {spec.folder}/ folder from {spec.url}."
        ) from err


def _tar_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)  # raises KeyError when absent
    if member is None:
        raise KeyError(f"{name} is not a file")
    return member.read()


def _read_batches(spec: CifarSpec, read: Callable[[str], bytes]) -> ImageDataset:
    train = [_read_batch(spec, read(member)) for member in spec.train_members]
    test_x, test_y = _read_batch(spec, read(spec.test_member))
    names = _field(_unpickle(read(spec.meta_member)), spec.names_key)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return ImageDataset(
        name=spec.name,
        classes=classes,
        train_x=np.concatenate([x for x, _ in train]),
        train_y=np.concatenate([y for _, y in train]),
        test_x=test_x,
        test_y=test_y,
    )


def _read_batch(spec: CifarSpec, payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: rows of 3072 bytes (1024 red, 1024 green, 1024 blue, row-major 32x32) -> NHWC."""
    batch = _unpickle(payload)
    data = np.asarray(_field(batch, "data"), dtype=np.uint8)
    labels = np.asarray(_field(batch, spec.label_key), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"batch data has shape {data.shape} and {len(labels)} labels, expected (N, 3072)")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _field(record: dict, key: str) -> object:
    """Python 2 batches have str keys when read as latin1; batches pickled again may have bytes keys."""
    if key in record:
        return record[key]
    return record[key.encode()]


# numpy moved this function between 1.x and 2.x; asking an array how it pickles finds it in either.
_NUMPY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches and nothing else: only the few numpy globals they need may be loaded.

    The archives are pickles, and a pickle from an arbitrary path could run arbitrary code.
    """

    _ALLOWED: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,  # numpy 1.x and Python 2 pickles
        ("numpy._core.multiarray", "_reconstruct"): _NUMPY_RECONSTRUCT,  # numpy 2.x pickles
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch") from None


def _unpickle(payload: bytes) -> dict:
    # latin1, as torchvision does: it is what numpy arrays pickled by Python 2 need.
    record = _CifarUnpickler(io.BytesIO(payload), encoding="latin1").load()
    if not isinstance(record, dict):
        raise ValueError(f"expected a pickled dict, got {type(record).__name__}")
    return record


def _open_url(url: str) -> BinaryIO:
    """Open ``url`` for streaming: the only network call, kept apart so tests can replace it."""
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)


class _WrongChecksum(Exception):
    """Raised inside the atomic write to abort it: the download is not the official archive."""


def download_verified(url: str, dest: Path, md5: str) -> Path:
    """Download ``url`` to ``dest`` via a temporary file (``nasbench.atomic``); keep it only if its MD5
    matches, so a broken download never poses as the archive."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, _open_url(url) as response:
                digest = _copy_with_md5(response, out, dest.name)
            if digest != md5:
                raise _WrongChecksum(f"its MD5 is {digest}, not the official {md5}")
        return dest
    except _WrongChecksum as err:
        problem = str(err)
    except (OSError, http.client.HTTPException) as err:
        problem = f"{type(err).__name__}: {err}"
    raise NasbenchError(
        f"Could not download {dest.name} from {url} ({problem}); download it yourself and pass "
        f"--data DIR for the directory that holds it (the archive or its extracted folder), or put it in "
        f"{dest.parent} (set NASBENCH_DATA to use another cache directory)."
    )


def _copy_with_md5(response: BinaryIO, out: BinaryIO, label: str) -> str:
    md5 = hashlib.md5(usedforsecurity=False)  # the publisher's integrity checksum
    headers = getattr(response, "headers", None)
    total = int(headers.get("Content-Length", 0)) if headers is not None else 0
    with Progress(transient=True) as progress:
        task = progress.add_task(f"Downloading {label}", total=total or None)
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            md5.update(chunk)
            progress.advance(task, len(chunk))
    return md5.hexdigest()
