"""edgeclf build vs the tutorial recipe it replaces, on the same image folder, same models, same epoch cap.

The folder: crops of ten photos and textures scikit-image ships (train/ and val/ from different crops).

The recipe is the common MobileNetV2 tutorial's, as written (RECIPE below): ImageDataGenerator (preprocess_input, rotation 20,
shifts 0.2, shear 0.2, zoom 0.2, horizontal flip, fill 'nearest') + flow_from_directory at 96x96,
batch 32, Adam(1e-3), EarlyStopping(val_loss, patience 3, best weights restored), ReduceLROnPlateau
(val_loss, x0.5, patience 2), ModelCheckpoint(best val_accuracy), model.fit for at most N epochs.
Its MobileNetV2 is the seed's (GlobalAveragePooling, Dropout 0.3, Dense 128, Dropout 0.3, softmax)
on MobileNetV2(alpha 0.35, weights=None), trained whole since there are no weights to freeze; its CNN
is the tutorials' three Conv2D/MaxPooling blocks, Flatten, Dense 128, Dropout, softmax with
rescale=1/255 (the tutorials' small-CNN recipe).

edgeclf runs `edgeclf build --data DIR --model M [--alpha 0.35 --size 96 --weights none] --epochs N`
with its defaults otherwise, end to end (training, export to .tflite, evaluation, report). Each side
runs in its own process and is timed from process start to exit (edgeclf's train and export stages are
printed too); accuracy is each side's validation
top-1 (the recipe's Keras model.evaluate, edgeclf's float32 .tflite on the same val/ folder).

Prints one JSON object on its last line: accuracy_delta (edgeclf - recipe, points, worst model) and
time_ratio (edgeclf / recipe, worst model). Besides the target, time_to_recipe_accuracy_ratio: seconds
from edgeclf's start to the end of its first epoch at or above the recipe's final accuracy, over the
recipe's whole run (worst model; None when an edgeclf run never got there). --quick: smaller folder and epoch cap.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE, BATCH = 96, 32

RECIPE = r'''
import os, sys, json
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf
from tf_keras import layers, Model, Sequential
from tf_keras.applications import MobileNetV2
from tf_keras.applications.mobilenet_v2 import preprocess_input
from tf_keras.callbacks import EarlyStopping, ReduceLROnPlateau, ModelCheckpoint
from tf_keras.optimizers import Adam
from tf_keras.preprocessing.image import ImageDataGenerator

root, kind, epochs, size, checkpoint = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tf_keras_seed = 0
tf.keras.utils.set_random_seed(0) if hasattr(tf.keras.utils, "set_random_seed") else None
augment = dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
               horizontal_flip=True, fill_mode="nearest")
scale = dict(preprocessing_function=preprocess_input) if kind == "mobilenet_v2" else dict(rescale=1.0 / 255)
train_gen = ImageDataGenerator(**scale, **augment).flow_from_directory(
    os.path.join(root, "train"), target_size=(size, size), batch_size=32, class_mode="sparse")
val_gen = ImageDataGenerator(**scale).flow_from_directory(
    os.path.join(root, "val"), target_size=(size, size), batch_size=32, class_mode="sparse", shuffle=False)
classes = train_gen.num_classes
if kind == "mobilenet_v2":
    base = MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(size, size, 3))
    x = layers.GlobalAveragePooling2D()(base.output)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    model = Model(base.input, layers.Dense(classes, activation="softmax")(x))
else:
    model = Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(size, size, 3)), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
        layers.Dense(classes, activation="softmax")])
model.compile(optimizer=Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
callbacks = [EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
             ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-7),
             ModelCheckpoint(checkpoint, monitor="val_accuracy", save_best_only=True)]
history = model.fit(train_gen, validation_data=val_gen, epochs=epochs, callbacks=callbacks, verbose=0)
loss, accuracy = model.evaluate(val_gen, verbose=0)
print(json.dumps({"accuracy": float(accuracy), "epochs": len(history.history["loss"])}))
'''

MODELS = {"mobilenet_v2": ["--model", "mobilenet_v2", "--alpha", "0.35", "--size", str(SIZE), "--weights", "none"],
          "cnn": ["--model", "cnn", "--size", str(SIZE)]}


def _timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def _seconds_to_accuracy(report: dict, total_s: float, accuracy: float) -> float | None:
    """Seconds from edgeclf's process start to the end of the first epoch whose validation accuracy
    (Keras', as the recipe's) reached `accuracy`: process start and the stages before training,
    plus the epochs' own wall times. None if no epoch reached it."""
    history = report["history"]["train"]
    stages = report["stages"]
    before = total_s - sum(stages.values()) + sum(stages[name] for name in ("data", "model") if name in stages)
    elapsed = before
    for seconds, value in zip(history["seconds"], history["val_accuracy"]):
        elapsed += seconds
        if value >= accuracy:
            return elapsed
    return None


def _worst_ratio(results: dict) -> float | None:
    reached = [r["edgeclf_seconds_to_recipe_accuracy"] for r in results.values()]
    if None in reached:
        return None
    return round(max(t / r["recipe_seconds"] for t, r in zip(reached, results.values())), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60/20 images per class and at most 4 epochs.")
    args = parser.parse_args()
    from _photos import HARDER, make_photo_folder

    per_class, epochs = (30, 4) if args.quick else (120, 20)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "photos"
        make_photo_folder(root / "train", per_class, seed=0, names=HARDER)
        make_photo_folder(root / "val", per_class // 3, seed=1, names=HARDER)
        env = {**os.environ, "EDGECLF_CACHE": str(tmp / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_USE_LEGACY_KERAS": "1"}
        for name, flags in MODELS.items():
            recipe_s, recipe_out = _timed([sys.executable, "-c", RECIPE, str(root), name, str(epochs), str(SIZE),
                                           str(tmp / f"best_{name}.h5")], env)
            recipe = json.loads(recipe_out.strip().splitlines()[-1])
            ours_s, ours_out = _timed([sys.executable, "-m", "edgeclf", "build", "--data", str(root), *flags,
                                       "--epochs", str(epochs), "--out", str(tmp / "runs"), "--json"], env)
            ours = json.loads(ours_out[ours_out.index("{"):])
            report = json.loads((Path(ours["run"]) / "report.json").read_text())
            reached = _seconds_to_accuracy(report, ours_s, recipe["accuracy"])
            results[name] = {
                "recipe_accuracy": round(100 * recipe["accuracy"], 2), "recipe_epochs": recipe["epochs"],
                "recipe_seconds": round(recipe_s, 1),
                "edgeclf_accuracy": round(100 * ours["artifacts"]["float32"]["accuracy"], 2),
                "edgeclf_epochs": len(report["history"]["train"]["loss"]), "edgeclf_seconds": round(ours_s, 1),
                "edgeclf_train_seconds": round(report["stages"]["train"], 1),
                "edgeclf_export_seconds": round(report["stages"]["export"], 1),
                "edgeclf_seconds_to_recipe_accuracy": None if reached is None else round(reached, 1),
            }
            print(name, results[name], file=sys.stderr)
    figures = {f"{name}_{key}": value for name, row in results.items() for key, value in row.items()}
    figures.update({
        "classes": len(HARDER), "images_train": len(HARDER) * per_class, "images_val": len(HARDER) * (per_class // 3),
        "max_epochs": epochs, "size": SIZE,
        "accuracy_delta": round(min(r["edgeclf_accuracy"] - r["recipe_accuracy"] for r in results.values()), 2),
        "time_ratio": round(max(r["edgeclf_seconds"] / r["recipe_seconds"] for r in results.values()), 3),
        # not the target: how soon edgeclf's training passes the accuracy the recipe ends with, vs the recipe's run
        "time_to_recipe_accuracy_ratio": _worst_ratio(results),
        "targets": "accuracy_delta >= 0, time_ratio <= 0.5",
    })
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
