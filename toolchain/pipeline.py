"""tf.data input: batches streamed from the image cache, augmented with TF ops, prefetched.

Augmentation composes flip, rotation, zoom and translation into one affine matrix per image and
applies it with a single `ImageProjectiveTransformV3` (bilinear, reflected borders), then scales
contrast. One resampling instead of one per transform is both faster and sharper than chaining
Keras' RandomRotation/RandomZoom/RandomTranslation layers. Random values come from stateless ops
seeded per batch by `Dataset.random(seed)`, so a seeded build is reproducible and every epoch
sees new transforms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.toolchain._tf import tf

AUGMENT_LEVELS = ("none", "light", "strong")


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transforms; each image draws its own values in them."""

    flip: bool = True  # horizontal flip with probability 0.5
    rotation: float = 0.0  # degrees, +-
    zoom: float = 0.0  # fraction, scale in [1 - zoom, 1 + zoom]
    translation: float = 0.0  # fraction of the side, +-
    contrast: float = 0.0  # factor in [1 - contrast, 1 + contrast]

    @classmethod
    def level(cls, name: str, flip: bool = True) -> "Augmentation | None":
        """The preset for --augment NAME; None for "none"."""
        presets = {
            "light": cls(flip, rotation=10.0, zoom=0.1, translation=0.1, contrast=0.1),
            # the range the tutorials give ImageDataGenerator (../shared/seeds), plus contrast
            "strong": cls(flip, rotation=20.0, zoom=0.2, translation=0.2, contrast=0.3),
        }
        if name not in (*presets, "none"):
            raise ValueError(f"--augment must be one of {', '.join(AUGMENT_LEVELS)}; received {name!r}.")
        return presets.get(name)


def _transforms(shape: Any, params: Any, augmentation: Augmentation) -> Any:
    """(B, 8) projective transforms mapping output pixels to input pixels."""
    tf_ = tf()
    height, width = tf_.cast(shape[1], tf_.float32), tf_.cast(shape[2], tf_.float32)
    unit = params * 2.0 - 1.0  # uniform in [-1, 1]
    angle = unit[:, 0] * (augmentation.rotation * math.pi / 180.0)
    scale = 1.0 + unit[:, 1] * augmentation.zoom
    shift_x = unit[:, 2] * augmentation.translation * width
    shift_y = unit[:, 3] * augmentation.translation * height
    flip = tf_.where(params[:, 4] < 0.5, -1.0, 1.0) if augmentation.flip else tf_.ones_like(angle)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    cos, sin = tf_.cos(angle) * scale, tf_.sin(angle) * scale
    # input = centre + R(angle) * scale * diag(flip, 1) * (output - centre) + shift
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = cx + shift_x - a0 * cx - a1 * cy
    b2 = cy + shift_y - b0 * cx - b1 * cy
    zeros = tf_.zeros_like(angle)
    return tf_.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment(images: Any, seed: Any, augmentation: Augmentation) -> Any:
    """uint8 (B, H, W, 3) -> augmented float32 pixels 0-255."""
    tf_ = tf()
    shape = tf_.shape(images)
    params = tf_.random.stateless_uniform((shape[0], 6), seed=seed)
    moved = tf_.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=_transforms(shape, params, augmentation), output_shape=shape[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    pixels = tf_.cast(moved, tf_.float32)
    if augmentation.contrast:
        factor = (1.0 + (params[:, 5] * 2.0 - 1.0) * augmentation.contrast)[:, None, None, None]
        mean = tf_.reduce_mean(pixels, axis=(1, 2), keepdims=True)
        pixels = tf_.clip_by_value((pixels - mean) * factor + mean, 0.0, 255.0)
    return pixels


def make_dataset(images: Any, labels: np.ndarray, batch_size: int, shuffle: bool, seed: int,
                 augmentation: Augmentation | None = None, weights: dict[int, float] | None = None) -> Any:
    """Batches of (float32 pixels 0-255, labels[, sample weights]) read from a CachedImages or a uint8 array.

    Only the indices are shuffled; each batch's rows are read when the batch is needed (in
    parallel, prefetched), so memory holds a few batches, never the dataset.

    Args:
        weights: per-class loss weights (class_weights()); batches then carry per-sample weights,
            which every Keras fit (training, pruning, QAT) honours without extra arguments.
    """
    tf_ = tf()
    height, width = images.shape[1:3]
    labels = np.asarray(labels, dtype=np.int64)
    dataset = tf_.data.Dataset.from_tensor_slices((np.arange(len(labels), dtype=np.int64), labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def read(indices: Any, targets: Any) -> tuple[Any, Any]:
        pixels = tf_.numpy_function(lambda i: np.asarray(images[i]), [indices], tf_.uint8, stateful=False)
        pixels.set_shape((None, height, width, 3))
        return pixels, targets

    dataset = dataset.map(read, num_parallel_calls=tf_.data.AUTOTUNE)
    if augmentation is not None:
        seeds = tf_.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf_.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, pair: (augment(batch[0], pair, augmentation), batch[1]),
            num_parallel_calls=tf_.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda x, y: (tf_.cast(x, tf_.float32), y), num_parallel_calls=tf_.data.AUTOTUNE)
    if weights is not None:
        table = tf_.constant([weights[c] for c in range(len(weights))], tf_.float32)
        dataset = dataset.map(lambda x, y: (x, y, tf_.gather(table, y)))
    return dataset.prefetch(tf_.data.AUTOTUNE)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Weights n / (k * count_c): each class contributes equally to the loss (Keras' class_weight)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    return {c: float(len(labels) / (num_classes * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}
