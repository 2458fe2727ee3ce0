"""Stage 1 on a frozen base: the head learns from the base's features, not from its pixels.

A frozen base (BatchNorm in inference mode, no weight updates) maps an image to the same features in
every epoch, so stage 1 need not run it forward, and never backward, in every step:
- augmentation off: each image's features are computed once, in large batches, and the head trains on
  them for every epoch (MobileNetV2 0.35 at 96 px: 400 images' features in about a second);
- augmentation on: each epoch's augmented images go through the base in inference mode, in large
  batches, and the head trains on their features; nothing flows back through the base.
Either way the head sees exactly what it would see inside the whole model, and its layers are the
model's own, so the trained head is already in place for stage 2 and for export.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.toolchain._tf import keras, tf

FEATURE_BATCH = 128  # images per forward pass of the frozen base
HEAD = ("dropout", "classifier")  # edgeclf's layers on top of a base network, in order


@dataclass
class FrozenFeatures:
    """The head model (features -> scores, sharing the model's layers) and the batches to train it on."""

    head: Any
    train: Any  # tf.data batches of (features, labels[, sample weights])
    val: Any
    mode: str  # "once" (augmentation off) or "per epoch" (augmentation on)
    images: int  # images whose features were computed up front (0 when per epoch)
    seconds: float  # time spent computing them

    def describe(self) -> str:
        if self.mode == "once":
            return (f"frozen base run once per image ({self.images} images, {self.seconds:.1f} s, inference mode, "
                    f"batches of {FEATURE_BATCH}); the head trained on the stored features")
        return (f"frozen base run in inference mode on each epoch's augmented images (batches of {FEATURE_BATCH}); "
                "the head trained on their features, nothing back-propagated through the base")


def split_head(model: Any) -> tuple[Any, Any]:
    """(extractor: pixels -> the features the head reads, head: features -> scores), sharing the model's layers."""
    k = keras()
    names = [layer.name for layer in model.layers]
    first = next(model.get_layer(name) for name in HEAD if name in names)
    extractor = k.Model(model.input, first.input, name=f"{model.name}_features")
    features = k.Input(first.input.shape[1:], name="features")
    x = features
    for name in HEAD:
        if name in names:
            x = model.get_layer(name)(x)
    return extractor, k.Model(features, x, name=f"{model.name}_head")


def _with_weights(features: Any, labels: Any, weights: dict[int, float] | None) -> tuple:
    if weights is None:
        return features, labels
    table = np.array([weights[c] for c in range(len(weights))], np.float32)
    return features, labels, table[labels]


def frozen_features(model: Any, train: Any, val: Any, batch_size: int, seed: int, augmentation: Any,
                    weights: dict[int, float] | None) -> FrozenFeatures:
    """The head and its batches for stage 1. `train`/`val` are runtime.folder.LabelledImages.

    Args:
        augmentation: a pipeline.Augmentation, or None for none.
        weights: per-class loss weights, carried as per-sample weights as in the image pipeline.
    """
    from edgeclf.toolchain.pipeline import make_dataset

    tf_ = tf()
    extractor, head = split_head(model)
    started = time.perf_counter()
    stored_val = extractor.predict(make_dataset(val.images, val.labels, FEATURE_BATCH, False, seed), verbose=0)
    val_batches = tf_.data.Dataset.from_tensor_slices((stored_val, np.asarray(val.labels, np.int64))).batch(batch_size)
    if augmentation is None:
        stored = extractor.predict(make_dataset(train.images, train.labels, FEATURE_BATCH, False, seed), verbose=0)
        labels = np.asarray(train.labels, np.int64)
        batches = (tf_.data.Dataset.from_tensor_slices(_with_weights(stored, labels, weights))
                   .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size))
        return FrozenFeatures(head, batches.prefetch(2), val_batches, "once", len(labels) + len(val.labels),
                              time.perf_counter() - started)
    images = make_dataset(train.images, train.labels, FEATURE_BATCH, True, seed, augmentation, weights)
    batches = images.map(lambda x, *rest: (extractor(x, training=False), *rest)).unbatch().batch(batch_size)
    return FrozenFeatures(head, batches.prefetch(2), val_batches, "per epoch", len(val.labels),
                          time.perf_counter() - started)
