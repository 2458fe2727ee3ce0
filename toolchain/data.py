"""The data stage's sources: image folders (with or without train/val splits) and built-in datasets.

Built-ins are written once as an ordinary image folder under the cache, so every source goes
through the same folder scan, the same `edgeclf.runtime.preprocess` and the same image cache
(`edgeclf.toolchain.cache`) as a user's photos.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeclf.runtime.datasets import builtin_folder, is_written, resolve, stratified_indices, write_folder
from edgeclf.runtime.folder import DatasetError, ImageFolder, LabelledImages, scan_splits
from edgeclf.runtime.imageheader import HeaderError, read_header
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageError, load_image, read_file
from edgeclf.toolchain import cache
from edgeclf.toolchain._tf import keras_home
from edgeclf.toolchain.cache import CacheStats

log = logging.getLogger(__name__)

# Built-ins that Keras downloads: name -> (loader module, the files its loader keeps under ~/.keras/datasets).
KERAS_DATASETS = {
    "mnist": ("mnist", "mnist.npz"),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist/ (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                      "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"),
    "cifar10": ("cifar10", "cifar-10-batches-py.tar.gz (extracted to cifar-10-batches-py/)"),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot")


def materialize_keras(name: str, root: Path | None = None) -> Path:
    """Writes a Keras dataset (downloaded by its own loader) as PNGs: train/ and val/ (Keras' test split).

    Raises:
        DatasetError: the download failed (offline); the message names the file to place and where.
    """
    target = builtin_folder(name, root)
    if is_written(target):
        return target
    from edgeclf.toolchain._tf import keras

    module, files = KERAS_DATASETS[name]
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras().datasets, module).load_data()
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        raise DatasetError(
            f"--data {name}: Keras could not download it ({str(exc).splitlines()[0][:200]}). Offline, place "
            f"{files} in {Path(keras_home()) / 'datasets'} (copy it from a machine that has run "
            f"keras.datasets.{module}.load_data()), or pass an image folder with --data DIR.") from exc
    names = {"cifar10": CIFAR10_CLASSES, "fashion_mnist": FASHION_CLASSES}.get(name, tuple(str(d) for d in range(10)))
    log.info("writing %s as PNG files under %s (once)", name, target)
    return write_folder(target, {"train": (x_train, y_train.reshape(-1)), "val": (x_test, y_test.reshape(-1))}, names)


def resolve_source(source: str) -> Path:
    """A built-in dataset name or a folder path -> the folder to read (Keras' datasets downloaded on first use)."""
    if source in KERAS_DATASETS:
        return materialize_keras(source)
    return resolve(source)


@dataclass
class Splits:
    """The train, validation (and optional test) images of one build, read from the image cache."""

    root: Path
    classes: tuple[str, ...]
    train: LabelledImages
    val: LabelledImages
    ignored: list[dict]  # files skipped by the scan (not an image extension, broken links)
    test: LabelledImages | None = None
    split: str = "folders"  # "folders" (train/ and val/ given) or how the flat folder was split
    cache: CacheStats = field(default_factory=CacheStats)

    @property
    def skipped(self) -> list[dict]:
        """Every file left out, with its path and the reason."""
        parts = [self.train, self.val] + ([self.test] if self.test is not None else [])
        return [item for part in parts for item in part.skipped] + list(self.ignored)

    def class_counts(self) -> dict[str, dict[str, int]]:
        parts = {"train": self.train, "val": self.val, **({"test": self.test} if self.test is not None else {})}
        return {name: {c: int(np.sum(part.labels == i)) for i, c in enumerate(self.classes)}
                for name, part in parts.items()}

    def listing(self) -> dict:
        """The files of each split relative to the root: saved in the run, so the split can be reproduced."""
        def relative(paths: list[str]) -> list[str]:
            return [os.path.relpath(p, self.root) for p in paths]

        listing = {"root": str(self.root), "split": self.split, "classes": list(self.classes),
                   "train": relative(self.train.paths), "val": relative(self.val.paths)}
        if self.test is not None:
            listing["test"] = relative(self.test.paths)
        return listing


def _split_flat(folder: ImageFolder, fraction: float, seed: int) -> tuple[list, list]:
    labels = np.array([label for _, label in folder.files])
    val_indices = set(stratified_indices(labels, max(1, int(round(fraction * len(labels)))), seed).tolist())
    train = [f for i, f in enumerate(folder.files) if i not in val_indices]
    val = [f for i, f in enumerate(folder.files) if i in val_indices]
    return train, val


def _scan_splits(root: Path, val_split: float, seed: int) -> tuple[tuple[str, ...], dict[str, list], list, str]:
    folders = scan_splits(root)
    if "all" in folders:
        folder = folders["all"]
        train, val = _split_flat(folder, val_split, seed)
        return folder.classes, {"train": train, "val": val}, list(folder.ignored), f"--val-split {val_split} --seed {seed}"
    ignored = [item for folder in folders.values() for item in folder.ignored]
    return folders["train"].classes, {name: list(f.files) for name, f in folders.items()}, ignored, "folders"


def image_side(source: str, sample: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS) -> int | None:
    """The median shorter side (px) of up to `sample` images spread over the dataset, or None when none decodes:
    the resolution the images carry. Sizes above it only interpolate (digits are 8 x 8). Read from the headers
    (a format without one is decoded); a file over the pixel budget does not count, as the data stage skips it."""
    files = [path for folder in scan_splits(resolve_source(source)).values() for path, _ in folder.files]
    sides = []
    for path in files[::max(1, len(files) // sample)][:sample]:
        try:
            data = read_file(path, max_pixels)
            header = read_header(data)
            if header is None:
                sides.append(min(load_image(path, max_pixels).shape[:2]))
            elif header.pixels <= max_pixels:
                sides.append(min(header.width, header.height))
        except (ImageError, HeaderError):
            continue  # the data stage reports it
    return int(np.median(sides)) if sides else None


def load_splits(source: str, size: int, val_split: float, seed: int, batch_size: int = 1,
                progress: Callable[[int], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Splits:
    """Scans, splits and decodes a dataset at the model's input size, through the image cache.

    A folder with train/ and val/ (and optional test/) subfolders uses them; otherwise root/<class>/
    is split (stratified, seeded). Unreadable images, and images whose header claims more than `max_pixels`,
    are skipped and listed, never fatal.

    Raises:
        DatasetError: before any training: missing or empty folders, a class with no readable image,
            a single class, train/val class names that differ, fewer training images than a batch.
    """
    root = resolve_source(source)
    classes, files, ignored, split = _scan_splits(root, val_split, seed)
    if len(classes) < 2:
        raise DatasetError(f"{root}: found a single class {list(classes)}; a classifier needs at least two "
                           "class folders.")
    all_files = [path for part in files.values() for path, _ in part]
    pixels, mapping, stats = cache.update(root, all_files, size, progress, max_pixels=max_pixels)
    parts = {name: cache.load(root, part, size, entry=(pixels, mapping)) for name, part in files.items()}
    counts = np.bincount(parts["train"].labels, minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetError(f"{root}: class {', '.join(repr(c) for c in empty)} has no readable training image (every "
                           "file was skipped; run `edgeclf data` on the folder to see why). Add images or remove the class.")
    if len(parts["val"]) == 0:
        raise DatasetError(f"{root}: the val split has no readable images. Check the files listed by `edgeclf data`.")
    if len(parts["train"]) < batch_size:
        raise DatasetError(f"{root}: {len(parts['train'])} training images, fewer than one batch (--batch-size "
                           f"{batch_size}). Add images or pass --batch-size {max(1, len(parts['train']))}.")
    return Splits(root, classes, parts["train"], parts["val"], ignored, parts.get("test"), split, stats)
