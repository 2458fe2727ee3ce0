"""The x86 side of the cross-architecture agreement test (tests/runtime/test_cross_arch.py).

Writes into OUT: `photos/` (120 real photos: PNG crops of the pictures scikit-image ships, lossless
so every OpenCV build decodes the same pixels), float32 and int8 models (the digits fixture models,
and a MobileNetV2 0.35@96 trained briefly on the photos, so its depthwise, residual and pooling
kernels run with real weights), and `reference.json`: each model's scores for each photo as this
machine's runtime computes them. `make test-arm` copies OUT into each ARM root, where the test
computes the same scores and compares.

Usage: python tests/arm/reference.py OUT   (the toolchain venv: it trains and converts the MobileNetV2)
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "digits_tiny"
PER_CLASS, SIZE = 12, 96


def write_photos(folder: Path) -> list[Path]:
    from _photos import HARDER, make_photo_folder

    jpegs = make_photo_folder(folder / "jpeg", PER_CLASS, seed=3, sides=(80, 200), names=HARDER)
    paths = []
    for jpeg in sorted(jpegs.rglob("*.jpg")):
        png = folder / f"{jpeg.parent.name}_{jpeg.stem}.png"
        cv2.imwrite(str(png), cv2.imread(str(jpeg)))
        paths.append(png)
    shutil.rmtree(jpegs)
    return paths


def write_mobilenet(folder: Path, photos: list[Path]) -> None:
    """MobileNetV2 0.35@96 fitted for 15 epochs on the photos (class = source picture), float32 and int8."""
    from edgeclf.runtime.preprocess import preprocess
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.export import convert_float32, convert_int8
    from edgeclf.toolchain.models import create_model

    names = sorted({p.name.rsplit("_", 1)[0] for p in photos})
    images = np.stack([preprocess(p, SIZE) for p in photos])
    labels = np.array([names.index(p.name.rsplit("_", 1)[0]) for p in photos])
    keras().utils.set_random_seed(0)
    model = create_model(ModelConfig("mobilenet_v2", SIZE, 0.35, "none"), len(names), SIZE)
    model.compile(keras().optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(images.astype(np.float32), labels, batch_size=16, epochs=15, verbose=0)
    (folder / "mobilenet_v2_float32.tflite").write_bytes(convert_float32(model))
    (folder / "mobilenet_v2_int8.tflite").write_bytes(convert_int8(model, images))


def scores(models: list[Path], photos: list[Path]) -> dict[str, list[list[float]]]:
    """Each model's scores (dequantized for int8) for every photo, one image per invoke as on a camera."""
    from edgeclf.runtime.model import Model
    from edgeclf.runtime.preprocess import load_image

    images = [load_image(p) for p in photos]
    result = {}
    for path in models:
        model = Model(path, num_threads=1)
        result[path.name] = [model.predict(image)[0].tolist() for image in images]
    return result


def main() -> int:
    out = Path(sys.argv[1])
    if out.exists():
        shutil.rmtree(out)
    (out / "photos").mkdir(parents=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("edgeclf").setLevel(logging.ERROR)  # the models carry no metadata: no labels warnings
    photos = write_photos(out / "photos")
    for name in ("model_float32.tflite", "model_int8.tflite"):
        shutil.copy(FIXTURE_MODELS / name, out / f"digits_{name.removeprefix('model_')}")
    write_mobilenet(out, photos)
    models = sorted(out.glob("*.tflite"))
    reference = {"machine": os.uname().machine, "photos": [p.name for p in photos], "scores": scores(models, photos)}
    (out / "reference.json").write_text(json.dumps(reference))
    print(f"reference: {len(models)} models x {len(photos)} photos -> {out / 'reference.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
