"""XLA on CPU: does `jit_compile` make edgeclf's training faster, per model family?

Each family trains with edgeclf's own compile (fused Adam, its loss and metric) on the same 300 photo
crops (10 classes), the same seed, for a few epochs, once as edgeclf does (TensorFlow's graph executor)
and once with the train step compiled by XLA (`model.jit_compile = True`), each in its own process.
Reported per family: the first epoch (tracing and compiling included), the mean of the later epochs,
their ratio XLA / default, the ratio for the whole fit (> 1: XLA is slower), the images x epochs after
which a faster XLA epoch would have paid for its compile, and the last validation accuracy of each run.

edgeclf trains with op determinism on. XLA has no deterministic MaxPool gradient ("GPU MaxPool gradient
ops do not yet have a deterministic XLA implementation", raised on the CPU too), so a family with
MaxPooling (cnn) is timed under XLA with op determinism off, and the table says so.

Prints the table and, on its last line, JSON with per-family figures and `xla_faster_families`: the families
whose whole fit XLA made faster. edgeclf compiles with XLA exactly those, so an empty list means it never does.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FAMILIES = {"tiny": 32, "cnn": 96, "resnet_mini": 32, "mobilenet_v2": 96}

TRAIN = r'''
import os, sys, json, time
import numpy as np
from _photos import load_arrays  # benchmarks/ is on PYTHONPATH
from edgeclf.toolchain._tf import keras, tf
from edgeclf.toolchain.config import ModelConfig
from edgeclf.toolchain.models import create_model, follow_steps_with_batchnorm
from edgeclf.toolchain.train import compile_model

root, name, size, epochs, xla = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
deterministic = not (xla and name == "cnn")
(xt, yt), (xv, yv) = load_arrays(root, "train", size), load_arrays(root, "val", size)
k = keras()
k.utils.set_random_seed(0)
if deterministic:
    tf().config.experimental.enable_op_determinism()
model = create_model(ModelConfig(name, size, alpha=0.35, weights="none"), int(yt.max()) + 1, size)
follow_steps_with_batchnorm(model, int(np.ceil(len(yt) / 32)))
compile_model(model, 1e-3 if name == "mobilenet_v2" else 3e-3)
model.jit_compile = xla
seconds = []
class Clock(k.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None): self.started = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): seconds.append(time.perf_counter() - self.started)
history = model.fit(xt, yt, batch_size=32, epochs=epochs, validation_data=(xv, yv), verbose=0, callbacks=[Clock()])
print(json.dumps({"first": seconds[0], "later": float(np.mean(seconds[1:])), "val_accuracy": history.history["val_accuracy"][-1],
                  "op_determinism": deterministic}))
'''


def _run(root: Path, name: str, size: int, epochs: int, xla: bool) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parent)}
    proc = subprocess.run([sys.executable, "-c", TRAIN, str(root), name, str(size), str(epochs), "1" if xla else "0"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} (xla={xla}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fit(run: dict, epochs: int) -> float:
    return run["first"] + (epochs - 1) * run["later"]


def _break_even(default: dict, xla: dict, images: int) -> int | None:
    """Images x epochs after which XLA's faster epochs repay its longer first one; None if its epochs are slower."""
    saved = default["later"] - xla["later"]
    if saved <= 0:
        return None
    return int(round(max(0.0, xla["first"] - default["first"]) / saved * images))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs per run instead of 5.")
    args = parser.parse_args()
    from _photos import HARDER, make_photo_folder

    epochs = 3 if args.quick else 5
    figures: dict = {"images_train": 300, "classes": len(HARDER), "epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photo_folder(root / "train", 30, seed=0, names=HARDER)
        make_photo_folder(root / "val", 10, seed=1, names=HARDER)
        for name, size in FAMILIES.items():
            default, xla = _run(root, name, size, epochs, False), _run(root, name, size, epochs, True)
            figures[f"{name}@{size}"] = {
                "default_first_s": round(default["first"], 2), "xla_first_s": round(xla["first"], 2),
                "default_epoch_s": round(default["later"], 3), "xla_epoch_s": round(xla["later"], 3),
                "xla_epoch_ratio": round(xla["later"] / default["later"], 3),
                "xla_fit_ratio": round(_fit(xla, epochs) / _fit(default, epochs), 3),
                "break_even_image_epochs": _break_even(default, xla, 300),
                "default_val_accuracy": round(default["val_accuracy"], 3), "xla_val_accuracy": round(xla["val_accuracy"], 3),
                "xla_op_determinism": xla["op_determinism"]}
            print(name, figures[f"{name}@{size}"], file=sys.stderr, flush=True)
    rows = {key: value for key, value in figures.items() if isinstance(value, dict)}
    print("family | first epoch s (default / XLA) | later epochs s (default / XLA) | epoch ratio | fit ratio | "
          "val accuracy (default / XLA)")
    for key, row in rows.items():
        print(f"{key} | {row['default_first_s']} / {row['xla_first_s']} | {row['default_epoch_s']} / {row['xla_epoch_s']} | "
              f"{row['xla_epoch_ratio']} | {row['xla_fit_ratio']} | {row['default_val_accuracy']} / {row['xla_val_accuracy']}")
    figures["xla_faster_families"] = [key for key, row in rows.items() if row["xla_fit_ratio"] < 1.0]
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
