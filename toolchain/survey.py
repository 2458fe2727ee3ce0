"""`edgeclf data DIR`: what a folder holds before any training, and what would be skipped and why.

Decodes every file with the same `edgeclf.runtime.preprocess` the build uses, within the same pixel
budget, so the skip list is what a build would skip. No TensorFlow.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgeclf.runtime.folder import ImageFolder, scan_splits
from edgeclf.runtime.imageheader import read_header
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageError, decode_image, read_file

# Longer side of the image, in pixels: the histogram's bucket edges.
SIZE_BUCKETS = (64, 128, 256, 512, 1024, 2048)
IMBALANCE = 3.0  # largest / smallest class count above which --class-weight auto is suggested


@dataclass
class Survey:
    root: Path
    layout: str  # "train/val[/test] folders" or "class folders (split by --val-split)"
    classes: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class -> readable images
    sizes: dict[str, int]  # longer-side bucket -> images
    common_sizes: list[tuple[str, int]]  # most frequent "WxH" and their counts
    duplicates: list[dict]  # {"sha256", "paths", "classes", "splits"} for files with identical bytes
    skipped: list[dict]  # {"path", "reason"}
    advice: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"root": str(self.root), "layout": self.layout, "classes": list(self.classes), "counts": self.counts,
                "size_histogram": self.sizes, "common_sizes": [{"size": s, "images": n} for s, n in self.common_sizes],
                "duplicates": self.duplicates, "skipped": self.skipped, "advice": self.advice}


def _bucket(longer: int) -> str:
    lower = 0
    for edge in SIZE_BUCKETS:
        if longer < edge:
            return f"{lower}-{edge - 1}"
        lower = edge
    return f">={SIZE_BUCKETS[-1]}"


def _inspect(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, tuple[int, int] | None, str | None]:
    """(sha256 of the bytes, (width, height) or None, skip reason or None)."""
    try:
        data = read_file(path, max_pixels)
    except ImageError as exc:
        return "", None, str(exc).removeprefix(f"{path}: ")
    digest = hashlib.sha256(data).hexdigest()
    try:
        # A JPEG decodes at 1/8 scale (every byte is still entropy-decoded, so a damaged one fails as at full
        # scale): checking a folder of phone photos costs a fraction of the memory and time. Its size is the
        # header's, turned as the decoder turned it (EXIF orientation).
        image = decode_image(data, str(path), max_pixels, at_least=(1, 1))
        header = read_header(data)
    except ImageError as exc:
        return digest, None, str(exc).removeprefix(f"{path}: ")
    height, width = image.shape[:2]
    if header is not None:
        turned = header.width != header.height and (height > width) != (header.height > header.width)
        width, height = (header.height, header.width) if turned else (header.width, header.height)
    return digest, (width, height), None


def survey(root: str | os.PathLike, progress: Callable[[int], None] | None = None,
           folders: dict[str, ImageFolder] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Survey:
    """Counts, sizes, duplicates and skipped files of a dataset folder (with or without train/val splits).

    Args:
        folders: scan_splits(root), when the caller has it already (to size a progress bar).
        max_pixels: the pixel budget of one image; a file whose header claims more is listed as skipped.

    Raises:
        DatasetError: what scan_splits() raises, the same layout errors a build stops on.
    """
    root = Path(root)
    folders = folders if folders is not None else scan_splits(root)
    layout = ("class folders (a build splits them with --val-split)" if "all" in folders
              else "/".join(folders) + " folders")
    classes = folders[next(iter(folders))].classes
    files = [(split, path, label) for split, folder in folders.items() for path, label in folder.files]
    skipped = [dict(item) for folder in folders.values() for item in folder.ignored]
    counts = {split: dict.fromkeys(classes, 0) for split in folders}
    sizes: Counter = Counter()
    exact: Counter = Counter()
    by_hash: dict[str, list[tuple[str, Path, int]]] = defaultdict(list)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        inspected = pool.map(_inspect, [f[1] for f in files], [max_pixels] * len(files))
        for (split, path, label), (digest, size, reason) in zip(files, inspected):
            if progress is not None:
                progress(1)
            if reason is not None:
                skipped.append({"path": str(path), "reason": reason})
                continue
            counts[split][classes[label]] += 1
            sizes[_bucket(max(size))] += 1
            exact[f"{size[0]}x{size[1]}"] += 1
            by_hash[digest].append((split, path, label))
    duplicates = [{"sha256": digest, "paths": [str(p) for _, p, _ in group],
                   "classes": sorted({classes[label] for _, _, label in group}),
                   "splits": sorted({split for split, _, _ in group})}
                  for digest, group in by_hash.items() if len(group) > 1]
    ordered = {bucket: sizes[bucket] for bucket in [_bucket(0)] + [_bucket(edge) for edge in SIZE_BUCKETS] if sizes[bucket]}
    result = Survey(root, layout, classes, counts, ordered, exact.most_common(5), duplicates, skipped)
    result.advice = _advice(result)
    return result


def _advice(result: Survey) -> list[str]:
    advice = []
    totals = {c: sum(split[c] for split in result.counts.values()) for c in result.classes}
    empty = [c for c, n in totals.items() if n == 0]
    if empty:
        advice.append(f"class {', '.join(empty)} has no readable image: a build stops. Add images or remove the folder.")
    if len(result.classes) < 2:
        advice.append("a single class: a classifier needs at least two class folders.")
    nonzero = [n for n in totals.values() if n]
    if nonzero and max(nonzero) > IMBALANCE * min(nonzero):
        advice.append(f"unbalanced classes ({min(nonzero)} to {max(nonzero)} images): consider --class-weight auto.")
    conflicts = [d for d in result.duplicates if len(d["classes"]) > 1]
    if conflicts:
        advice.append(f"{len(conflicts)} identical file(s) filed under different classes: fix their labels.")
    leaks = [d for d in result.duplicates if len(d["splits"]) > 1]
    if leaks:
        advice.append(f"{len(leaks)} identical file(s) in more than one split: validation accuracy is inflated.")
    if result.skipped:
        advice.append(f"{len(result.skipped)} file(s) will be skipped (listed above); they are not fatal.")
    return advice
