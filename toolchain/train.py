"""Training: the callbacks that matter, learning-rate schedules, checkpoints, resume, tf.distribute.

The input batches come from `edgeclf.toolchain.pipeline`.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import write_atomically
from edgeclf.toolchain._tf import keras, tf

Log = Callable[[str], None]
FINE_TUNE_LR_FACTOR = 0.05  # stage 2 learns 20x slower than stage 1 (the usual 10-100x)


class TrainingSetupError(UserError, ValueError):
    """A training option this machine or environment cannot honour; the message says why and the fix."""


def seed_everything(seed: int) -> None:
    """Same seed, same data -> same weights (op determinism costs little on CPU)."""
    keras().utils.set_random_seed(seed)
    tf().config.experimental.enable_op_determinism()


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy for --strategy; create it before any other TensorFlow work.

    Raises:
        TrainingSetupError: multiworker without TF_CONFIG, or mirrored without a GPU to mirror over.
    """
    distribute = tf().distribute
    if name == "default":
        return distribute.get_strategy()
    if name == "multiworker":
        try:
            workers = json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]
        except (KeyError, ValueError, TypeError) as exc:
            raise TrainingSetupError(
                "--strategy multiworker reads the cluster from TF_CONFIG, which is unset or has no cluster.worker "
                "list. Set it on every host, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", "
                "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'.") from exc
        if not workers:
            raise TrainingSetupError("TF_CONFIG lists no workers; add host:port entries to cluster.worker.")
        return distribute.MultiWorkerMirroredStrategy()
    gpus = tf().config.list_physical_devices("GPU")
    if not gpus:
        raise TrainingSetupError("--strategy mirrored copies the model onto every local GPU, and this machine has "
                                 "none. Leave --strategy default on a CPU.")
    return distribute.MirroredStrategy()


def worker_index(strategy: Any) -> int:
    """0 for the chief (or a single process), else this worker's index in TF_CONFIG."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 0
    return int(resolver.task_id or 0) if resolver.task_type == "worker" else (0 if resolver.task_type == "chief" else 1)


def check_tensorboard(folder: str | None) -> None:
    """Raises TrainingSetupError when --tensorboard is asked for and the tensorboard package is missing."""
    import importlib.util

    if folder and importlib.util.find_spec("tensorboard") is None:
        raise TrainingSetupError(f"--tensorboard {folder}: the tensorboard package is not installed (TensorFlow 2.21 no "
                                 'longer brings it). Install it with: pip install "edgeclf[train]" (or pip install '
                                 "tensorboard), or leave --tensorboard out.")


def set_mixed_precision(enabled: bool) -> None:
    """float16 compute with float32 weights (GPUs); refused on a CPU, where float16 math only slows down.

    Raises:
        TrainingSetupError: asked for on a machine without a GPU.
    """
    k = keras()
    if not enabled:
        k.mixed_precision.set_global_policy("float32")
        return
    if not tf().config.list_physical_devices("GPU"):
        raise TrainingSetupError("--mixed-precision runs float16 math on GPU tensor cores; this machine has no GPU, "
                                 "and on a CPU float16 is emulated and slower than float32. Leave it off here.")
    k.mixed_precision.set_global_policy("mixed_float16")


@dataclass(frozen=True)
class FitOptions:
    """How one fit is driven beyond epochs and learning rate."""

    schedule: str = "plateau"  # plateau | cosine | step (with early stopping; without it, always cosine)
    label_smoothing: float = 0.0
    patience: int = 6
    tensorboard: Path | None = None  # TensorBoard log folder
    backup: Path | None = None  # resume point folder: an interrupted fit resumes after its last finished epoch


def epoch_logger(log: Log, label: str, epochs: int) -> Any:
    """A Keras callback that reports one line per epoch through `log` and adds its wall time to the history."""

    class _EpochLog(keras().callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            logs["seconds"] = round(time.perf_counter() - self._started, 3)  # History records it too
            log(f"  {label} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.4f} val_loss {logs.get('val_loss', float('nan')):.4f} "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f} ({logs['seconds']:.1f} s)")

    return _EpochLog()


RESUME_WEIGHTS, RESUME_STATE = "last.weights.npz", "state.json"


def save_weights(model: Any, path: Path) -> None:
    """Writes every weight of the model (trainable or not) as .npz, atomically."""
    _write_weights(model.get_weights(), path)


def _write_weights(weights: list[np.ndarray], path: Path) -> None:
    """numpy and Python file I/O, not HDF5: h5py crashes the process natively when the disk fills up
    mid-write, where this raises a plain OSError the build reports and cleans up after."""
    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    write_atomically(path, buffer.getvalue())


def load_weights(model: Any, path: Path) -> None:
    with np.load(path) as saved:
        model.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])


class ResumeWriter:
    """Writes the resume point (weights, then epoch and learning rate) on a thread of its own; the newest wins.

    Each write ends in an fsync, and an fsync waits for the disk's other writes too: while another
    process wrote to this machine's shared disk, the two per epoch blocked training for up to 0.7 s each
    (measured: 1.0 s epochs, 45.8 s of a 20-epoch build spent outside them instead of 2 s). Training
    now only copies the weights; a snapshot that arrives while the last is being written replaces the
    one waiting, so memory holds at most two. `close()` waits until the newest is on disk; an error of
    the writer (a full disk's OSError) is raised in the training thread, by the next `submit` or `close`.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._waiting: tuple[list[np.ndarray], bytes] | None = None
        self._closed = False
        self._error: Exception | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="edgeclf-resume-point", daemon=True)
        self._thread.start()

    def submit(self, weights: list[np.ndarray], state: dict) -> None:
        with self._changed:
            self._raise_error()
            self._waiting = (weights, json.dumps(state).encode())
            self._changed.notify_all()

    def __enter__(self) -> ResumeWriter:
        return self

    def __exit__(self, kind: type | None, *_: Any) -> None:
        if kind is None:
            self.close()
        else:  # interrupted or failed: still leave the newest resume point, and let the first error through
            with contextlib.suppress(Exception):
                self.close()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._closed)
                if self._waiting is None:
                    return
                (weights, state), self._waiting = self._waiting, None
            try:
                _write_weights(weights, self._folder / RESUME_WEIGHTS)
                write_atomically(self._folder / RESUME_STATE, state)
            except Exception as exc:  # noqa: BLE001 - raised again in the training thread
                with self._changed:
                    self._error = exc


def resume_point(writer: ResumeWriter) -> Any:
    """A callback that hands the weights and learning rate to `writer` after every epoch, for --resume.

    Plain .npz weights cost a fraction of Keras' BackupAndRestore (a TF checkpoint with the
    optimizer's slots, which measured 20-28% of an epoch here); on resume Adam's moment estimates restart.
    """

    class _ResumePoint(keras().callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            rate = float(keras().backend.get_value(self.model.optimizer.learning_rate))
            writer.submit(self.model.get_weights(), {"epoch": epoch + 1, "learning_rate": rate})

    return _ResumePoint()


def _loss(label_smoothing: float) -> Any:
    """Sparse cross-entropy; with smoothing, the labels are one-hot encoded first (Keras' sparse loss has no smoothing)."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    tf_, losses = tf(), keras().losses

    def smoothed_crossentropy(y_true: Any, y_pred: Any) -> Any:
        y_true = tf_.one_hot(tf_.cast(tf_.reshape(y_true, [-1]), tf_.int32), tf_.shape(y_pred)[-1])
        return losses.categorical_crossentropy(y_true, y_pred, label_smoothing=label_smoothing)

    return smoothed_crossentropy


def compile_model(model: Any, learning_rate: float, label_smoothing: float = 0.0) -> None:
    """Adam, the fused (legacy) implementation: one ResourceApplyAdam kernel per weight instead of the new
    optimizer's graph of small ops. On MobileNetV2 0.35 at 96 px its first epoch (tracing) took 5.7 s
    instead of 11.5 s and later epochs of 1,200 images 3.6 s instead of 4.2 s (measured here).

    Its variables (slots, step counter, hyperparameters) are made here rather than in the first training
    step: a tf.function that creates variables when first called is traced twice, and the training step is
    the costliest trace (MobileNetV3-Small 0.75 at 32 px, 2 epochs of 400 images: 9.6-11.3 s -> 6.7-7.9 s,
    the same history)."""
    k = keras()
    model.compile(optimizer=k.optimizers.legacy.Adam(learning_rate), loss=_loss(label_smoothing),
                  metrics=[k.metrics.SparseCategoricalAccuracy(name="accuracy")])
    model.optimizer._create_all_weights(model.trainable_variables)


def _schedule(name: str, learning_rate: float, epochs: int) -> Callable[[int], float]:
    if name == "cosine":
        return lambda epoch: learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return lambda epoch: learning_rate * (0.1 ** sum(epoch >= epochs * f for f in (0.5, 0.75)))  # step


def fit(model: Any, train: Any, val: Any, epochs: int, learning_rate: float, log: Log,
        callbacks: list | None = None, label: str = "train", early_stopping: bool = True,
        options: FitOptions | None = None) -> dict[str, list[float]]:
    """Compiles and fits; returns the history (per-epoch loss/accuracy on both splits, learning rate).

    With early_stopping, the best validation weights are restored at the end and the learning rate
    follows options.schedule (plateau: x0.3 after 2 epochs without a better val_loss). Without it
    (pruning and QAT, whose schedules must run to their end), the learning rate follows a cosine
    decay so the last epochs settle instead of ending on a noisy step.
    """
    k = keras()
    options = options or FitOptions()
    compile_model(model, learning_rate, options.label_smoothing)
    all_callbacks = [epoch_logger(log, label, epochs), *(callbacks or [])]
    initial_epoch, writer = 0, None
    if options.backup is not None:
        if has_backup(options.backup):
            state = json.loads((options.backup / RESUME_STATE).read_text(encoding="utf-8"))
            load_weights(model, options.backup / RESUME_WEIGHTS)
            keras().backend.set_value(model.optimizer.learning_rate, state["learning_rate"])
            initial_epoch = min(int(state["epoch"]), epochs)
        writer = ResumeWriter(options.backup)
        all_callbacks.append(resume_point(writer))
    if early_stopping:
        all_callbacks.append(k.callbacks.EarlyStopping(monitor="val_accuracy", patience=options.patience,
                                                       restore_best_weights=True))
        if options.schedule == "plateau":
            all_callbacks.append(k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2, min_lr=1e-6))
        else:
            all_callbacks.append(k.callbacks.LearningRateScheduler(_schedule(options.schedule, learning_rate, epochs)))
    else:
        all_callbacks.append(k.callbacks.LearningRateScheduler(_schedule("cosine", learning_rate, epochs)))
    if options.tensorboard is not None:
        all_callbacks.append(k.callbacks.TensorBoard(log_dir=str(options.tensorboard / label.replace(" ", "_"))))
    train, steps = _one_iterator(train)
    with writer or contextlib.nullcontext():  # the newest resume point is on disk when fit returns or raises
        history = model.fit(train, validation_data=val, epochs=epochs, initial_epoch=initial_epoch,
                            callbacks=all_callbacks, steps_per_epoch=steps, verbose=0)
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def _one_iterator(train: Any) -> tuple[Any, int | None]:
    """The training batches repeated, and the batches of one epoch; (train, None) where that cannot be done.

    Given a finite dataset, Keras makes a new iterator every epoch and drops the last one unfinished
    (it stops after the known number of steps); tearing that one down blocked for about 1.4 s in
    a third of the epochs here (MobileNetV2 0.35 at 96 px, 1,200 images: 3.6 s epochs). Repeated, one
    iterator serves every epoch: each epoch is still exactly one pass over the data in a new order
    (the shuffle reshuffles on each repetition), and the gaps are gone. Kept as given under a strategy
    with several replicas, whose per-replica share of an epoch Keras counts itself.
    """
    tf_ = tf()
    steps = int(train.cardinality()) if isinstance(train, tf_.data.Dataset) else -1
    if steps <= 0 or tf_.distribute.get_strategy().num_replicas_in_sync != 1:
        return train, None
    return train.repeat(), steps


def has_backup(folder: Path | None) -> bool:
    """Whether an interrupted fit left a resume point there."""
    return folder is not None and (folder / RESUME_STATE).is_file() and (folder / RESUME_WEIGHTS).is_file()
