"""Faults injected into edgeclf and what came of them: the reliability table of benchmarks/RESULTS.md.

- damaged models: truncations and random byte changes of two small models, loaded and run in worker
  processes (tests/fuzz_models.py), with LiteRT and, when .venv-tflite exists, tflite-runtime 2.14;
- wrong model files (empty, truncated, random bytes, a flatbuffer that is not a model, a text file, a
  model whose input is not an image) given to classify, inspect, eval, bench and camera;
- damaged images (zero bytes, truncated JPEG, text, random bytes, HEIC) in a training folder;
- hostile images in each format (PNG, JPEG, BMP, TIFF both byte orders and BigTIFF, WebP VP8/VP8L/VP8X, PNM,
  GIF): headers claiming 0.27-0.9 gigapixels (tests/runtime/test_hostile_images.py's files), malformed headers
  (seeded byte changes in the first 64 bytes of real images and of those files) and truncated streams, each
  decoded by `edgeclf.runtime.preprocess` in worker processes (a native crash is counted and the worker
  restarted past that file), then `edgeclf data` on a folder of all of them: each process's peak RSS over its
  post-import baseline (`peak_rss_mb_max`, target < 400 MB; one decoded 0.27 GP image would take 800 MB);
- builds killed with SIGINT / SIGKILL in the data, train and export stages, and a build whose files
  cannot grow past 16 KiB (a full disk): an earlier run must stay intact, nothing may look finished;
- the camera loop over 100,000 frames of a generated live source that fails one read in 50: RSS growth
  from frame 10,000 to the end (target < 5%) and whether it kept running.

Prints one JSON object on its last line. --quick: fewer mutants and 20,000 frames.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path[:0] = [str(ROOT / "tests" / "runtime"), str(ROOT / "tests" / "toolchain")]  # the tests' own fault helpers

from test_bad_models import COMMANDS, _bad_files  # noqa: E402
from test_hostile_images import HOSTILE, REFUSED_BY_FORMAT, run_measured  # noqa: E402
from test_reliability import _default_sigint, _hashes  # noqa: E402


def fuzz(python: str, model: Path, flips: int, truncations: int, seed: int) -> dict:
    proc = subprocess.run([python, str(ROOT / "tests" / "fuzz_models.py"), str(model), "--flips", str(flips),
                           "--truncations", str(truncations), "--seed", str(seed)], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wrong_models(folder: Path) -> dict:
    """Every runtime command x every wrong file: how many ended as one line with exit 2."""
    from click.testing import CliRunner

    from edgeclf.cli import cli

    folder.mkdir(parents=True, exist_ok=True)
    good = (FIXTURES / "digits_tiny" / "model_int8.tflite").read_bytes()
    data = FIXTURES / "digits_val"
    image = next((data / "0").iterdir())
    outcomes = {"cases": 0, "one_line_exit_2": 0}
    for path in _bad_files(folder, good).values():
        for template in COMMANDS.values():
            args = [a.replace("MODEL", str(path)).replace("IMAGE", str(image)).replace("DATA", str(data)) for a in template]
            result = CliRunner().invoke(cli, args)
            outcomes["cases"] += 1
            errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
            outcomes["one_line_exit_2"] += int(result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output)
    return outcomes


def damaged_images(folder: Path) -> dict:
    from edgeclf.runtime.folder import load, scan

    for c in range(2):
        (folder / f"c{c}").mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(folder / f"c{c}" / f"{i}.png"), np.full((20, 20, 3), 60 * c + i, np.uint8))
    jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()
    bad = {"zero.jpg": b"", "truncated.jpg": jpeg[: len(jpeg) // 2], "text.png": b"not an image\n",
           "random.jpeg": np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8).tobytes(),
           "phone.jpg": b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40}
    for name, content in bad.items():
        (folder / "c0" / name).write_bytes(content)
    loaded = load(scan(folder).files, 16)
    return {"kinds": len(bad), "skipped_and_listed": len(loaded.skipped), "images_kept": len(loaded.labels)}


HOSTILE_RSS_BOUND_MB = 400
# Real small images of each format, whose headers and streams are damaged.
_VALID = {"small.png": (".png", []), "small.jpg": (".jpg", []),
          "small_progressive.jpg": (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), "small.bmp": (".bmp", []),
          "small.tif": (".tif", []), "small_vp8.webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]),
          "small_vp8l.webp": (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), "small_pgm.png": (".pgm", [])}


def hostile_files(folder: Path, malformed: int, cuts: int, seed: int) -> dict[str, int]:
    """Writes the hostile files into folder; returns how many of each kind."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    photo = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (160, 120))
    counts = {"huge_claims": 0, "malformed_headers": 0, "truncated_streams": 0}
    sources = {}
    for name, make in {**HOSTILE, **REFUSED_BY_FORMAT}.items():
        sources[f"huge-{name}"] = make()
        (folder / f"huge-{name}").write_bytes(sources[f"huge-{name}"])
        counts["huge_claims"] += 1
    for name, (ext, params) in _VALID.items():
        sources[name] = cv2.imencode(ext, photo[..., 0] if ext == ".pgm" else photo, params)[1].tobytes()
    for name, data in sources.items():
        stem, ext = name.rsplit(".", 1)
        for i in range(malformed):
            damaged = bytearray(data)
            for position in rng.integers(0, min(64, len(data)), int(rng.integers(1, 4))):
                damaged[position] = int(rng.integers(0, 256))
            (folder / f"malformed-{stem}-{i}.{ext}").write_bytes(bytes(damaged))
            counts["malformed_headers"] += 1
        for i, cut in enumerate(np.linspace(0, len(data), cuts + 2)[1:-1].astype(int)):
            (folder / f"truncated-{stem}-{i}.{ext}").write_bytes(data[:cut])
            counts["truncated_streams"] += 1
    return counts


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode_worker(folder: Path, start: int) -> None:
    """Decodes folder's files from index `start`, one JSON line each ("ok", "refused" or "python_error ..."),
    then one line with the process's peak RSS and its post-import baseline."""
    from edgeclf.runtime.preprocess import ImageError, preprocess

    baseline = _status_mb("VmRSS")
    for path in sorted(folder.iterdir())[start:]:
        try:
            preprocess(path, 224)
            outcome = "ok"
        except ImageError:
            outcome = "refused"
        except Exception as exc:  # noqa: BLE001 - what the benchmark counts
            outcome = f"python_error {type(exc).__name__}: {exc}"
        print(json.dumps({"file": path.name, "outcome": outcome}), flush=True)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": _status_mb("VmHWM")}), flush=True)


def hostile_images(tmp: Path, malformed: int, cuts: int, seed: int = 5) -> dict:
    """Every hostile file decoded in worker processes, then `edgeclf data` on a folder holding all of them."""
    folder = tmp / "hostile"
    counts = hostile_files(folder, malformed, cuts, seed)
    files = sorted(p.name for p in folder.iterdir())
    outcomes = {"ok": 0, "refused": 0, "python_errors": 0, "native_crashes": 0}
    errors, peaks, start = [], [], 0
    while start < len(files):
        proc = subprocess.run([sys.executable, __file__, "--decode-worker", str(folder), str(start)],
                              capture_output=True, text=True, timeout=600)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        done = [line for line in lines if "file" in line]
        for line in done:
            kind = line["outcome"].split(" ")[0]
            outcomes["python_errors" if kind == "python_error" else kind] += 1
            if kind == "python_error":
                errors.append(f"{line['file']}: {line['outcome']}")
        if lines and "peak_mb" in lines[-1]:
            peaks.append(lines[-1]["peak_mb"] - lines[-1]["baseline_mb"])
        start += len(done)
        if proc.returncode != 0:  # died on files[start]: count it and go on past it
            outcomes["native_crashes"] += 1
            errors.append(f"{files[start]}: exit {proc.returncode} {proc.stderr[-300:]}")
            start += 1
    data_folder = tmp / "hostile-data"
    for c in range(2):
        (data_folder / f"c{c}").mkdir(parents=True)
        cv2.imwrite(str(data_folder / f"c{c}" / "good.png"), np.full((20, 20, 3), 60 * c, np.uint8))
    for name in files:
        (data_folder / "c0" / name).write_bytes((folder / name).read_bytes())
    done, measured = run_measured(["data", data_folder, "--json"], tmp)
    survey = json.loads(done.stdout) if measured["code"] == 0 else {"skipped": []}
    data_peak = measured["peak_mb"] - measured["baseline_mb"]
    return {**counts, "files": len(files), **outcomes, "errors": errors[:10],
            "data_exit": measured["code"], "data_listed_skipped": len(survey["skipped"]),
            "decode_peak_rss_mb_max": round(max(peaks), 1), "data_peak_rss_mb": round(data_peak, 1),
            "peak_rss_mb_max": round(max(peaks + [data_peak]), 1)}


def builds(tmp: Path) -> list[dict]:
    """Kills and a full disk against a folder that holds one finished run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "EDGECLF_CACHE": str(tmp / "cache")}
    out = tmp / "runs"
    base = [sys.executable, "-m", "edgeclf", "build", "--model", "tiny", "--size", "16", "--out", str(out)]
    subprocess.run([*base, "--epochs", "1", "-q"], check=True, env=env, capture_output=True)
    run = (out / "latest").resolve()
    before = _hashes(run)
    rows = []
    cases = [("SIGINT", signal.SIGINT, "] train", 1.0), ("SIGKILL", signal.SIGKILL, "] data", 0.05),
             ("SIGKILL", signal.SIGKILL, "] train", 1.0), ("SIGKILL", signal.SIGKILL, "] export", 0.0)]
    for name, sig, stage, delay in cases:
        epochs = "2" if stage == "] export" else "60"
        proc = subprocess.Popen([*base, "--epochs", epochs, "--patience", epochs], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_default_sigint)
        for line in proc.stdout:
            if stage in line:
                break
        time.sleep(delay)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
        rows.append({"fault": f"{name} in {stage[2:]}", "exit": proc.returncode, **_verdict(out, run, before)})

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    proc = subprocess.run([*base, "--epochs", "2"], capture_output=True, text=True, env=env, preexec_fn=limit)
    message = next((line for line in proc.stderr.splitlines() if line.startswith("Error:")), "")
    rows.append({"fault": "files capped at 16 KiB (full disk)", "exit": proc.returncode,
                 "clear_message": "no space left" in message, **_verdict(out, run, before)})
    return rows


def _verdict(out: Path, run: Path, before: dict) -> dict:
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    return {"earlier_run_intact": _hashes(run) == before and (out / "latest").resolve() == run,
            "nothing_looks_finished": visible == {run.name, "latest"}}


def camera(frames: int) -> dict:
    """RSS growth of the camera loop over many frames of a live source failing one read in 50."""
    from edgeclf.runtime.model import Model
    from edgeclf.runtime.sinks import CallbackSink, Sinks
    from edgeclf.runtime.stream import StreamOptions, run_stream

    class Generated:
        name, live = "generated", True

        def __init__(self) -> None:
            self.count = 0
            self.frame = cv2.resize(np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8), (64, 48))

        def read(self):
            self.count += 1
            if self.count % 50 == 0:
                raise OSError("glitch")
            return self.frame

        def close(self) -> None:
            pass

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    model = Model(FIXTURES / "digits_tiny" / "model_int8.tflite", num_threads=1)
    marks: list[float] = []

    def on_result(result) -> None:  # a sink may drop frames when the loop outpaces it: go by frame index
        if not marks and result.record["frame"] >= 10_000:
            marks.append(rss_mb())

    summary = run_stream(model, Generated(), StreamOptions(max_frames=frames), Sinks([CallbackSink(on_result)]))
    start_rss = marks[0]
    return {"frames": summary.classified, "read_errors": summary.read_errors, "ended": summary.ended,
            "rss_mb_at_10k": round(start_rss, 1), "rss_mb_end": round(rss_mb(), 1),
            "rss_growth_pct": round(100 * (rss_mb() - start_rss) / start_rss, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--decode-worker", nargs=2, metavar=("FOLDER", "START"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decode_worker:
        decode_worker(Path(args.decode_worker[0]), int(args.decode_worker[1]))
        return 0
    flips, truncations = (150, 30) if args.quick else (600, 100)
    figures: dict = {}
    backends = [("litert", sys.executable)]
    if (ROOT / ".venv-tflite" / "bin" / "python").exists():
        backends.append(("tflite_runtime", str(ROOT / ".venv-tflite" / "bin" / "python")))
    for backend, python in backends:
        for model in ("model_int8.tflite", "model_float32.tflite"):
            result = fuzz(python, FIXTURES / "digits_tiny" / model, flips, truncations, seed=11)
            key = f"fuzz_{backend}_{model.removeprefix('model_').removesuffix('.tflite')}"
            figures[key] = {k: result[k] for k in ("files", "ok", "refused", "python_errors", "native_crashes")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures["wrong_model_files"] = wrong_models(tmp / "models")
        figures["damaged_images"] = damaged_images(tmp / "images")
        figures["hostile_images"] = hostile_images(tmp, *((20, 8) if args.quick else (100, 32)))
        figures["builds"] = builds(tmp)
    figures["camera"] = camera(20_000 if args.quick else 100_000)
    fuzzed = [v for k, v in figures.items() if k.startswith("fuzz_")]
    # truncation and byte changes; six wrong model files; five damaged images; the build faults; the camera
    # ... and the hostile images' three kinds: huge claimed sizes, malformed headers, truncated streams
    figures["fault_kinds"] = 2 + 6 + figures["damaged_images"]["kinds"] + 3 + len(figures["builds"]) + 1
    hostile = figures["hostile_images"]
    figures["native_crashes"] = sum(v["native_crashes"] for v in fuzzed) + hostile["native_crashes"]
    figures["python_tracebacks"] = sum(v["python_errors"] for v in fuzzed) + hostile["python_errors"]
    figures["peak_rss_mb_max"] = hostile["peak_rss_mb_max"]
    figures["camera_rss_growth_pct"] = figures["camera"]["rss_growth_pct"]
    figures["targets"] = ("native_crashes == 0, python_tracebacks == 0, builds all intact, camera_rss_growth_pct < 5, "
                          f"peak_rss_mb_max < {HOSTILE_RSS_BOUND_MB} (each process, over its post-import baseline)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
