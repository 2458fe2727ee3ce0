"""Accuracy of a model on labelled images, and agreement between models: no TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

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
    paths: list[str] | None = None

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
            precision = hits / predicted if predicted else 0.0
            recall = hits / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            result[label] = {"support": support, "precision": precision, "recall": recall, "f1": f1}
        return result

    def misclassified(self) -> list[dict]:
        """Every wrong prediction: file (when known), true and predicted label, the predicted score."""
        rows = []
        for i in np.flatnonzero(self.predictions != self.targets):
            rows.append({"path": self.paths[i] if self.paths else str(i), "label": self.labels[self.targets[i]],
                         "predicted": self.labels[self.predictions[i]],
                         "score": float(self.scores[i, self.predictions[i]])})
        return rows

    def agreement(self, other: "Evaluation") -> float:
        """Fraction of images on which both models predict the same class."""
        return float(np.mean(self.predictions == other.predictions)) if len(self.targets) else 0.0

    def as_dict(self) -> dict:
        return {"images": int(len(self.targets)), "accuracy": self.accuracy, "top5": self.top5,
                "per_class": self.per_class(), "confusion": self.confusion().tolist(),
                "misclassified": self.misclassified()}


def evaluate(model: Model, images: np.ndarray, targets: np.ndarray, paths: list[str] | None = None,
             progress: Callable[[int], None] | None = None, chunk: int = 64) -> Evaluation:
    """Runs the model on every image; targets are indices into model.labels.

    Args:
        progress: called with the number of images done after each chunk, for a progress bar.
    """
    scores = np.zeros((len(images), model.num_classes), dtype=np.float32)
    for start in range(0, len(images), chunk):
        scores[start:start + chunk] = model.predict(images[start:start + chunk])
        if progress is not None:
            progress(len(images[start:start + chunk]))
    return Evaluation(list(model.labels), np.asarray(targets, dtype=np.int64), scores, paths)


def _distributions(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores.astype(np.float64), 1e-7, None)
    return clipped / clipped.sum(axis=1, keepdims=True)


def divergence(reference: Evaluation, other: Evaluation) -> dict[str, float]:
    """Mean KL(reference || other) and mean cosine similarity between per-image score vectors."""
    p, q = _distributions(reference.scores), _distributions(other.scores)
    kl = np.sum(p * np.log(p / q), axis=1)
    cosine = np.sum(reference.scores * other.scores, axis=1) / (
        np.linalg.norm(reference.scores, axis=1) * np.linalg.norm(other.scores, axis=1) + 1e-12)
    return {"mean_kl": float(kl.mean()) if len(kl) else 0.0, "mean_cosine": float(cosine.mean()) if len(cosine) else 1.0}


def flips(reference: Evaluation, other: Evaluation) -> list[dict]:
    """Images whose predicted class differs between two models, and which of them was right."""
    rows = []
    for i in np.flatnonzero(reference.predictions != other.predictions):
        truth = reference.targets[i]
        outcome = ("fixed" if other.predictions[i] == truth else
                   "broken" if reference.predictions[i] == truth else "both_wrong")
        rows.append({"path": reference.paths[i] if reference.paths else str(i), "label": reference.labels[truth],
                     "reference": reference.labels[reference.predictions[i]],
                     "other": other.labels[other.predictions[i]], "outcome": outcome})
    return rows


def compare(evaluations: list[Evaluation]) -> list[dict]:
    """Each evaluation against the first: accuracy difference, agreement, per-class recall change, flips."""
    first = evaluations[0]
    first_classes = first.per_class()
    rows = []
    for evaluation in evaluations:
        per_class = evaluation.per_class()
        rows.append({
            "accuracy": evaluation.accuracy, "top5": evaluation.top5,
            "difference_pts": 100 * (evaluation.accuracy - first.accuracy),
            "agreement": evaluation.agreement(first), **divergence(first, evaluation),
            "per_class_recall_diff_pts": {label: 100 * (per_class.get(label, {}).get("recall", 0.0) - stats["recall"])
                                          for label, stats in first_classes.items()},
            "flips": flips(first, evaluation),
        })
    return rows


def compare_models(models: Sequence[Model], evaluations: list[Evaluation], image: np.ndarray,
                   threads: int | None) -> list[dict]:
    """`compare`'s rows, each model's path first, with its size, input, int8 flag and a quick steady latency on
    this CPU (30 runs or 0.2 s after 3 warm-ups on `image`; `edgeclf bench` measures properly)."""
    from edgeclf.runtime.bench import steady_latency

    rows = []
    for model, row in zip(models, compare(evaluations)):
        latency = steady_latency(model, image, runs=30, min_time=0.2, warmup=3)
        rows.append({"model": str(model.path), **row, "bytes": len(model.content), "input": model.input.as_dict(),
                     "int8": model.full_integer, "threads": threads, "median_ms": latency.median_ms})
    return rows
