"""Image folders laid out as root/<class>/*.{jpg,png,...}: listing, loading, bad-file reporting."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, preprocess


class DatasetError(UserError, ValueError):
    """A data folder that cannot be used; the message names the folder and the fix."""


@dataclass(frozen=True)
class ImageFolder:
    """The images of one split: sorted class names and (path, class index) pairs."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]
    ignored: tuple[dict, ...] = ()  # files that are not images by extension: {"path", "reason"}


@dataclass
class LabelledImages:
    """Images with their class indices and files: decoded into memory by `load`, or read from the toolchain's
    image cache on demand (`edgeclf.toolchain.cache.load`, whose `images` is an array-like `CachedPixels`)."""

    images: Any  # (N, height, width, 3) uint8 RGB: an ndarray, or anything indexed like one
    labels: np.ndarray  # (N,) int64 class indices
    paths: list[str]
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}

    def __len__(self) -> int:
        return len(self.labels)


def is_visible(path: Path) -> bool:
    """Not a hidden file or folder (.DS_Store, .git, ._resource forks)."""
    return not path.name.startswith(".")


def scan(root: str | os.PathLike) -> ImageFolder:
    """Lists root/<class>/<image> files; hidden files and folders are ignored.

    Raises:
        DatasetError: missing folder, no class folders, or a class folder without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder. Pass a folder laid out as {root}/<class>/<image>.jpg.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and is_visible(p))
    if not class_dirs:
        raise DatasetError(f"{root}: no class folders inside. Put each class's images in {root}/<class name>/.")
    files = []
    ignored = [{"path": str(p), "reason": "not inside a class folder"}
               for p in sorted(root.iterdir()) if p.is_file() and is_visible(p)]
    for index, class_dir in enumerate(class_dirs):
        images = []
        for path in _walk(class_dir):
            if not path.is_file():
                ignored.append({"path": str(path), "reason": "broken symlink or not a regular file"})
            elif path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append((path, index))
            else:
                ignored.append({"path": str(path), "reason": f"not an image extension ({path.suffix or 'none'})"})
        if not images:
            raise DatasetError(f"{class_dir}: class '{class_dir.name}' has no images "
                               f"({', '.join(sorted(IMAGE_EXTENSIONS))}). Add images or remove the folder.")
        files.extend(images)
    return ImageFolder(root, tuple(p.name for p in class_dirs), tuple(files), tuple(ignored))


SPLITS = ("train", "val", "test")


def scan_splits(root: str | os.PathLike) -> dict[str, ImageFolder]:
    """The folders of a dataset: {"train", "val"[, "test"]} when it has split subfolders, else {"all": root}.

    Raises:
        DatasetError: what scan() raises, val/ or test/ without train/, train/ without val/, or splits
            whose class folders differ.
    """
    root = Path(root)
    if not (root / "train").is_dir():
        if (root / "val").is_dir() or (root / "test").is_dir():
            raise DatasetError(f"{root}: has a val/ or test/ folder but no train/ folder. Add {root}/train/<class>/ "
                               "images, or put the class folders directly in the root to split automatically.")
        return {"all": scan(root)}
    if not (root / "val").is_dir():
        raise DatasetError(f"{root}: has train/ but no val/ folder. Add {root}/val/<class>/ images, "
                           "or put the class folders directly in the root to split automatically.")
    folders = {name: scan(root / name) for name in SPLITS if (root / name).is_dir()}
    for name, folder in folders.items():
        if folder.classes != folders["train"].classes:
            raise DatasetError(f"{root}: train/ classes {list(folders['train'].classes)} differ from {name}/ classes "
                               f"{list(folder.classes)}. Give every split the same class folders.")
    return folders


def _walk(top: Path) -> list[Path]:
    """Visible files under top, sorted, following symlinked folders once (a link loop ends there)."""
    seen, found = set(), []
    for folder, subfolders, names in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found.extend(Path(folder) / name for name in names if not name.startswith("."))
    return sorted(found)


def eval_root(root: str | os.PathLike) -> Path:
    """The folder to evaluate on: root/val (or root/test) when the root has splits, else root."""
    root = Path(root)
    for split in ("val", "test"):
        if (root / split).is_dir() and (root / "train").is_dir():
            return root / split
    return root


def load(files: list[tuple[Path, int]] | tuple[tuple[Path, int], ...], size: int | tuple[int, int],
         progress: Callable[[int], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> LabelledImages:
    """Decodes and resizes files with the shared preprocessing; unreadable files are skipped and listed.

    Args:
        progress: called with 1 after each file, for a progress bar.
        max_pixels: the pixel budget of one image; a file whose header claims more is skipped, never decoded.
    """
    images, labels, paths, skipped = [], [], [], []
    for path, label in files:
        if progress is not None:
            progress(1)
        try:
            images.append(preprocess(path, size, max_pixels))
        except ImageError as exc:
            skipped.append({"path": str(path), "reason": str(exc).removeprefix(f"{path}: ")})
            continue
        labels.append(label)
        paths.append(str(path))
    height, width = (size, size) if isinstance(size, int) else size
    stacked = np.stack(images) if images else np.zeros((0, height, width, 3), np.uint8)
    return LabelledImages(stacked, np.asarray(labels, dtype=np.int64), paths, skipped)
