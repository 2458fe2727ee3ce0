"""Accuracy of a model on labelled images, and agreement between models: no TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.runtime.folder import DatasetError
from edgeclf.runtime.model import Model


def class_mapping(folder_classes: Sequence[str], model: Model, root: Path | str) -> np.ndarray:
    """Index map from a folder's classes to the model's label indices.

    Raises:
        DatasetError: a folder class that the model does not know.
    """
    unknown = [name for name in folder_classes if name not in model.labels]
    if unknown:
        raise DatasetError(
            f"{root}: class folders {unknown} are not among the labels of {model.path.name} "
            f"({', '.join(model.labels[:12])}{', ...' if len(model.labels) > 12 else ''}). "
            "Evaluate on a folder whose class names match the model's labels.txt.")
    return np.array([model.labels.index(name) for name in folder_classes], dtype=np.int64)


@dataclass
class Evaluation:
    """Scores of one model on one labelled set (labels in the model's index space)."""

    labels: list[str]
    targets: np.ndarray
    scores: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return np.argmax(self.scores, axis=1)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.targets)) if len(self.targets) else 0.0

    @property
    def top5(self) -> float:
        k = min(5, self.scores.shape[1])
        best = np.argsort(-self.scores, axis=1, kind="stable")[:, :k]
        return float(np.mean(np.any(best == self.targets[:, None], axis=1))) if len(self.targets) else 0.0

    def confusion(self) -> np.ndarray:
        """Rows: true class, columns: predicted class."""
        size = len(self.labels)
        matrix = np.zeros((size, size), dtype=np.int64)
        np.add.at(matrix, (self.targets, self.predictions), 1)
        return matrix

    def per_class(self) -> dict[str, dict]:
        matrix = self.confusion()
        result = {}
        for i, label in enumerate(self.labels):
            support, predicted, hits = int(matrix[i].sum()), int(matrix[:, i].sum()), int(matrix[i, i])
            if support == 0 and predicted == 0:
                continue
            result[label] = {"support": support,
                             "precision": hits / predicted if predicted else 0.0,
                             "recall": hits / support if support else 0.0}
        return result

    def agreement(self, other: "Evaluation") -> float:
        """Fraction of images on which both models predict the same class."""
        return float(np.mean(self.predictions == other.predictions)) if len(self.targets) else 0.0

    def as_dict(self) -> dict:
        return {"images": int(len(self.targets)), "accuracy": self.accuracy, "top5": self.top5,
                "per_class": self.per_class()}


def evaluate(model: Model, images: np.ndarray, targets: np.ndarray) -> Evaluation:
    """Runs the model on every image; targets are indices into model.labels."""
    return Evaluation(list(model.labels), np.asarray(targets, dtype=np.int64), model.predict(images))
