"""A dataset split held on the training device, augmented a whole batch at a time.

Images stay uint8 NCHW on the device (CIFAR-10's training split is 150 MB), and each batch is augmented
with a few tensor ops: no per-image Python loop and no DataLoader workers, which on small images cost more
than the network. The augmentation follows the usual recipes:

- small images (at most 64 px a side): random crop with zero padding (4 px at 32x32, scaled) + flip;
- larger images: random-resized crop (scale 0.25..1, aspect 3/4..4/3) + flip;

then a bilinear resize to the resolution the architecture asks for (antialiased when shrinking), conversion
to float32 and normalisation by the training split's per-channel mean and std.

Every random draw comes from the caller's CPU ``torch.Generator`` (the draws are a few numbers per image),
so the same seed gives the same batches whatever the device.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nasbench.data.dataset import ImageDataset, split_validation
from nasbench.errors import NasbenchError

SMALL_IMAGE_MAX = 64  # the largest side that still gets crop-with-padding instead of random-resized crop
PAD_PER_PIXEL = 4 / 32  # CIFAR's 4 px of padding at 32 px, scaled with the image
RRC_SCALE = (0.25, 1.0)  # random-resized crop: fraction of the image area kept
RRC_RATIO = (3 / 4, 4 / 3)  # random-resized crop: aspect ratio (width / height) of the crop

Batch = tuple[Tensor, Tensor]


class DeviceData:
    """Images and labels of one split, held as tensors on ``device``; yields normalised float32 batches."""

    def __init__(
        self,
        x_uint8: np.ndarray,
        y: np.ndarray,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
    ) -> None:
        if x_uint8.dtype != np.uint8 or x_uint8.ndim != 4 or x_uint8.shape[3] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {x_uint8.dtype} {x_uint8.shape}")
        if len(y) != len(x_uint8):
            raise ValueError(f"{len(y)} labels for {len(x_uint8)} images")
        self.device = torch.device(device)
        images = torch.from_numpy(np.ascontiguousarray(x_uint8)).to(self.device)
        self.images = images.permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, H, W)
        self.labels = torch.as_tensor(np.asarray(y), dtype=torch.int64).to(self.device)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # uint8 value -> normalised, as one multiply-add
        self._shift = mean_t / std_t

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> DeviceData:
        """The first ``n`` images of the split (all of them when ``n`` is None or not smaller), sharing storage."""
        if n is None or n >= len(self):
            return self
        out = copy.copy(self)
        out.images, out.labels = self.images[:n], self.labels[:n]
        return out

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the stored images, before any resize."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def batches_per_epoch(self, batch_size: int, *, drop_last: bool = True) -> int:
        return len(self) // batch_size if drop_last else math.ceil(len(self) / batch_size)

    def train_batches(
        self,
        batch_size: int,
        resolution: int,
        *,
        generator: torch.Generator,
        channels_last: bool = False,
        drop_last: bool = True,
    ) -> Iterator[Batch]:
        """One shuffled, augmented epoch of (images float32 (B, 3, R, R), labels int64 (B,))."""
        self._check_batch_size(batch_size, drop_last)
        if generator.device.type != "cpu":
            raise ValueError("train_batches draws its randomness from a CPU torch.Generator")
        order = torch.randperm(len(self), generator=generator).to(self.device)
        for batch in range(self.batches_per_epoch(batch_size, drop_last=drop_last)):
            index = order[batch * batch_size : (batch + 1) * batch_size]
            images = self._augment(self.images[index], generator)
            yield self._finish(images, resolution, channels_last), self.labels[index]

    def eval_batches(self, batch_size: int, resolution: int, *, channels_last: bool = False) -> Iterator[Batch]:
        """Every image once, in order, without augmentation: just resized and normalised."""
        self._check_batch_size(batch_size, drop_last=False)
        for start in range(0, len(self), batch_size):
            images = self.images[start : start + batch_size].float()
            yield self._finish(images, resolution, channels_last), self.labels[start : start + batch_size]

    def _check_batch_size(self, batch_size: int, drop_last: bool) -> None:
        if batch_size < 1 or (drop_last and batch_size > len(self)):
            raise NasbenchError(
                f"Batch size {batch_size} does not fit a split of {len(self)} images; use a batch size "
                f"between 1 and {len(self)}."
            )

    def _augment(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 batch -> augmented float32 batch in 0..255, still at the stored size."""
        if max(self.image_size) <= SMALL_IMAGE_MAX:
            return random_crop_flip(images, generator).float()
        return random_resized_crop_flip(images.float(), generator)

    def _finish(self, images: Tensor, resolution: int, channels_last: bool) -> Tensor:
        images = resize(images, resolution)
        images = images.mul_(self._scale).sub_(self._shift)
        return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def random_crop_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Per-image random crop from a zero-padded copy, plus a random horizontal flip, as two gathers."""
    n, c, h, w = images.shape
    pad_h, pad_w = round(h * PAD_PER_PIXEL), round(w * PAD_PER_PIXEL)
    dy = torch.randint(0, 2 * pad_h + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad_w + 1, (n,), generator=generator).to(images.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h))
    rows = dy[:, None] + torch.arange(h, device=images.device)  # (n, h): source row of each output row
    cols = dx[:, None] + torch.arange(w, device=images.device)  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip is reading the columns backwards
    picked_rows = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad_w))
    return picked_rows.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_resized_crop_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Per-image random-resized crop + horizontal flip of a float batch, sampled back to the stored size.

    Each crop box is at most the image, so sampling it at the full stored size only ever magnifies (no
    aliasing); the antialiased resize to the requested resolution comes after, in ``resize``.
    """
    n, c, h, w = images.shape
    area = torch.empty(n).uniform_(*RRC_SCALE, generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), generator=generator)
    ratio = log_ratio.exp()
    box_w = (area * ratio * h / w).sqrt().clamp(max=1.0)  # box size as a fraction of the image side
    box_h = (area / ratio * w / h).sqrt().clamp(max=1.0)
    centre_x = box_w / 2 + torch.rand(n, generator=generator) * (1 - box_w)  # in [0, 1] image units
    centre_y = box_h / 2 + torch.rand(n, generator=generator) * (1 - box_h)
    flip = torch.rand(n, generator=generator) < 0.5
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -box_w, box_w)  # a negative x scale mirrors the crop
    theta[:, 0, 2] = 2 * centre_x - 1
    theta[:, 1, 1] = box_h
    theta[:, 1, 2] = 2 * centre_y - 1
    grid = F.affine_grid(theta.to(images.device, images.dtype), [n, c, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize(images: Tensor, resolution: int) -> Tensor:
    """Bilinear resize of a float batch to resolution x resolution, antialiased when shrinking."""
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    h, w = images.shape[2:]
    if (h, w) == (resolution, resolution):
        return images
    shrinking = resolution < h or resolution < w
    return F.interpolate(
        images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrinking
    )


def search_data(
    ds: ImageDataset, val_fraction: float, seed: int, *, device: str | torch.device = "cpu"
) -> tuple[DeviceData, DeviceData]:
    """The search's (train, validation) splits on ``device``, carved from the training split only."""
    train_idx, val_idx = split_validation(ds, val_fraction, seed)
    stats = {"mean": ds.mean, "std": ds.std, "device": device}
    return (
        DeviceData(ds.train_x[train_idx], ds.train_y[train_idx], **stats),
        DeviceData(ds.train_x[val_idx], ds.train_y[val_idx], **stats),
    )
