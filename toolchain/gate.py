"""The quantization quality gate: each variant with int8 weights against float32, held to --max-drop."""
from __future__ import annotations

from pathlib import Path

from edgeclf.toolchain.config import BuildConfig


class QualityGateFailed(RuntimeError):
    """The build finished but an int8 variant lost more accuracy than --max-drop allows."""

    def __init__(self, run_dir: Path, message: str) -> None:
        super().__init__(message)
        self.run_dir = run_dir


def quality_gate(config: BuildConfig, artifacts: dict[str, dict]) -> dict:
    """Top-1 drop of each int8-weight variant against float32, and whether --max-drop holds."""
    from edgeclf.toolchain.export import VARIANTS

    reference = artifacts["float32"]["accuracy"]
    drops = {v.name: round(100 * (reference - artifacts[v.name]["accuracy"]), 4)
             for v in VARIANTS if v.int8_weights and v.name in artifacts}
    limit = config.quantize.max_drop
    failed = {name: drop for name, drop in drops.items() if limit is not None and drop > limit}
    return {"max_drop": limit, "drop_points": drops, "passed": not failed,
            "failed": [f"{name} top-1 is {drop:.2f} points below float32 (--max-drop {limit})"
                       for name, drop in failed.items()]}
