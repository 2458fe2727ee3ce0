"""TFLite Metadata: round trip, labels and normalization read from the file, the `metadata` command."""
from __future__ import annotations

import importlib.util
import json
import logging
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime import metadata
from edgeclf.runtime.model import Model

LABELS = tuple(f"class {i}" for i in range(10))
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason="writing metadata needs ai-edge-litert's schema "
                                  "bindings; this environment has another backend (make test-tflite-runtime)")


@pytest.fixture()
def bare(fixtures, tmp_path):
    """A model without metadata and without labels.txt beside it."""
    path = tmp_path / "bare.tflite"
    shutil.copy(fixtures / "no_metadata" / "model.tflite", path)
    return path


@needs_litert
def test_round_trip_keeps_every_field(bare):
    written = metadata.ModelMetadata(name="digits", labels=LABELS, description="d", version="3", author="a",
                                     license="Apache-2.0", mean=(127.5,), std=(127.5,))
    content = metadata.write(bare.read_bytes(), written)
    assert metadata.read(content) == written
    assert metadata.read(content).extra["min_parser_version"] == "1.0.0"
    assert metadata.associated_files(content) == {"labels.txt": ("\n".join(LABELS) + "\n").encode()}
    again = metadata.write(content, written)  # replacing does not grow the model
    assert len(again) == len(content) and metadata.read(again) == written


def test_labels_come_from_the_file_itself(tiny_int8, tmp_path, caplog):
    alone = tmp_path / "alone.tflite"
    shutil.copy(tiny_int8, alone)
    with caplog.at_level(logging.WARNING):
        model = Model(alone)
    assert model.labels == [str(i) for i in range(10)] and caplog.text == ""
    assert model.metadata.name == "edgeclf tiny 16px int8" and model.raw_pixels


def test_model_without_metadata_loads_with_a_warning(bare, caplog):
    with caplog.at_level(logging.WARNING):
        model = Model(bare)
    assert model.metadata is None and model.labels == [str(i) for i in range(10)]
    assert "no TFLite metadata" in caplog.text and "edgeclf metadata" in caplog.text


@needs_litert
def test_normalization_from_metadata_is_applied(bare, tmp_path):
    path = tmp_path / "normalized.tflite"
    path.write_bytes(metadata.write(bare.read_bytes(), metadata.ModelMetadata(
        name="n", labels=LABELS, mean=(127.5,), std=(127.5,))))
    model = Model(path)
    pixels = np.array([[[0, 127, 255]]], np.uint8).repeat(16, 0).repeat(16, 1)
    np.testing.assert_allclose(model.prepare(pixels)[0, 0, 0], [-1.0, -0.00392157, 1.0], atol=1e-6)


@needs_litert
def test_label_count_must_match_outputs(bare):
    with pytest.raises(metadata.MetadataError, match="3 labels given but the model has 10 outputs"):
        metadata.write(bare.read_bytes(), metadata.ModelMetadata(name="x", labels=("a", "b", "c")))


@needs_litert
def test_metadata_command_writes_a_copy_and_keeps_the_original(bare, tmp_path):
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    original = bare.read_bytes()
    result = CliRunner().invoke(cli, ["metadata", str(bare), "--labels", str(labels), "--author", "me", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["model"].endswith("bare_metadata.tflite") and out["source_kept"]
    assert bare.read_bytes() == original
    model = Model(out["model"])
    assert model.labels == list(LABELS) and model.metadata.author == "me"
    inspected = CliRunner().invoke(cli, ["inspect", out["model"]])
    assert "author me" in inspected.output and "10 labels packed" in inspected.output


@needs_litert
def test_metadata_command_in_place_and_errors(bare, tmp_path):
    labels = tmp_path / "names.txt"
    labels.write_text("a\nb\n")
    runner = CliRunner()
    before = bare.read_bytes()
    result = runner.invoke(cli, ["metadata", str(bare), "--labels", str(labels), "--in-place"])
    assert result.exit_code == 2 and "2 labels given but the model has 10 outputs" in result.output
    assert bare.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.tflite", "names.txt"]  # no temp file left
    labels.write_text("\n".join(LABELS))
    result = runner.invoke(cli, ["metadata", str(bare), "--labels", str(labels), "--in-place"])
    assert result.exit_code == 0 and Model(bare).labels == list(LABELS)
    result = runner.invoke(cli, ["metadata", str(bare), "--labels", str(tmp_path / "none.txt")])
    assert result.exit_code == 2 and "none.txt: no such labels file" in result.output


@pytest.mark.skipif(HAS_LITERT, reason="checks the message shown where ai-edge-litert is missing")
def test_metadata_command_without_litert_says_what_to_install(bare, tmp_path):
    labels = tmp_path / "names.txt"
    labels.write_text("\n".join(LABELS))
    result = CliRunner().invoke(cli, ["metadata", str(bare), "--labels", str(labels)])
    assert result.exit_code == 2 and "pip install ai-edge-litert" in result.output
