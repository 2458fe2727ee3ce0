"""Built-in datasets as ordinary image folders under edgeclf's cache, so every command reads them like a user's photos.

digits (scikit-learn's 1,797 8x8 handwritten digits) is written here, once, by any command that names it.
mnist, fashion_mnist and cifar10 are downloaded by Keras: the toolchain writes them
(`edgeclf.toolchain.data.materialize_keras`, on the first `edgeclf build --data NAME` or `edgeclf data NAME`),
and a runtime command reads the folder it left.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from edgeclf.runtime.files import cache_root
from edgeclf.runtime.folder import DatasetError

BUILTIN_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
DIGITS_VERSION = 1


def builtin_folder(name: str, root: Path | None = None) -> Path:
    """Where a built-in dataset's train/ and val/ folders are (or will be) written."""
    return (root or cache_root() / "datasets") / (f"digits-v{DIGITS_VERSION}" if name == "digits" else name)


def is_written(target: Path) -> bool:
    return (target / "train").is_dir() and (target / "val").is_dir()


def stratified_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Up to `size` indices, each class represented in proportion to its share (at least one each)."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * size).astype(int))
    # Hand out what flooring left over to the classes with the largest remainders.
    remainders = counts / counts.sum() * size - quota
    for i in np.argsort(-remainders, kind="stable")[: max(0, size - quota.sum())]:
        quota[i] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[: min(q, n)] for c, q, n in zip(classes, quota, counts)]
    return np.sort(np.concatenate(chosen))


def write_folder(target: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]) -> Path:
    """Writes {split: (uint8 images, labels)} as target/<split>/<class>/<i>.png, atomically (staging + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for split, (images, labels) in splits.items():
            for name in names:
                (staging / split / name).mkdir(parents=True)
            for i, (image, label) in enumerate(zip(images, labels)):
                pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
                cv2.imwrite(str(staging / split / names[int(label)] / f"{i:05d}.png"), pixels)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not is_written(target):  # another process may have written it first
            raise
    return target


def materialize_digits(root: Path | None = None) -> Path:
    """Writes scikit-learn's 1,797 handwritten digits as 8x8 grayscale PNGs in train/ and val/.

    The split is fixed (20% validation, stratified, seed 0) so every run sees the same val set.
    """
    target = builtin_folder("digits", root)
    if is_written(target):
        return target
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetError('The built-in digits dataset needs scikit-learn: pip install "edgeclf[train]" '
                           "(or pip install scikit-learn), or pass an image folder with --data DIR.") from exc
    digits = load_digits()
    pixels = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    val = np.zeros(len(pixels), dtype=bool)
    val[stratified_indices(digits.target, int(round(0.2 * len(pixels))), seed=0)] = True
    return write_folder(target, {"train": (pixels[~val], digits.target[~val]), "val": (pixels[val], digits.target[val])},
                        tuple(str(d) for d in range(10)))


def resolve(source: str) -> Path:
    """A folder path, or a built-in dataset name -> its folder (digits is written on first use).

    Raises:
        DatasetError: a Keras dataset the toolchain has not written on this machine; the message says how.
    """
    if source == "digits":
        return materialize_digits()
    if source in BUILTIN_DATASETS:
        target = builtin_folder(source)
        if not is_written(target):
            raise DatasetError(
                f"--data {source}: not on this machine yet ({target}). Keras downloads it: run `edgeclf data "
                f"{source}` once where the toolchain is installed (pip install \"edgeclf[train]\"), copy "
                f"{target} here, or pass an image folder with --data DIR.")
        return target
    return Path(source)
