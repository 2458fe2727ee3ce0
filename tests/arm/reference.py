"""The x86 side of the cross-architecture agreement test (tests/runtime/test_cross_arch.py).

Writes into OUT: `photos/` (120 real photos: PNG crops of the pictures scikit-image ships, lossless
so every OpenCV build decodes the same pixels), float32 and int8 models (the digits fixture models,
and a MobileNetV2 0.35@96 trained on the photos, so its depthwise, residual and pooling kernels run
with real weights), and `reference-<backend>.json`: each model's scores for each photo as this
machine's runtime computes them with that interpreter. `make test-arm` copies OUT into each ARM root,
where the test computes the same scores with the same interpreter and compares: the architecture is
the only difference (tflite-runtime 2.14 and LiteRT 2.3 differ from each other by up to 0.58 on an
int8 MobileNetV2 on one x86 machine, so each is compared with itself).

The MobileNetV2 is a fixture file made once (tests/fixtures/cross_arch/, by --make-fixture), not
trained at test time: trained on the machine that ran the test, its weights, and how far its int8
version strayed from its float32, changed with the x86 CPU that trained it (on an AVX-512 VNNI machine
its int8 agreed with its own float32 on 92.5% of the photos), so the ARM verdict judged the fixture,
not the runtime. --make-fixture runs `edgeclf build` itself on the photos (its BatchNorm rule, its
calibration), keeps the pair only if its int8 agrees with its float32 on at least 98% of them, and
records how it was made and judged in fixture.json.

Usage: python tests/arm/reference.py OUT             (the toolchain venv: photos, models, LiteRT scores)
       python tests/arm/reference.py --scores OUT    (another venv: adds its interpreter's scores)
       python tests/arm/reference.py --make-fixture  (once, the toolchain venv: rebuilds tests/fixtures/cross_arch)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "digits_tiny"
CROSS_ARCH = REPO / "tests" / "fixtures" / "cross_arch"
TFLITE_PYTHON = REPO / ".venv-tflite" / "bin" / "python"
PER_CLASS = 12
# The build trains on crops of its own (other seed): on the 120 photos alone, or 60 a class, its int8 agreed with
# its float32 on 78% and 96% of the photos; 150 a class gave 98.3% (10 minutes on 2 cores).
TRAIN_PER_CLASS, TRAIN_SEED = 150, 4
MIN_FIXTURE_AGREEMENT = 0.98  # a real build's int8 agrees with its float32 on 98-99.7% of its validation images
# The build that makes the fixture: `edgeclf build`'s defaults otherwise (20 epochs, batch 32, 20% validation,
# its BatchNorm momentum for the steps per epoch, calibration on the training split).
BUILD = ("--model", "mobilenet_v2", "--alpha", "0.35", "--size", "96", "--weights", "none", "--int8", "--seed", "0")


def write_photos(folder: Path) -> list[Path]:
    """folder/<class>_<i>.png: the crops _photos.py saves as JPEG, decoded here once and kept lossless."""
    from _photos import HARDER, make_photo_folder

    jpegs = make_photo_folder(folder / "jpeg", PER_CLASS, seed=3, sides=(80, 200), names=HARDER)
    paths = []
    for jpeg in sorted(jpegs.rglob("*.jpg")):
        png = folder / f"{jpeg.parent.name}_{jpeg.stem}.png"
        cv2.imwrite(str(png), cv2.imread(str(jpeg)))
        paths.append(png)
    shutil.rmtree(jpegs)
    return paths


def photo_digest(photos: list[Path]) -> str:
    """sha256 of the photos' names, shapes and decoded pixels (not the PNG bytes, which zlib builds may vary)."""
    digest = hashlib.sha256()
    for path in sorted(photos):
        pixels = cv2.imread(str(path))
        digest.update(f"{path.name} {pixels.shape}\n".encode())
        digest.update(pixels.tobytes())
    return digest.hexdigest()


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


def judge(float32: np.ndarray, int8: np.ndarray) -> dict:
    """How far the int8 model's top-1 strays from its float32's, and how decided float32's winners are."""
    ordered = np.sort(float32, axis=1)
    return {"int8_agrees_with_float32": float(np.mean(float32.argmax(1) == int8.argmax(1))),
            "mismatches": int(np.sum(float32.argmax(1) != int8.argmax(1))),
            "float32_smallest_margin": float(np.min(ordered[:, -1] - ordered[:, -2])),
            "max_abs_diff": float(np.abs(float32 - int8).max())}


def _backend_judgement(folder: Path, photos: list[Path]) -> dict:
    from edgeclf.runtime._backend import get_backend

    backend = get_backend()
    got = scores([folder / "mobilenet_v2_float32.tflite", folder / "mobilenet_v2_int8.tflite"], photos)
    return {"backend": f"{backend.name} {backend.version}",
            **judge(np.array(got["mobilenet_v2_float32.tflite"]), np.array(got["mobilenet_v2_int8.tflite"]))}


def make_fixture() -> int:
    """`edgeclf build`s the MobileNetV2 on the photos and writes it into tests/fixtures/cross_arch/ when its
    int8 agrees with its float32 on at least 98% of them, judged by LiteRT and (where .venv-tflite exists)
    tflite-runtime; exits 1 and leaves the fixture as it was otherwise."""
    from edgeclf.runtime.cpu import cpu_info

    with tempfile.TemporaryDirectory(prefix="edgeclf-cross-arch-") as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos")
        from _photos import HARDER, make_photo_folder

        data = make_photo_folder(tmp / "data", TRAIN_PER_CLASS, seed=TRAIN_SEED, sides=(80, 200), names=HARDER)
        build = subprocess.run([sys.executable, "-m", "edgeclf", "build", *BUILD, "--data", str(data),
                                "--out", str(tmp / "runs"), "--json"], capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout + build.stderr[-3000:], file=sys.stderr)
            return 1
        summary = json.loads(build.stdout)
        made = tmp / "made"
        made.mkdir()
        for variant in ("float32", "int8"):
            shutil.copy(summary["artifacts"][variant]["path"], made / f"mobilenet_v2_{variant}.tflite")
        judged = [_backend_judgement(made, photos)]
        if TFLITE_PYTHON.is_file():
            other = subprocess.run([str(TFLITE_PYTHON), __file__, "--judge", str(made), str(tmp / "photos")],
                                   capture_output=True, text=True, check=True)
            judged.append(json.loads(other.stdout.splitlines()[-1]))
        cpu = cpu_info()
        record = {
            "made_by": "python tests/arm/reference.py --make-fixture",
            "build": " ".join(["edgeclf", "build", *BUILD, "--data", "TRAIN"]),
            "train": f"TRAIN: {TRAIN_PER_CLASS} crops a class (seed {TRAIN_SEED}) of benchmarks/_photos.py's HARDER, JPEG",
            "build_validation_top1": {k: summary["artifacts"][k]["accuracy"] for k in ("float32", "int8")},
            "photos": {"count": len(photos), "digest": photo_digest(photos),
                       "made": f"{PER_CLASS} crops a class (seed 3) of HARDER, JPEG decoded to PNG (write_photos)"},
            "judged_on_all_photos": judged,
            "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(made.iterdir())},
            "machine": f"{cpu.name} ({cpu.feature_list()})",
            "versions": _versions(),
        }
        print(json.dumps(record, indent=1))
        worst = min(j["int8_agrees_with_float32"] for j in judged)
        if worst < MIN_FIXTURE_AGREEMENT:
            print(f"fixture refused: its int8 agrees with its float32 on {worst:.2%} of the photos, under "
                  f"{MIN_FIXTURE_AGREEMENT:.0%}; tests/fixtures/cross_arch is unchanged", file=sys.stderr)
            return 1
        CROSS_ARCH.mkdir(parents=True, exist_ok=True)
        for path in made.iterdir():
            shutil.copy(path, CROSS_ARCH / path.name)
        (CROSS_ARCH / "fixture.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {CROSS_ARCH}")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("tensorflow", "ai-edge-litert", "numpy", "opencv-python-headless", "scikit-image"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def main() -> int:
    """reference.py OUT writes photos, models and this backend's scores; reference.py --scores OUT adds the
    scores of the backend of the Python that runs it (the tflite-runtime venv, for the armv7 root)."""
    logging.getLogger("edgeclf").setLevel(logging.ERROR)  # the digits models carry no metadata: no labels warnings
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.argv[1] == "--make-fixture":
        return make_fixture()
    if sys.argv[1] == "--judge":  # make_fixture's question to another venv: MODELS_DIR PHOTOS_DIR
        print(json.dumps(_backend_judgement(Path(sys.argv[2]), sorted(Path(sys.argv[3]).glob("*.png")))))
        return 0
    scores_only = sys.argv[1] == "--scores"
    out = Path(sys.argv[-1])
    fixture = json.loads((CROSS_ARCH / "fixture.json").read_text())
    if not scores_only:
        if out.exists():
            shutil.rmtree(out)
        (out / "photos").mkdir(parents=True)
        write_photos(out / "photos")
        for name in ("model_float32.tflite", "model_int8.tflite"):
            shutil.copy(FIXTURE_MODELS / name, out / f"digits_{name.removeprefix('model_')}")
        for variant in ("float32", "int8"):
            shutil.copy(CROSS_ARCH / f"mobilenet_v2_{variant}.tflite", out)
    from edgeclf.runtime._backend import get_backend

    photos = sorted((out / "photos").glob("*.png"))
    backend = get_backend().name
    digest = photo_digest(photos)
    if digest != fixture["photos"]["digest"]:  # a scikit-image or OpenCV that crops, resizes or codes differently
        print(f"note: these photos differ from the ones tests/fixtures/cross_arch was judged on ({digest[:12]} vs "
              f"{fixture['photos']['digest'][:12]}); the test judges the fixture again on these")
    reference = {"machine": os.uname().machine, "backend": backend, "photos": [p.name for p in photos],
                 "photos_as_fixture_judged": digest == fixture["photos"]["digest"],
                 "scores": scores(sorted(out.glob("*.tflite")), photos)}
    (out / f"reference-{backend}.json").write_text(json.dumps(reference))
    print(f"reference: {len(reference['scores'])} models x {len(photos)} photos with {backend}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
