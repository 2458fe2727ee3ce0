"""edgeclf doctor and the CPU facts behind every latency note: real runs here (x86) and in the ARM roots."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime import doctor
from edgeclf.runtime._backend import Backend, BackendError
from edgeclf.runtime.cpu import cpu_info, int8_note, int8_notes

ARM = Path(__file__).parents[1] / "arm"
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f avx512_vnni avx_vnni amx_int8\n"


@pytest.mark.parametrize("text, machine, features, dot, name", [
    (EPYC, "x86_64", ("avx2",), False, "AMD EPYC 7B13"),
    (SAPPHIRE, "x86_64", ("avx2", "avx512_vnni", "avx_vnni"), True, "Intel(R) Xeon(R) Platinum 8480+"),
    ((ARM / "cpuinfo-pi4-arm64").read_text(), "aarch64", ("asimd",), False, "Raspberry Pi 4 Model B Rev 1.4"),
    ((ARM / "cpuinfo-pi5-arm64").read_text(), "aarch64", ("asimd", "asimddp"), True, "Raspberry Pi 5 Model B Rev 1.0"),
    ((ARM / "cpuinfo-pi2-armhf").read_text(), "armv7l", ("neon",), False, "Raspberry Pi 2 Model B Rev 1.1"),
])
def test_cpu_features_from_cpuinfo(text, machine, features, dot, name):
    cpu = cpu_info(text, machine)
    assert cpu.features == features and cpu.int8_dot_product is dot and cpu.name == name


def test_int8_note_says_why_from_the_figures():
    slower = int8_note(cpu_info(EPYC, "x86_64"), 0.313, 0.225)
    assert "1.39x float32's median here (0.313 vs 0.225 ms)" in slower
    assert "no int8 dot-product instructions (avx2; no avx512_vnni, avx_vnni)" in slower and "not a faster one" in slower
    faster = int8_note(cpu_info(SAPPHIRE, "x86_64"), 0.1, 0.2)
    assert "0.50x" in faster and "has int8 dot-product instructions (avx512_vnni, avx_vnni)" in faster
    pi4 = int8_note(cpu_info((ARM / "cpuinfo-pi4-arm64").read_text(), "aarch64"), 0.8, 1.0)
    assert "0.80x" in pi4 and "asimd; no asimddp" in pi4 and "Pi 5" in pi4


def test_int8_notes_pair_models_at_the_same_thread_count():
    rows = [{"model": "a/f.tflite", "int8": False, "threads": 1, "median_ms": 2.0},
            {"model": "a/f.tflite", "int8": False, "threads": 2, "median_ms": 1.0},
            {"model": "a/q.tflite", "int8": True, "threads": 1, "median_ms": 3.0},
            {"model": "a/q.tflite", "int8": True, "threads": 2, "median_ms": 1.0}]
    notes = int8_notes(cpu_info(EPYC, "x86_64"), rows)
    assert len(notes) == 2
    assert notes[0].startswith("q.tflite vs f.tflite (1 thread): int8 takes 1.50x")
    assert notes[1].startswith("q.tflite vs f.tflite (2 threads): int8 takes 1.00x")
    assert int8_notes(cpu_info(EPYC, "x86_64"), rows[2:3]) == []  # nothing float to compare with


def test_doctor_runs_a_model_and_names_this_cpu():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and not any(c["blocking"] for c in report["checks"])
    assert checks["platform"]["value"].startswith(f"{platform.machine()}, {64 if sys.maxsize > 2**32 else 32}-bit")
    expected = os.environ.get("EDGECLF_EXPECT_BACKEND")
    if expected:
        assert checks["interpreter"]["value"].startswith(expected)
    assert checks["model run"]["value"].startswith("ok")
    if checks["interpreter"]["value"].startswith("ai_edge_litert"):
        assert checks["xnnpack"]["value"].startswith("on")
    cpu = cpu_info()
    assert checks["int8 features"]["value"].startswith(cpu.feature_list())
    assert checks["int8 dot product"]["value"].startswith("yes" if cpu.int8_dot_product else "no")
    assert f"--threads {min(cpu.cores, 4)}" in checks["threads"]["value"]
    text = CliRunner().invoke(cli, ["doctor"])
    assert text.exit_code == 0 and "ready to run models" in text.output


def _blocked(monkeypatch, backend=None, error=None):
    def fake():
        if error:
            raise error
        return backend

    monkeypatch.setattr("edgeclf.runtime._backend.get_backend", fake)
    return CliRunner().invoke(cli, ["doctor"])


def test_doctor_exits_1_when_no_interpreter_imports(monkeypatch):
    result = _blocked(monkeypatch, error=BackendError("No TFLite interpreter could be imported (...)"))
    assert result.exit_code == 1
    assert "BLOCKING: No TFLite interpreter could be imported" in result.output and "pip install ai-edge-litert" in result.output
    assert "1 problem(s) block running a model here" in result.output


def test_doctor_names_tflite_runtimes_numpy_need(monkeypatch):
    monkeypatch.setattr(doctor.np, "__version__", "2.1.0")
    result = _blocked(monkeypatch, backend=Backend("tflite_runtime", "2.14.0", object))
    assert result.exit_code == 1
    assert "tflite-runtime 2.14 is built against numpy 1" in result.output and 'pip install "numpy<2"' in result.output


def test_doctor_hints_system_site_packages_for_picamera2(monkeypatch, tmp_path):
    (tmp_path / "picamera2").mkdir()
    monkeypatch.setattr(doctor, "SYSTEM_SITE", (str(tmp_path),))
    monkeypatch.setattr(doctor.util, "find_spec", lambda name: None)
    check = doctor.picamera_check()
    assert "not visible to" in check.value and "python3 -m venv --system-site-packages" in check.fix


def test_runtime_commands_keep_the_interpreters_info_lines_off_stderr(tiny_int8, digits_val):
    image = str(sorted((digits_val / "3").iterdir())[0])
    for args in (["classify", str(tiny_int8), image], ["bench", str(tiny_int8), "--runs", "5", "--min-time", "0"]):
        done = subprocess.run([sys.executable, "-m", "edgeclf", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", done.stderr
