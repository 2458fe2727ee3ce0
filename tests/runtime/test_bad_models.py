"""Damaged and wrong model files given to every runtime command: one line, exit 2, never a crash."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli

HERE = Path(__file__).parent


def _not_a_model() -> bytes:
    """A valid flatbuffer (a table with a string and an int) that is not a TFLite model."""
    builder = flatbuffers.Builder(64)
    name = builder.CreateString("just a table")
    builder.StartObject(2)
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.PrependInt32Slot(1, 42, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def _bad_files(folder: Path, good: bytes) -> dict[str, Path]:
    contents = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "flatbuffer": _not_a_model(),
        "text": b"this is a text file, saved as .tflite by mistake\n",
    }
    files = {}
    for name, content in contents.items():
        files[name] = folder / f"{name}.tflite"
        files[name].write_bytes(content)
    files["not_image"] = HERE.parent / "fixtures" / "not_image" / "model.tflite"  # a (1, 10) float input
    return files


COMMANDS = {
    "classify": ["classify", "MODEL", "IMAGE"],
    "inspect": ["inspect", "MODEL"],
    "eval": ["eval", "MODEL", "--data", "DATA"],
    "bench": ["bench", "MODEL", "--runs", "1", "--min-time", "0"],
    "camera": ["camera", "MODEL", "--source", "DATA/0", "--max-frames", "1"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_every_bad_model_in_one_line(command, tmp_path, tiny_int8, digits_val):
    image = next((digits_val / "0").iterdir())
    for kind, path in _bad_files(tmp_path, tiny_int8.read_bytes()).items():
        args = [a.replace("MODEL", str(path)).replace("IMAGE", str(image)).replace("DATA", str(digits_val))
                for a in COMMANDS[command]]
        result = CliRunner().invoke(cli, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2, (kind, result.output)
        assert "Traceback" not in result.output and len([l for l in lines if l.startswith("Error:")]) == 1, (kind, lines)
        assert path.name in result.output, (kind, result.output)


def test_fuzzed_models_never_crash_the_process(tiny_int8, tmp_path):
    """Truncations and random byte changes, each loaded and run in a worker process that may die natively."""
    proc = subprocess.run([sys.executable, str(HERE.parent / "fuzz_models.py"), str(tiny_int8), "--flips", "150",
                           "--truncations", "40", "--seed", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["native_crashes"] == 0, outcome["crashes"]
    assert outcome["python_errors"] == 0, outcome["bugs"]
    assert outcome["refused"] >= 40  # every truncation at least
