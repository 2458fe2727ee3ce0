"""Training and the callbacks that matter: best-weights restore and LR decay on plateau.

The input batches come from `edgeclf.toolchain.pipeline`.
"""
from __future__ import annotations

import math
from typing import Any, Callable


from edgeclf.toolchain._tf import keras, tf

Log = Callable[[str], None]


def seed_everything(seed: int) -> None:
    """Same seed, same data -> same weights (op determinism costs little on CPU)."""
    keras().utils.set_random_seed(seed)
    tf().config.experimental.enable_op_determinism()


def epoch_logger(log: Log, label: str, epochs: int) -> Any:
    """A Keras callback that reports one line per epoch through `log`."""

    class _EpochLog(keras().callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log(f"  {label} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.4f} val_loss {logs.get('val_loss', float('nan')):.4f} "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}")

    return _EpochLog()


def compile_model(model: Any, learning_rate: float) -> None:
    model.compile(optimizer=keras().optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def fit(model: Any, train: Any, val: Any, epochs: int, learning_rate: float, log: Log,
        callbacks: list | None = None, label: str = "train", early_stopping: bool = True) -> dict[str, list[float]]:
    """Compiles and fits; returns the history (per-epoch loss/accuracy on both splits).

    With early_stopping, the best validation weights are restored and the learning rate drops
    on plateaus; without it (pruning, whose schedule must run to its end), the learning rate
    follows a cosine decay so the last epochs settle instead of ending on a noisy step.
    """
    k = keras()
    compile_model(model, learning_rate)
    all_callbacks = [epoch_logger(log, label, epochs), *(callbacks or [])]
    if early_stopping:
        all_callbacks += [
            k.callbacks.EarlyStopping(monitor="val_accuracy", patience=6, restore_best_weights=True),
            k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2, min_lr=1e-5),
        ]
    else:
        all_callbacks.append(k.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / epochs))))
    history = model.fit(train, validation_data=val, epochs=epochs, callbacks=all_callbacks, verbose=0)
    return {key: [float(v) for v in values] for key, values in history.history.items()}
