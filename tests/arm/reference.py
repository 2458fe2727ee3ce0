"""The x86 side of the cross-architecture agreement test (tests/runtime/test_cross_arch.py).

Writes into OUT: `photos/` (120 real photos: PNG crops of the pictures scikit-image ships, lossless
so every OpenCV build decodes the same pixels), float32 and int8 models (the digits fixture models,
and a MobileNetV2 0.35@96 trained briefly on the photos, so its depthwise, residual and pooling
kernels run with real weights), and `reference-<backend>.json`: each model's scores for each photo as
this machine's runtime computes them with that interpreter. `make test-arm` copies OUT into each ARM
root, where the test computes the same scores with the same interpreter and compares: the
architecture is the only difference (tflite-runtime 2.14 and LiteRT 2.3 differ from each other by up
to 0.58 on the int8 MobileNetV2 on this very machine, so each is compared with itself).

Usage: python tests/arm/reference.py OUT             (the toolchain venv: trains and converts the MobileNetV2)
       python tests/arm/reference.py --scores OUT    (another venv: adds its interpreter's scores)
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
    model = create_model(ModelConfig(name="mobilenet_v2", size=SIZE, alpha=0.35, weights="none"), len(names), SIZE)
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
    """reference.py OUT writes photos, models and this backend's scores; reference.py --scores OUT adds the
    scores of the backend of the Python that runs it (the tflite-runtime venv, for the armv7 root)."""
    scores_only = sys.argv[1] == "--scores"
    out = Path(sys.argv[-1])
    logging.getLogger("edgeclf").setLevel(logging.ERROR)  # the models carry no metadata: no labels warnings
    if not scores_only:
        if out.exists():
            shutil.rmtree(out)
        (out / "photos").mkdir(parents=True)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        photos = write_photos(out / "photos")
        for name in ("model_float32.tflite", "model_int8.tflite"):
            shutil.copy(FIXTURE_MODELS / name, out / f"digits_{name.removeprefix('model_')}")
        write_mobilenet(out, photos)
    from edgeclf.runtime._backend import get_backend

    photos = sorted((out / "photos").glob("*.png"))
    backend = get_backend().name
    reference = {"machine": os.uname().machine, "backend": backend, "photos": [p.name for p in photos],
                 "scores": scores(sorted(out.glob("*.tflite")), photos)}
    (out / f"reference-{backend}.json").write_text(json.dumps(reference))
    print(f"reference: {len(reference['scores'])} models x {len(photos)} photos with {backend}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
