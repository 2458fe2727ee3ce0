"""Choosing the representative set for full-integer quantization: class-stratified and seeded."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.runtime.datasets import stratified_indices
from edgeclf.runtime.errors import UserError

DEFAULT_SIZE = 300
MIN_PER_CLASS = 5


class CalibrationError(UserError, ValueError):
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
    source: str = "training split"
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"size": int(len(self.indices)), "seed": self.seed, "source": self.source, "per_class": self.per_class,
                "pixel_range": [self.pixel_min, self.pixel_max], "sha256": self.digest, "warnings": list(self.warnings)}


def _check_pixels(images: np.ndarray) -> None:
    """Refuses the classic mistake: normalized floats where the model expects 0-255 pixels."""
    if images.dtype == np.uint8:
        return
    if images.size and np.issubdtype(images.dtype, np.floating):
        low, high = float(images.min()), float(images.max())
        if low < 0:
            found = f"[-1, 1]-style values (range {low:.2f} to {high:.2f})"
        elif high <= 1.0:
            found = f"[0, 1]-style values (range {low:.2f} to {high:.2f})"
        else:
            found = f"float pixels (range {low:.1f} to {high:.1f})"
        raise CalibrationError(
            f"calibration images must be uint8 RGB pixels 0-255, the input every edgeclf model takes (it "
            f"normalizes inside); received {images.dtype} {found}. Feed the output of edgeclf.runtime.preprocess "
            "(or np.clip(x * 255, 0, 255).astype(np.uint8) for [0, 1] data), not normalized tensors.")
    raise CalibrationError(f"calibration images must be uint8 RGB pixels 0-255; received {images.dtype}.")


def select(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], paths: Sequence[str],
           size: int = DEFAULT_SIZE, seed: int = 0) -> CalibrationSet:
    """Picks the representative set from preprocessed training images (RGB uint8, no augmentation).

    Raises:
        CalibrationError: images that are not 0-255 RGB pixels, the input every edgeclf model takes.
    """
    _check_pixels(images)
    indices = stratified_indices(labels, size, seed)
    chosen = images[indices]
    per_class = {class_names[c]: int(n) for c, n in zip(*np.unique(labels[indices], return_counts=True))}
    digest = hashlib.sha256("\n".join(paths[i] for i in indices).encode()).hexdigest()
    return CalibrationSet(indices, seed, per_class, int(chosen.min()), int(chosen.max()), digest)


def check(chosen: np.ndarray, per_class: dict[str, int], training: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Warnings about a representative set that may quantize the model badly.

    Args:
        chosen: the calibration images; training: the training images they should resemble.

    Raises:
        CalibrationError: calibration pixels on another scale than the training pixels.
    """
    _check_pixels(chosen)
    warnings = []
    train_max, chosen_max = int(training.max()), int(chosen.max())
    if train_max >= 64 and chosen_max * 4 < train_max:
        raise CalibrationError(
            f"calibration pixels reach only {chosen_max} while training pixels reach {train_max}: the calibration "
            "images look saved on another scale (e.g. [0, 1] values written as uint8). int8 ranges taken from them "
            "would clip every real image. Use images decoded like the training data.")
    brightness = training.reshape(len(training), -1).mean(axis=1)
    chosen_mean = float(chosen.mean())
    spread = float(brightness.std()) or 1.0
    if abs(chosen_mean - float(brightness.mean())) > 3 * spread:
        warnings.append(f"calibration images average {chosen_mean:.0f} brightness vs {brightness.mean():.0f} ± "
                        f"{spread:.0f} for training images: they may not represent what the model sees.")
    few = [f"{name} ({per_class.get(name, 0)})" for name in class_names if per_class.get(name, 0) < MIN_PER_CLASS]
    if few:
        warnings.append(f"classes with fewer than {MIN_PER_CLASS} calibration images: {', '.join(few[:10])}"
                        f"{' ...' if len(few) > 10 else ''}. Their activation ranges may be clipped; raise "
                        "--calib-size or add images to --calib-data.")
    return warnings


def from_folder(root: str | Path, input_size: int, size: int = DEFAULT_SIZE, seed: int = 0,
                max_pixels: int | None = None) -> tuple[CalibrationSet, np.ndarray]:
    """A representative set from a folder (--calib-data): class subfolders are sampled stratified,
    a flat folder of images uniformly. Decoded with the same preprocessing as training and eval, within the
    pixel budget `max_pixels` (None: edgeclf's default); a file over it is skipped like an unreadable one.

    Raises:
        CalibrationError: a missing folder or one without readable images.
    """
    from edgeclf.runtime.folder import DatasetError, load, scan
    from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise CalibrationError(f"--calib-data {root}: no such folder. Pass a folder of representative images.")
    try:
        folder = scan(root)
        files, names = list(folder.files), list(folder.classes)
    except DatasetError:  # no class folders: a flat folder of images
        files = [(p, 0) for p in sorted(root.iterdir()) if p.is_file() and not p.name.startswith(".")
                 and p.suffix.lower() in IMAGE_EXTENSIONS]
        names = ["(unlabelled)"]
    # Choose among the file names first, so only the chosen images are ever decoded (a big folder stays cheap).
    chosen_files = [files[i] for i in stratified_indices(np.array([label for _, label in files]), size, seed)]
    loaded = load(chosen_files, input_size, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    if not len(loaded.labels):
        raise CalibrationError(f"--calib-data {root}: no readable images ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
    chosen = select(loaded.images, loaded.labels, names, loaded.paths, size, seed)
    chosen = CalibrationSet(chosen.indices, seed, chosen.per_class, chosen.pixel_min, chosen.pixel_max, chosen.digest,
                            source=str(root))
    return chosen, loaded.images[chosen.indices]
