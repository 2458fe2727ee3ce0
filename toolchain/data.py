"""The data stage's sources: image folders (with or without train/val splits) and built-in datasets.

Built-ins are written once as an ordinary image folder under the cache, so every source goes
through the same folder scan and the same `edgeclf.runtime.preprocess` as the device.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeclf.calibration.representative import stratified_indices
from edgeclf.runtime.folder import DatasetError, ImageFolder, LoadedImages, load, scan

log = logging.getLogger(__name__)

BUILTINS = ("digits",)
DIGITS_VERSION = 1


def cache_root() -> Path:
    """Where edgeclf keeps built-in datasets: $EDGECLF_CACHE, else ~/.cache/edgeclf."""
    return Path(os.environ.get("EDGECLF_CACHE") or Path.home() / ".cache" / "edgeclf")


def materialize_digits(root: Path | None = None) -> Path:
    """Writes scikit-learn's 1,797 handwritten digits as 8x8 grayscale PNGs in train/ and val/.

    The split is fixed (20% validation, stratified, seed 0) so every run sees the same val set.
    Written into a temporary folder and renamed, so a half-written dataset is never used.
    """
    target = (root or cache_root() / "datasets") / f"digits-v{DIGITS_VERSION}"
    if (target / "train").is_dir() and (target / "val").is_dir():
        return target
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError('The built-in digits dataset needs scikit-learn: pip install "edgeclf[train]".') from exc
    digits = load_digits()
    pixels = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    val = np.zeros(len(pixels), dtype=bool)
    val[stratified_indices(digits.target, int(round(0.2 * len(pixels))), seed=0)] = True
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".digits-", dir=target.parent))
    try:
        for i, (image, label) in enumerate(zip(pixels, digits.target)):
            folder = staging / ("val" if val[i] else "train") / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), image)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "val").is_dir():
            raise
    return target


def resolve_source(source: str) -> Path:
    """A built-in dataset name or a folder path -> the folder to read."""
    if source in BUILTINS:
        return materialize_digits()
    return Path(source)


@dataclass
class Splits:
    """Preprocessed train and validation images of one build."""

    root: Path
    classes: tuple[str, ...]
    train: LoadedImages
    val: LoadedImages
    ignored: list[dict]


def _split_flat(folder: ImageFolder, fraction: float, seed: int) -> tuple[list, list]:
    labels = np.array([label for _, label in folder.files])
    val_indices = set(stratified_indices(labels, max(1, int(round(fraction * len(labels)))), seed).tolist())
    train = [f for i, f in enumerate(folder.files) if i not in val_indices]
    val = [f for i, f in enumerate(folder.files) if i in val_indices]
    return train, val


def load_splits(source: str, size: int, val_split: float, seed: int) -> Splits:
    """Scans, splits and decodes a dataset at the model's input size.

    A folder with train/ and val/ subfolders uses them; otherwise root/<class>/ is split
    (stratified, seeded). Unreadable images are skipped and listed, never fatal.

    Raises:
        DatasetError: missing or empty folders, train/val class names that differ, a single class.
    """
    root = resolve_source(source)
    if (root / "train").is_dir():
        if not (root / "val").is_dir():
            raise DatasetError(f"{root}: has train/ but no val/ folder. Add {root}/val/<class>/ images, "
                               "or put the class folders directly in the root to split automatically.")
        train_folder, val_folder = scan(root / "train"), scan(root / "val")
        if train_folder.classes != val_folder.classes:
            raise DatasetError(f"{root}: train/ classes {list(train_folder.classes)} differ from val/ classes "
                               f"{list(val_folder.classes)}. Give both splits the same class folders.")
        classes, train_files, val_files = train_folder.classes, train_folder.files, val_folder.files
        ignored = list(train_folder.ignored + val_folder.ignored)
    else:
        folder = scan(root)
        classes, ignored = folder.classes, list(folder.ignored)
        train_files, val_files = _split_flat(folder, val_split, seed)
    if len(classes) < 2:
        raise DatasetError(f"{root}: found a single class {list(classes)}; a classifier needs at least two "
                           "class folders.")
    train, val = load(train_files, size), load(val_files, size)
    for name, split in (("train", train), ("val", val)):
        if len(split.labels) == 0:
            raise DatasetError(f"{root}: the {name} split has no readable images. Check the files listed as skipped.")
    return Splits(root, classes, train, val, ignored)
