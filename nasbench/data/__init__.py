"""Image datasets: loaded once into uint8 arrays, held on the training device, augmented in batches there.

Public API::

    load_dataset(name_or_path, *, data_dir=None, cache_dir=None) -> ImageDataset
        "digits" | "cifar10" | "cifar100" | path to an ImageFolder tree, a .npz, a CIFAR archive or folder
    ImageDataset(name, classes, train_x, train_y, test_x, test_y)   # .mean .std .num_classes .image_size
    split_validation(ds, fraction, seed) -> (train_idx, val_idx)     # stratified, disjoint, seeded
    DeviceData(x_uint8, y, *, mean, std, device="cpu")
        .train_batches(batch_size, resolution, *, generator, channels_last=False, drop_last=True)
        .eval_batches(batch_size, resolution, *, channels_last=False)
    search_data(ds, val_fraction, seed, *, device="cpu") -> (train DeviceData, val DeviceData)
    default_cache_dir() -> Path            # $NASBENCH_DATA, else ~/.cache/nasbench/data

The search sees only the training split (and the validation set it carves from it); an ``ImageDataset``'s
``test_x``/``test_y`` are for retraining and reporting alone.

Modules: ``dataset`` (the record, statistics, splits, the .npz format), ``sources`` (names and paths to
datasets, digits), ``cifar`` (official archives, verified download), ``folder`` (ImageFolder trees and their
decoded cache), ``augment`` (``DeviceData`` and the batched augmentation).
"""

from nasbench.data.augment import DeviceData, search_data
from nasbench.data.dataset import ImageDataset, load_npz, split_validation, stratified_split
from nasbench.data.sources import DATASET_NAMES, default_cache_dir, load_dataset

__all__ = [
    "DATASET_NAMES",
    "DeviceData",
    "ImageDataset",
    "default_cache_dir",
    "load_dataset",
    "load_npz",
    "search_data",
    "split_validation",
    "stratified_split",
]
