"""Model choice under a latency budget: a grid of candidates, their latency on the device, short trials, one winner.

`edgeclf candidates --out DIR` writes each candidate (family x width x input size) with random weights as a
float32 and a full-int8 .tflite. Latency does not depend on the weights' values, so these files time on the
device exactly like trained ones: `edgeclf bench DIR/*.tflite --threads N --json > device.json` measures them
with the runtime alone. Each file's TFLite metadata names it (`edgeclf candidate <grid> <id> <variant>`), so
device.json says which candidate each figure belongs to, whatever the files were renamed to.

`edgeclf build --latency-budget MS [--device device.json]` keeps the candidates whose median fits the budget,
trains the most promising few briefly (one per family: its widest at the smallest fitting size that covers the
images, see `finalists`) on the user's data with the same seed and split, then trains the best of them fully (the
runner-up too when the brief runs cannot tell them apart) and keeps the one most accurate as it is deployed: for an
int8 budget each full run is converted to full int8 as the build converts it and judged by its int8 top-1 with the
runtime, and a finalist whose brief run beat every full run's int8 top-1 is trained fully too (`next_contender`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import cache_root, write_atomically

GRID_FORMAT = "c2"  # bump when a candidate's files would time differently (ops, metadata layout)
DEFAULT_MODELS = ("cnn", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")
DEFAULT_ALPHAS = (0.5, 1.0)
DEFAULT_SIZES = (96, 128)
CANDIDATE_CLASSES = 10  # classifier width of the timing files; the last layer's share of the time is negligible
VARIANTS = ("int8", "float32")
NAME_PREFIX = "edgeclf candidate"
# Brief runs closer than this (accuracy, 0-1) do not tell candidates apart: on digits (10 epochs) cnn_32 ran 2 brief
# epochs to 93.3% and mobilenet_v3_small 1.0@48 to 94.4%, and trained fully they ended at 98.3% and 96.9%.
BRIEF_RUN_MARGIN = 0.02


class ChoiceError(UserError, ValueError):
    """A latency budget, device file or candidate grid that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class Candidate:
    model: str
    alpha: float | None  # None: the family has one width
    size: int

    @property
    def id(self) -> str:
        width = "" if self.alpha is None else f"_{self.alpha:g}"
        return f"{self.model}{width}_{self.size}"

    def overrides(self) -> dict[str, Any]:
        """The build settings that make this candidate."""
        return {"model.name": self.model, "model.size": self.size, "model.alpha": self.alpha or 1.0,
                "model.minimalistic": False}

    def as_dict(self) -> dict:
        return {"id": self.id, "model": self.model, "alpha": self.alpha, "size": self.size}


def grid(models: Sequence[str] = DEFAULT_MODELS, alphas: Sequence[float] = DEFAULT_ALPHAS,
         sizes: Sequence[int] = DEFAULT_SIZES) -> list[Candidate]:
    """Every family x width x size; a family without widths contributes one candidate per size. Widths a family
    is not built at and sizes outside its range are left out (an --alphas value no family takes is an error)."""
    from edgeclf.toolchain.models import get_spec, model_names

    unknown = [m for m in models if m not in model_names()]
    if unknown:
        raise ChoiceError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(model_names())}.")
    candidates = []
    for name in models:
        spec = get_spec(name)
        widths = [a for a in alphas if a in spec.alphas] if spec.alphas else [None]
        candidates += [Candidate(name, a, s) for a in widths for s in sizes if spec.min_size <= s <= spec.max_size]
    if not candidates:
        raise ChoiceError(f"no candidate in --models {','.join(models)} --alphas {','.join(map(str, alphas))} "
                          f"--sizes {','.join(map(str, sizes))}: each family has its widths and size range. "
                          "Use e.g. the defaults (edgeclf candidates --out DIR).")
    return candidates


def grid_id(candidates: Sequence[Candidate]) -> str:
    key = json.dumps([GRID_FORMAT, CANDIDATE_CLASSES, sorted(c.id for c in candidates)])
    return f"{GRID_FORMAT}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def write_candidates(out: Path, candidates: Sequence[Candidate], log: Callable[[str], None]) -> dict:
    """Writes <id>_<variant>.tflite for every candidate and variant into `out`, then manifest.json (last:
    its presence means the folder is complete). Files already there with the same grid are kept."""
    from edgeclf.runtime import metadata as tflite_metadata
    from edgeclf.toolchain.config import ModelConfig
    from edgeclf.toolchain.export import convert_float32, convert_int8
    from edgeclf.toolchain.models import create_model, settle_batchnorm

    out.mkdir(parents=True, exist_ok=True)
    gid = grid_id(candidates)
    calibration = np.random.default_rng(0)
    entries = []
    for index, candidate in enumerate(candidates, 1):
        files = {variant: out / f"{candidate.id}_{variant}.tflite" for variant in VARIANTS}
        if not all(path.is_file() and _grid_of(path) == gid for path in files.values()):
            log(f"  [{index}/{len(candidates)}] {candidate.id}")
            model = create_model(ModelConfig(name=candidate.model, size=candidate.size, weights="none",
                                             alpha=candidate.alpha or 1.0), CANDIDATE_CLASSES, candidate.size)
            images = calibration.integers(0, 256, (16, candidate.size, candidate.size, 3), dtype=np.uint8)
            settle_batchnorm(model, images.astype(np.float32))  # int8 scales as trained: XNNPACK takes the same ops
            contents = {"float32": convert_float32(model), "int8": convert_int8(model, images)}
            for variant, content in contents.items():
                info = tflite_metadata.ModelMetadata(
                    name=f"{NAME_PREFIX} {gid} {candidate.id} {variant}",
                    labels=tuple(str(i) for i in range(CANDIDATE_CLASSES)),
                    description=f"Random weights, for timing only: {candidate.id} {variant} of edgeclf candidate grid "
                                f"{gid}. Input: RGB pixels 0-255.")
                write_atomically(files[variant], tflite_metadata.write(content, info))
        entries.append({**candidate.as_dict(), "files": {v: p.name for v, p in files.items()},
                        "bytes": {v: p.stat().st_size for v, p in files.items()}})
    manifest = {"grid": gid, "classes": CANDIDATE_CLASSES, "candidates": entries}
    write_atomically(out / "manifest.json", json.dumps(manifest, indent=2).encode("utf-8"))
    return manifest


def _grid_of(path: Path) -> str | None:
    parsed = _parse_name(_metadata_name(path))
    return parsed[0] if parsed else None


def _metadata_name(path: Path) -> str | None:
    from edgeclf.runtime import metadata as tflite_metadata

    try:
        info = tflite_metadata.read(path.read_bytes())
    except Exception:  # noqa: BLE001 - not a model, or no metadata: not a candidate
        return None
    return info.name if info else None


def _parse_name(name: str | None) -> tuple[str, str, str] | None:
    """(grid, candidate id, variant) from a candidate's metadata name, else None."""
    if not name or not name.startswith(NAME_PREFIX + " "):
        return None
    parts = name[len(NAME_PREFIX) + 1:].split(" ")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


@dataclass(frozen=True)
class Timing:
    """One candidate's measured median latency and file size for the variant being judged."""

    candidate: Candidate
    median_ms: float
    bytes: int


def read_device(path: Path, candidates: Sequence[Candidate] | None, variant: str, threads: int) -> tuple[str, list[Timing]]:
    """The grid and the timings of `variant` at `threads` in a `bench --json` file measured on the device.

    Args:
        candidates: the grid the build expects, or None to take the grid the file was measured on.

    Raises:
        ChoiceError: unreadable file, no candidate in it, several grids, another grid than `candidates`,
            no figure at these threads, or a candidate without `variant`.
    """
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))["results"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ChoiceError(f"--device {path}: not readable as `edgeclf bench --json` output ({exc}). Make it on the "
                          "device with: edgeclf bench DIR/*.tflite --threads N --json > device.json") from exc
    named = [(r, _parse_name(r.get("name"))) for r in results if isinstance(r, dict)]
    named = [(r, p) for r, p in named if p]
    if not named:
        raise ChoiceError(f"--device {path}: none of its {len(results)} results is an edgeclf candidate (their TFLite "
                          "metadata does not say so). Bench the files of `edgeclf candidates --out DIR` on the device.")
    grids = sorted({p[0] for _, p in named})
    if len(grids) > 1:
        raise ChoiceError(f"--device {path}: it mixes candidate grids {', '.join(grids)}; bench one folder of "
                          "`edgeclf candidates` per device.json.")
    expected = grid_id(candidates) if candidates is not None else None
    if expected is not None and grids[0] != expected:
        raise ChoiceError(f"--device {path}: measured on candidate grid {grids[0]}, but this build chooses among grid "
                          f"{expected} ({len(candidates)} candidates). Run `edgeclf candidates --out DIR` with the same "
                          "edgeclf and bench that folder again.")
    at_threads = [(r, p) for r, p in named if r.get("threads") == threads]
    if not at_threads:
        measured = sorted({str(r.get("threads")) for r, _ in named})
        raise ChoiceError(f"--device {path}: no figure at --threads {threads}; it has {', '.join(measured)}. Pass "
                          f"--threads {measured[0]}, or bench again with --threads {threads}.")
    by_id = {p[1]: r for r, p in at_threads if p[2] == variant}
    ids = sorted({p[1] for _, p in at_threads})
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ChoiceError(f"--device {path}: no {variant} figure for {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''}. Bench the *_{variant}.tflite files too, or judge "
                          f"another variant with --budget-variant.")
    timings = [Timing(_candidate_of(i), float(r["median_ms"]), int(r["bytes"])) for i, r in sorted(by_id.items())]
    return grids[0], timings


def _candidate_of(candidate_id: str) -> Candidate:
    """Candidate from its id (<model>[_<alpha>]_<size>)."""
    from edgeclf.toolchain.models import get_spec, model_names

    head, size = candidate_id.rsplit("_", 1)
    if head in model_names():
        return Candidate(head, None, int(size))
    model, alpha = head.rsplit("_", 1)
    if model not in model_names() or not get_spec(model).alphas:
        raise ChoiceError(f"candidate {candidate_id!r} names no model this edgeclf has; update edgeclf or run "
                          "`edgeclf candidates` with this one.")
    return Candidate(model, float(alpha), int(size))


def measure_here(candidates: Sequence[Candidate], variant: str, threads: int,
                 log: Callable[[str], None]) -> list[Timing]:
    """Timings on this machine (no --device): the grid's files are written once under the cache and benched."""
    from edgeclf.runtime.bench import bench

    folder = cache_root() / "candidates" / grid_id(candidates)
    manifest = write_candidates(folder, candidates, log)
    timings = []
    for entry, candidate in zip(manifest["candidates"], candidates):
        result = bench(folder / entry["files"][variant], threads=threads, runs=30, min_time=0.5, warmup=3)
        timings.append(Timing(candidate, result.stats.median_ms, result.bytes))
    return timings


def fitting(timings: Sequence[Timing], budget_ms: float, variant: str, threads: int, where: str) -> list[Timing]:
    """The timings within the budget; none is an error naming the fastest candidate."""
    fit = [t for t in timings if t.median_ms <= budget_ms]
    if not fit:
        fastest = min(timings, key=lambda t: t.median_ms)
        raise ChoiceError(f"--latency-budget {budget_ms:g} ms: no candidate's {variant} runs that fast at {threads} "
                          f"thread(s) on {where}; the fastest is {fastest.candidate.id} at {fastest.median_ms:.2f} ms. "
                          f"Raise the budget to at least {math.ceil(fastest.median_ms * 100) / 100:g} ms, or add "
                          "smaller candidates (edgeclf candidates --sizes 64,96 --alphas 0.35,0.5).")
    return fit


def finalists(fit: Sequence[Timing], count: int, image_side: int | None = None) -> list[Timing]:
    """The most promising `count`: one per family first, each family's widest candidate at its preferred input
    size; further ones in the same order when families run out. The preferred size is the smallest fitting one that
    covers the images' shorter side (a larger one only interpolates and spends budget that width could use), or
    the largest fitting one when none covers it (or the side is unknown)."""
    ranked = sorted(fit, key=lambda t: (_size_rank(t.candidate.size, image_side), -t.median_ms, t.candidate.id))
    chosen, families = [], set()
    for timing in ranked:
        if timing.candidate.model not in families:
            chosen.append(timing)
            families.add(timing.candidate.model)
    chosen += [t for t in ranked if t not in chosen]
    return chosen[:count]


def _size_rank(size: int, image_side: int | None) -> tuple[int, int]:
    """Sizes that cover the images first, smallest first; then the others, largest first."""
    return (0, size) if image_side is not None and size >= image_side else (1, -size)


def contenders(tried: Sequence[Timing], trials: dict[str, float], count: int) -> list[Timing]:
    """The ones to train fully: the best brief run, and up to count - 1 more within BRIEF_RUN_MARGIN of it
    (a tie goes to the faster)."""
    ranked = sorted(tried, key=lambda t: (-trials[t.candidate.id], t.median_ms))
    best = trials[ranked[0].candidate.id]
    return [t for t in ranked if trials[t.candidate.id] >= best - BRIEF_RUN_MARGIN][:count]


def next_contender(tried: Sequence[Timing], trials: dict[str, float], deployed: dict[str, float]) -> Timing | None:
    """A finalist not yet trained fully whose brief run beat every full run's deployed accuracy (`deployed`: the
    int8 top-1 for an int8 budget), the best brief run first; None when there is none.

    A full run ends above its brief one, so such a finalist would have won had the full runs kept their accuracy
    when deployed: on the photos EfficientNetB0 lost 53 points at int8 where MobileNetV3 and the CNN lost at most
    two. The rule costs nothing while the deployed accuracy holds up."""
    best = max(deployed.values())
    waiting = [t for t in tried if t.candidate.id not in deployed and trials[t.candidate.id] > best]
    return min(waiting, key=lambda t: (-trials[t.candidate.id], t.median_ms)) if waiting else None


def choice_table(timings: Sequence[Timing], budget_ms: float, trials: dict[str, float], full: dict[str, float],
                 int8: dict[str, float], chosen: str) -> list[dict]:
    """Every candidate: latency, size, whether it fits, its short-run and full-run accuracy (float32 and, for an
    int8 budget, int8; when trained) and the choice."""
    return [{"candidate": t.candidate.id, "latency_ms": round(t.median_ms, 3), "bytes": t.bytes,
             "fits": t.median_ms <= budget_ms, "short_run_accuracy": trials.get(t.candidate.id),
             "full_run_accuracy": full.get(t.candidate.id), "full_run_int8_accuracy": int8.get(t.candidate.id),
             "chosen": t.candidate.id == chosen}
            for t in sorted(timings, key=lambda t: t.median_ms)]
