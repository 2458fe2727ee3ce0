"""The data stage: folder layouts, bad files, early errors, the image cache, the tf.data pipeline, `edgeclf data`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.folder import DatasetError
from edgeclf.runtime.preprocess import preprocess
from edgeclf.toolchain import cache
from edgeclf.toolchain.data import load_splits, resolve_source


def _image(seed: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), size, interpolation=cv2.INTER_LINEAR)


def _write(path: Path, seed: int, ext: str = ".png") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(ext, _image(seed))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def _folder(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            _write(root / name / f"{i}.png", 100 * c + i)
    return root


def _bad_files(folder: Path) -> dict[str, str]:
    """Writes one file of each bad kind; returns name -> a word its skip reason must contain."""
    jpeg = cv2.imencode(".jpg", _image(7, (200, 150)))[1].tobytes()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (folder / "notes.png").write_text("this is a text file, not a picture\n")
    (folder / "noise.jpeg").write_bytes(np.random.default_rng(3).integers(0, 256, 900, dtype=np.uint8).tobytes())
    (folder / "phone.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    return {"zero.jpg": "empty", "truncated.jpg": "truncated", "notes.png": "not a readable image",
            "noise.jpeg": "not a readable image", "phone.jpg": "HEIC"}


# --- layouts and scanning ---------------------------------------------------------------------------

def test_flat_folder_split_is_stratified_seeded_and_saved(tmp_path):
    root = _folder(tmp_path / "photos", per_class=10)
    first = load_splits(str(root), 16, 0.2, seed=1)
    again = load_splits(str(root), 16, 0.2, seed=1)
    other = load_splits(str(root), 16, 0.2, seed=2)
    assert np.bincount(first.val.labels).tolist() == [2, 2]
    assert first.val.paths == again.val.paths and first.val.paths != other.val.paths
    listing = first.listing()
    assert listing["split"] == "--val-split 0.2 --seed 1"
    assert sorted(listing["train"] + listing["val"]) == sorted(f"{c}/{i}.png" for c in ("cat", "dog") for i in range(10))


def test_train_val_test_folders_extensions_hidden_and_symlinks(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val", "test"):
        _folder(root / split, per_class=3)
    _write(root / "train" / "cat" / "UPPER.JPG", 50, ".jpg")
    _write(root / "train" / "cat" / "scan.TIF", 51, ".tif")
    _write(root / "train" / "cat" / "web.WebP", 52, ".webp")
    _write(root / "train" / "cat" / ".hidden.png", 53)
    _write(root / "train" / "cat" / ".thumbs" / "x.png", 54)
    _write(tmp_path / "elsewhere" / "linked.png", 55)
    os.symlink(tmp_path / "elsewhere", root / "train" / "dog" / "more")
    os.symlink(root / "train" / "dog", root / "train" / "dog" / "loop")  # a loop is followed once
    (root / "train" / "dog" / "dangling.png").symlink_to(tmp_path / "gone.png")
    splits = load_splits(str(root), 8, 0.2, seed=0)
    names = {Path(p).name for p in splits.train.paths}
    assert {"UPPER.JPG", "scan.TIF", "web.WebP", "linked.png"} <= names and ".hidden.png" not in names
    assert "x.png" not in names
    assert len(splits.train) == 3 + 3 + 3 + 1 and len(splits.test) == 6
    assert any(s["path"].endswith("dangling.png") and "symlink" in s["reason"] for s in splits.skipped)


# --- bad input -------------------------------------------------------------------------------------

def test_bad_files_are_skipped_listed_and_never_fatal(tmp_path):
    root = _folder(tmp_path / "photos")
    expected = _bad_files(root / "cat")
    (root / "cat" / "readme.txt").write_text("labels")
    splits = load_splits(str(root), 16, 0.25, seed=0)
    reasons = {Path(s["path"]).name: s["reason"] for s in splits.skipped}
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    assert "not an image extension" in reasons["readme.txt"]
    assert len(splits.train) + len(splits.val) == 12


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("empty", "no class folders"),
    ("unreadable_class", "'dog' has no readable training image"),
    ("single_class", "single class"),
    ("mismatch", "differ from val/"),
    ("few", "fewer than one batch"),
])
def test_clear_errors_before_training_and_nothing_written(tmp_path, case, message):
    root = tmp_path / "data"
    if case == "empty":
        root.mkdir()
    elif case == "unreadable_class":
        _folder(root, classes=("cat",))
        (root / "dog").mkdir()
        (root / "dog" / "a.jpg").write_bytes(b"")
        (root / "dog" / "b.png").write_text("text")
    elif case == "single_class":
        _folder(root, classes=("cat",))
    elif case == "mismatch":
        _folder(root / "train")
        _folder(root / "val", classes=("cat", "horse"))
    elif case == "few":
        _folder(root, per_class=4)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["build", "--data", str(root), "--model", "tiny", "--batch-size", "32",
                                      "--out", str(runs), "-q"])
    assert result.exit_code == 2, result.output
    assert message in result.output and str(root) in result.output
    assert not runs.exists() or not any(runs.iterdir())


# --- the image cache --------------------------------------------------------------------------------

def test_cache_pixels_equal_the_shared_preprocessing(tmp_path):
    root = _folder(tmp_path / "photos", per_class=3)
    files = [(p, 0) for p in sorted(root.rglob("*.png"))]
    images = cache.load(root, files, 24).images
    assert images.shape == (6, 24, 24, 3)
    for i, (path, _) in enumerate(files):
        assert np.array_equal(images[i], preprocess(path, 24))
    assert np.array_equal(images[[4, 1]], np.stack([preprocess(files[4][0], 24), preprocess(files[1][0], 24)]))
    assert np.array_equal(images[1:3], np.stack([preprocess(f, 24) for f, _ in files[1:3]]))


def test_cache_reuses_redecodes_changed_adds_new_and_drops_removed(tmp_path):
    root = _folder(tmp_path / "photos", per_class=3)

    def files():
        return [(p, 0) for p in sorted(root.rglob("*.png"))]

    stats = cache.CacheStats()
    cache.load(root, files(), 16, stats=stats)
    assert stats.as_dict() == {"decoded": 6, "reused": 0, "dropped": 0}
    cache.load(root, files(), 16, stats=stats)
    assert stats.as_dict() == {"decoded": 0, "reused": 6, "dropped": 0}
    changed = root / "cat" / "0.png"
    _write(changed, 999)
    os.utime(changed, ns=(1, 1))  # mtime differs from the cached key
    _write(root / "dog" / "new.png", 1000)
    (root / "cat" / "1.png").unlink()
    loaded = cache.load(root, files(), 16, stats=stats)
    assert stats.as_dict() == {"decoded": 2, "reused": 4, "dropped": 1}
    images = loaded.images
    by_name = dict(zip(loaded.paths, range(len(loaded))))
    assert np.array_equal(images[by_name[str(changed)]], preprocess(changed, 16))
    assert np.array_equal(images[by_name[str(root / "dog" / "new.png")]], preprocess(root / "dog" / "new.png", 16))
    assert len(list(images.pixels.parent.glob("pixels-*.u8"))) == 1  # the previous pixels file is gone


def test_damaged_cache_entry_is_detected_and_rebuilt(tmp_path):
    root = _folder(tmp_path / "photos", per_class=2)
    files = [(p, 0) for p in sorted(root.rglob("*.png"))]
    images = cache.load(root, files, 16).images
    with open(images.pixels, "r+b") as handle:  # a write cut short
        handle.truncate(100)
    (images.pixels.parent / ".pixels-half.u8.tmp").write_bytes(b"\x00" * 10)  # a killed writer's leftover
    stats = cache.CacheStats()
    rebuilt = cache.load(root, files, 16, stats=stats)
    assert stats.decoded == 4
    assert np.array_equal(rebuilt.images[0], preprocess(files[0][0], 16))


def test_skipped_files_are_remembered_by_the_cache(tmp_path):
    root = _folder(tmp_path / "photos", per_class=2)
    (root / "cat" / "bad.jpg").write_bytes(b"")
    files = [(p, 0) for p in sorted(root.rglob("*")) if p.is_file()]
    first = cache.load(root, files, 16)
    stats = cache.CacheStats()
    second = cache.load(root, files, 16, stats=stats)
    assert stats.decoded == 0 and first.skipped == second.skipped and "empty" in second.skipped[0]["reason"]


# --- the tf.data pipeline ---------------------------------------------------------------------------

def _batches(dataset) -> list:
    return [tuple(np.asarray(t) for t in batch) for batch in dataset]


def test_pipeline_streams_batches_reads_only_a_batch_at_a_time(tmp_path):
    from edgeclf.toolchain.pipeline import make_dataset

    root = _folder(tmp_path / "photos", per_class=10)
    loaded = cache.load(root, [(p, i % 2) for i, p in enumerate(sorted(root.rglob("*.png")))], 16)
    images = loaded.images
    largest = []
    original = images.read

    def counting(indices):
        largest.append(len(indices))
        return original(indices)

    images.read = counting
    batches = _batches(make_dataset(images, loaded.labels, 8, shuffle=False, seed=0))
    assert [len(b[0]) for b in batches] == [8, 8, 4] and max(largest) == 8
    assert batches[0][0].dtype == np.float32
    assert np.array_equal(batches[0][0].astype(np.uint8), images[0:8])


def test_augmentation_is_seeded_differs_per_epoch_and_keeps_pixels_in_range(tmp_path):
    from edgeclf.toolchain.pipeline import Augmentation, make_dataset

    root = _folder(tmp_path / "photos", per_class=8)
    images = cache.load(root, [(p, i % 2) for i, p in enumerate(sorted(root.rglob("*.png")))], 24)
    strong = Augmentation.level("strong")

    def epochs(seed):
        dataset = make_dataset(images.images, images.labels, 16, shuffle=True, seed=seed, augmentation=strong)
        return _batches(dataset), _batches(dataset)

    (a1, a2), (b1, _) = epochs(5), epochs(5)
    assert np.array_equal(a1[0][0], b1[0][0]) and np.array_equal(a1[0][1], b1[0][1])  # reproducible
    assert not np.array_equal(a1[0][0], a2[0][0])  # a new draw each epoch
    pixels = np.concatenate([b[0] for b in a1])
    assert pixels.min() >= 0 and pixels.max() <= 255
    labels = np.concatenate([b[1] for b in a1])
    assert sorted(labels.tolist()) == sorted(images.labels.tolist())  # every image once per epoch


def test_flip_only_augmentation_mirrors_and_identity_keeps_pixels():
    from edgeclf.toolchain.pipeline import Augmentation, make_dataset

    batch = np.stack([_image(i, (20, 12)) for i in range(16)])

    def augmented(augmentation: Augmentation) -> np.ndarray:
        return _batches(make_dataset(batch, np.zeros(16, np.int64), 16, False, 1, augmentation))[0][0]

    identity = augmented(Augmentation(flip=False))
    assert np.allclose(identity, batch, atol=1e-3)
    flipped = augmented(Augmentation(flip=True))
    mirrored = [np.allclose(f, b[:, ::-1], atol=1e-3) for f, b in zip(flipped, batch)]
    unchanged = [np.allclose(f, b, atol=1e-3) for f, b in zip(flipped, batch)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and 0 < sum(mirrored) < 16


def test_contrast_scales_about_each_channel_mean():
    from edgeclf.toolchain.pipeline import _warp

    batch = np.stack([_image(i, (20, 12)) for i in range(3)])
    identity = np.tile(np.array([[1, 0, 0, 0, 1, 0, 0, 0]], np.float32), (3, 1))
    factors = np.array([1.0, 1.5, 0.5], np.float32)
    out = _warp(batch, identity, factors)
    for image, result, factor in zip(batch.astype(np.float64), out, factors):
        mean = image.mean(axis=(0, 1))
        assert np.abs(result - np.clip((image - mean) * factor + mean, 0, 255)).max() <= 1.0


def test_rotation_turns_the_image_about_its_centre():
    from edgeclf.toolchain._tf import tf
    from edgeclf.toolchain.pipeline import _transforms, Augmentation

    params = np.array([[1.0, 0.5, 0.5, 0.5, 0.9, 0.5]], np.float32)  # rotation +max, no zoom/shift/flip
    matrix = _transforms(tf().constant([1, 11, 11, 3]), tf().constant(params), Augmentation(rotation=90.0)).numpy()[0]
    a0, a1, a2, b0, b1, b2 = matrix[:6]
    centre = (a0 * 5 + a1 * 5 + a2, b0 * 5 + b1 * 5 + b2)
    corner = (a0 * 10 + a1 * 5 + a2, b0 * 10 + b1 * 5 + b2)  # output (x=10, y=5) reads input (x=5, y=10)
    assert np.allclose(centre, (5, 5), atol=1e-4) and np.allclose(corner, (5, 10), atol=1e-4)


def test_class_weights_balance_the_loss(tmp_path):
    from edgeclf.toolchain.pipeline import class_weights, make_dataset

    labels = np.array([0] * 9 + [1] * 3)
    weights = class_weights(labels, 2)
    assert weights == {0: pytest.approx(12 / 18), 1: pytest.approx(2.0)}
    images = np.zeros((12, 4, 4, 3), np.uint8)
    (x, y, w), = _batches(make_dataset(images, labels, 12, shuffle=False, seed=0, weights=weights))
    assert np.allclose(w, [weights[c] for c in y]) and np.isclose((w * (y == 0)).sum(), (w * (y == 1)).sum())


# --- built-ins and `edgeclf data` -------------------------------------------------------------------

def test_keras_builtin_offline_names_the_file_and_where_to_put_it(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("EDGECLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DatasetError) as error:
        resolve_source("mnist")
    assert "mnist.npz" in str(error.value) and str(tmp_path / "keras" / "datasets") in str(error.value)
    assert not (tmp_path / "cache" / "datasets" / "mnist").exists()


def test_data_command_counts_sizes_duplicates_and_skips(tmp_path):
    root = _folder(tmp_path / "photos", per_class=4)
    expected = _bad_files(root / "dog")
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "0.png").read_bytes())  # same bytes, other class
    result = CliRunner().invoke(cli, ["data", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["counts"] == {"all": {"cat": 4, "dog": 5}}
    assert report["size_histogram"] == {"0-63": 9}
    assert report["common_sizes"] == [{"size": "40x30", "images": 9}]
    assert len(report["duplicates"]) == 1 and report["duplicates"][0]["classes"] == ["cat", "dog"]
    assert {Path(s["path"]).name for s in report["skipped"]} == set(expected)
    assert any("different classes" in line for line in report["advice"])
    text = CliRunner().invoke(cli, ["data", str(root)])
    assert text.exit_code == 0 and "truncated JPEG" in text.output and "would be skipped: 5" in text.output


def test_data_command_on_a_missing_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["data", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such folder" in result.output and "Traceback" not in result.output


def test_build_lists_skipped_files_and_saves_its_split(tmp_path):
    from edgeclf.toolchain.build import build
    from edgeclf.toolchain.config import BuildConfig

    root = _folder(tmp_path / "photos", per_class=12)
    expected = _bad_files(root / "dog")
    config = BuildConfig().override({
        "data.source": str(root), "data.augment": "light", "data.class_weight": "auto", "model.name": "tiny",
        "model.size": 16, "train.epochs": 1, "train.batch_size": 8, "export.out": str(tmp_path / "runs")})
    run = build(config).run_dir
    report = json.loads((run / "report.json").read_text())
    dataset = report["dataset"]
    assert {Path(s["path"]).name: s["reason"] for s in dataset["skipped"]}.keys() == expected.keys()
    assert dataset["augment"] == "light" and set(dataset["class_weight"]) == {"cat", "dog"}
    assert dataset["train"] + dataset["val"] == 24 and dataset["cache"]["decoded"] == 24 + len(expected)
    split = json.loads((run / "dataset_split.json").read_text())
    assert sorted(split["train"] + split["val"]) == sorted(f"{c}/{i}.png" for c in ("cat", "dog") for i in range(12))
