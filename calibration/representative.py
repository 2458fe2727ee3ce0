"""Choosing the representative set for full-integer quantization: class-stratified and seeded."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_SIZE = 300


class CalibrationError(ValueError):
    """A representative set that would quantize the model wrongly; the message says the fix."""


@dataclass(frozen=True)
class CalibrationSet:
    """Which training images calibrate the int8 model, and what they look like."""

    indices: np.ndarray  # into the training arrays
    seed: int
    per_class: dict[str, int]
    pixel_min: int
    pixel_max: int
    digest: str  # sha256 of the chosen file list, to reproduce a build

    def as_dict(self) -> dict:
        return {"size": int(len(self.indices)), "seed": self.seed, "per_class": self.per_class,
                "pixel_range": [self.pixel_min, self.pixel_max], "sha256": self.digest}


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


def select(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], paths: Sequence[str],
           size: int = DEFAULT_SIZE, seed: int = 0) -> CalibrationSet:
    """Picks the representative set from preprocessed training images (RGB uint8, no augmentation).

    Raises:
        CalibrationError: images that are not 0-255 RGB pixels, the input every edgeclf model takes.
    """
    if images.dtype != np.uint8:
        raise CalibrationError(
            f"calibration images must be uint8 RGB pixels 0-255 (the model rescales them itself); "
            f"received {images.dtype}. Feed the output of edgeclf.runtime.preprocess, not normalized floats.")
    indices = stratified_indices(labels, size, seed)
    chosen = images[indices]
    per_class = {class_names[c]: int(n) for c, n in zip(*np.unique(labels[indices], return_counts=True))}
    digest = hashlib.sha256("\n".join(paths[i] for i in indices).encode()).hexdigest()
    return CalibrationSet(indices, seed, per_class, int(chosen.min()), int(chosen.max()), digest)
