"""Latency of a .tflite model on this CPU: load time, first inference, then steady-state statistics."""
from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.runtime.cpu import cpu_info
from edgeclf.runtime.model import Model


@dataclass(frozen=True)
class LatencyStats:
    """Statistics of a series of per-inference times in milliseconds."""

    runs: int
    median_ms: float
    mean_ms: float
    std_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    throughput: float  # inferences per second at the median

    @classmethod
    def of(cls, times_ms: Sequence[float] | np.ndarray) -> "LatencyStats":
        times = np.asarray(times_ms, dtype=np.float64)
        if times.size == 0:
            raise ValueError("no timings to summarize")
        median = float(np.median(times))
        return cls(int(times.size), median, float(times.mean()), float(times.std()),
                   float(np.percentile(times, 90)), float(np.percentile(times, 99)),
                   float(times.min()), float(times.max()), 1000.0 / median if median > 0 else float("inf"))


@dataclass(frozen=True)
class BenchResult:
    model: str
    name: str | None  # the model's name in its TFLite metadata (an edgeclf candidate says which one it is)
    bytes: int
    int8: bool  # full integer: no float op (what decides whether int8 kernels run)
    threads: int | None
    backend: str
    cpu: str
    input: str  # "random" or the data folder the images came from
    load_ms: float
    first_ms: float
    stats: LatencyStats
    peak_rss_mb: float  # of the whole process so far (ru_maxrss)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(data.pop("stats"))
        return data


def cpu_name() -> str:
    return cpu_info().name


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def random_input(model: Model, seed: int = 0) -> np.ndarray:
    height, width = model.input_size
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def time_invokes(model: Model, tensors: np.ndarray | Sequence[np.ndarray], runs: int, min_time: float,
                 warmup: int) -> np.ndarray:
    """Milliseconds per invoke after `warmup` discarded runs, until both `runs` and `min_time` are met.

    Args:
        tensors: one prepared input tensor, or several to cycle through (real images).
    """
    inputs = [tensors] if isinstance(tensors, np.ndarray) else list(tensors)
    for i in range(warmup):
        model.invoke(inputs[i % len(inputs)])
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_time:
        tensor = inputs[len(times) % len(inputs)]
        t0 = time.perf_counter()
        model.invoke(tensor)
        times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1000.0


def steady_latency(model: Model, image: np.ndarray | None = None, runs: int = 100, min_time: float = 0.5,
                   warmup: int = 10) -> LatencyStats:
    """Steady-state latency of one inference on `image` (RGB uint8; default a black frame), as the build
    report, `compare` and the int8 notes quote it."""
    image = np.zeros((*model.input_size, 3), np.uint8) if image is None else image
    return LatencyStats.of(time_invokes(model, model.prepare(image), runs=runs, min_time=min_time, warmup=warmup))


def bench(path: str | os.PathLike, threads: int | None = None, runs: int = 50, min_time: float = 1.0,
          warmup: int = 5, images: np.ndarray | None = None, source: str = "random") -> BenchResult:
    """Loads the model fresh, times the first inference, then the steady state.

    Args:
        images: RGB uint8 images to cycle through (N, H, W, 3); random pixels when None.
        source: where the images came from, for the report.
    """
    t0 = time.perf_counter()
    model = Model(path, num_threads=threads)
    load_ms = (time.perf_counter() - t0) * 1000.0
    pool = images if images is not None and len(images) else random_input(model)[None]
    tensors = [model.prepare(image) for image in pool]
    t0 = time.perf_counter()
    model.invoke(tensors[0])
    first_ms = (time.perf_counter() - t0) * 1000.0
    stats = LatencyStats.of(time_invokes(model, tensors, runs, min_time, warmup))
    name = model.metadata.name if model.metadata else None
    return BenchResult(str(path), name, len(model.content), model.full_integer, threads, f"{model.backend.name} {model.backend.version}",
                       cpu_name(), source if images is not None else "random", load_ms, first_ms, stats,
                       peak_rss_mb())


def regressions(results: Sequence[dict], baseline: Sequence[dict], threshold: float) -> list[str]:
    """Results whose median is more than `threshold` (a fraction) above the baseline's.

    Results and baseline entries are matched by model file name and thread count.
    """
    reference = {(Path(b["model"]).name, b.get("threads")): b for b in baseline}
    found = []
    for result in results:
        base = reference.get((Path(result["model"]).name, result.get("threads")))
        if base is None:
            continue
        ratio = result["median_ms"] / base["median_ms"]
        if ratio > 1.0 + threshold:
            found.append(f"{Path(result['model']).name} @ {result['threads']} threads: median "
                         f"{result['median_ms']:.3f} ms vs baseline {base['median_ms']:.3f} ms "
                         f"({100 * (ratio - 1):+.1f}%, threshold {100 * threshold:.0f}%)")
    return found
