"""A generated photo folder for the benchmarks: random crops of the photos scikit-image ships, one class each."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
# Ten classes, three of them grey textures that small crops make hard to tell apart.
HARDER = PHOTOS + ("immunohistochemistry", "retina", "brick", "grass", "gravel")


def make_photo_folder(root: Path, per_class: int, seed: int = 0, sides: tuple[int, int] = (160, 160),
                      names: tuple[str, ...] = PHOTOS) -> Path:
    """root/<photo>/<i>.jpg: crops of 35-70% of the photo's short side, flipped and brightened at random,
    saved square with a side drawn from `sides` (inclusive)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    for name in names:
        photo = getattr(data, name)()
        if photo.ndim == 2:
            photo = np.repeat(photo[:, :, None], 3, axis=2)
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        short = min(photo.shape[:2])
        for i in range(per_class):
            side = int(short * rng.uniform(0.35, 0.7))
            top = int(rng.integers(0, photo.shape[0] - side + 1))
            left = int(rng.integers(0, photo.shape[1] - side + 1))
            crop = photo[top:top + side, left:left + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
            out = int(rng.integers(sides[0], sides[1] + 1))
            crop = cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA if out < side else cv2.INTER_LINEAR)
            cv2.imwrite(str(folder / f"{i:04d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def load_arrays(root: Path | str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 pixels (N, size, size, 3), 0-255, and class indices of root/<split>/<class>/*, classes sorted."""
    from edgeclf.runtime.preprocess import preprocess

    folder = Path(root) / split
    pairs = [(path, i) for i, name in enumerate(sorted(p.name for p in folder.iterdir()))
             for path in sorted((folder / name).iterdir())]
    return np.stack([preprocess(path, size) for path, _ in pairs]).astype(np.float32), np.array([i for _, i in pairs])
