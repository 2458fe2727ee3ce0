"""Latency of a .tflite model on this CPU: load time, first inference, then steady-state statistics."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgeclf.runtime.model import Model


@dataclass(frozen=True)
class BenchResult:
    model: str
    bytes: int
    threads: int | None
    backend: str
    load_ms: float
    first_ms: float
    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    throughput: float  # inferences per second at the median

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def random_input(model: Model, seed: int = 0) -> np.ndarray:
    height, width = model.input_size
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def time_invokes(model: Model, tensor: np.ndarray, runs: int, min_time: float, warmup: int) -> np.ndarray:
    """Milliseconds per invoke after `warmup` discarded runs, until both `runs` and `min_time` are met."""
    for _ in range(warmup):
        model.invoke(tensor)
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        model.invoke(tensor)
        times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1000.0


def bench(path: str | os.PathLike, threads: int | None = None, runs: int = 50, min_time: float = 1.0,
          warmup: int = 5, image: np.ndarray | None = None) -> BenchResult:
    """Loads the model fresh, times the first inference, then the steady state.

    Args:
        image: an RGB uint8 image to feed; random pixels when None.
    """
    t0 = time.perf_counter()
    model = Model(path, num_threads=threads)
    load_ms = (time.perf_counter() - t0) * 1000.0
    tensor = model.prepare(image if image is not None else random_input(model))
    t0 = time.perf_counter()
    model.invoke(tensor)
    first_ms = (time.perf_counter() - t0) * 1000.0
    times = time_invokes(model, tensor, runs, min_time, warmup)
    median = float(np.median(times))
    return BenchResult(str(path), len(model.content), threads, f"{model.backend.name} {model.backend.version}",
                       load_ms, first_ms, len(times), median, float(np.percentile(times, 90)),
                       float(times.mean()), float(times.std()), float(times.min()), 1000.0 / median)
