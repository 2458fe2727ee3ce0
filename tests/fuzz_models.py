"""Fuzzes edgeclf's model loader with damaged .tflite files, in worker processes that may crash.

    python tests/fuzz_models.py MODEL.tflite --flips 300 --truncations 60 --seed 0

Writes truncated copies (at evenly spread offsets) and copies with 1-3 random bytes changed, then
loads each with `edgeclf.runtime.model.Model` and runs one prediction in a worker process. A worker
killed by a signal (a native crash) is recorded against the file it was loading and restarted on the
next one. Prints one JSON object: counts of clean loads, ModelError refusals, other Python
exceptions (bugs) and native crashes, with the files that crashed or raised.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = r'''
import sys, traceback
import numpy as np
from edgeclf.runtime.model import Model, ModelError
for line in sys.stdin:
    path = line.strip()
    print("start", path, flush=True)
    try:
        model = Model(path, num_threads=1)
        model.predict(np.zeros((*model.input_size, 3), np.uint8))
        print("ok", path, flush=True)
    except ModelError as exc:
        print("refused", path, str(exc).replace("\n", " ")[:200], flush=True)
    except Exception as exc:
        print("bug", path, type(exc).__name__, str(exc).replace("\n", " ")[:200], flush=True)
'''


def mutants(content: bytes, folder: Path, flips: int, truncations: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, end in enumerate(np.linspace(0, len(content) - 1, truncations, dtype=int)):
        path = folder / f"cut{i:04d}_{end}.tflite"
        path.write_bytes(content[:end])
        paths.append(path)
    for i in range(flips):
        data = bytearray(content)
        for position in rng.integers(0, len(data), int(rng.integers(1, 4))):
            data[position] = int(rng.integers(0, 256))
        path = folder / f"flip{i:04d}.tflite"
        path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def run(paths: list[Path]) -> dict:
    outcome = {"ok": 0, "refused": 0, "bug": [], "crash": []}
    remaining = [str(p) for p in paths]
    while remaining:
        proc = subprocess.run([sys.executable, "-c", WORKER], input="\n".join(remaining) + "\n", capture_output=True,
                              text=True)
        done, current = set(), None
        for line in proc.stdout.splitlines():
            kind, path, *rest = line.split(" ", 2)
            if kind == "start":
                current = path
                continue
            done.add(path)
            if kind in ("ok", "refused"):
                outcome[kind] += 1
            else:
                outcome["bug"].append({"path": Path(path).name, "error": " ".join(rest)})
        if proc.returncode == 0:
            break
        crashed = current if current not in done else None
        if crashed is None:
            raise RuntimeError(f"worker failed outside a load (exit {proc.returncode}): {proc.stderr[-1000:]}")
        outcome["crash"].append({"path": Path(crashed).name, "signal": -proc.returncode})
        remaining = remaining[remaining.index(crashed) + 1:]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--flips", type=int, default=300)
    parser.add_argument("--truncations", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = mutants(Path(args.model).read_bytes(), Path(tmp), args.flips, args.truncations, args.seed)
        outcome = run(paths)
    print(json.dumps({"files": len(paths), "ok": outcome["ok"], "refused": outcome["refused"],
                      "python_errors": len(outcome["bug"]), "native_crashes": len(outcome["crash"]),
                      "bugs": outcome["bug"][:20], "crashes": outcome["crash"][:20]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
