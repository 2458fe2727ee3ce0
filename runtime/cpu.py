"""The CPU facts that decide how fast a model runs here, and what a measured int8/float32 ratio means.

int8 is faster than float32 only where the CPU has int8 dot-product instructions: x86 VNNI
(AVX512-VNNI, AVX-VNNI) or ARM's dot product (asimddp, e.g. the Pi 5's Cortex-A76). Without them
XNNPACK's int8 kernels widen to 16 bits and do no less work per multiply-add than float32, so on such
a CPU int8 buys a smaller file, not speed. Every latency figure we print says which case it is.
"""
from __future__ import annotations

import os
import platform
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

# The features that decide int8 speed, per instruction set, and what each one means.
FEATURE_MEANINGS = {
    "avx2": "256-bit SIMD; int8 kernels run, but without VNNI they do as much work per multiply-add as float32",
    "avx512_vnni": "AVX512-VNNI int8 dot product: 4 int8 multiply-adds per lane per instruction",
    "avx_vnni": "AVX-VNNI int8 dot product (256-bit): 4 int8 multiply-adds per lane per instruction",
    "asimd": "NEON SIMD (every 64-bit ARM core); int8 kernels run, without dot product at about float32's cost",
    "neon": "NEON SIMD (32-bit ARM); int8 kernels run, without dot product at about float32's cost",
    "asimddp": "ARM int8 dot product (SDOT/UDOT; Cortex-A55/A76 and later, e.g. the Pi 5)",
    "i8mm": "ARM int8 matrix multiply (SMMLA; Armv8.6), faster int8 GEMMs still",
}
DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "asimddp")
X86 = ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class CpuInfo:
    machine: str  # platform.machine(): x86_64, aarch64, armv7l, ...
    bits: int  # of this Python process (a 32-bit OS on a 64-bit Pi says 32)
    name: str
    cores: int
    features: tuple[str, ...]  # the FEATURE_MEANINGS keys this CPU has

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in X86

    @property
    def int8_dot_product(self) -> bool:
        return any(feature in self.features for feature in DOT_PRODUCT)

    def feature_list(self) -> str:
        """'avx2; no avx512_vnni, avx_vnni': what it has and the dot-product features it lacks."""
        relevant = ("avx2", "avx512_vnni", "avx_vnni") if self.is_x86 else ("asimd", "neon", "asimddp", "i8mm")
        have = [f for f in relevant if f in self.features]
        missing = [f for f in relevant if f not in self.features and f not in ("neon", "asimd", "i8mm")]
        return " ".join(have or ["none of " + ", ".join(relevant)]) + (f"; no {', '.join(missing)}" if missing else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "int8_dot_product": self.int8_dot_product, "feature_list": self.feature_list()}


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first value of each key in /proc/cpuinfo (the cores of a Pi or a server are alike)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def cpu_info(cpuinfo: str | None = None, machine: str | None = None) -> CpuInfo:
    """This machine's CPU (or the one a /proc/cpuinfo text and machine name describe, for tests)."""
    machine = machine or platform.machine()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    fields = _cpuinfo_fields(cpuinfo)
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    name = fields.get("model name") or fields.get("model") or platform.processor() or machine
    if machine.lower() not in X86 and "model" in fields:  # a Pi's board name says more than "ARMv7 Processor"
        name = fields["model"]
    return CpuInfo(machine, struct.calcsize("P") * 8, name, os.cpu_count() or 1,
                   tuple(f for f in FEATURE_MEANINGS if f in flags))


def int8_note(cpu: CpuInfo, int8_ms: float, float_ms: float) -> str:
    """One sentence on a measured int8 vs float32 median, from the figures and the CPU's features only."""
    ratio = int8_ms / float_ms
    figures = f"int8 takes {ratio:.2f}x float32's median here ({int8_ms:.3f} vs {float_ms:.3f} ms)"
    if cpu.int8_dot_product:
        dot = ", ".join(f for f in DOT_PRODUCT if f in cpu.features)
        return f"{figures}; this CPU has int8 dot-product instructions ({dot})."
    where = "AVX512-VNNI or AVX-VNNI" if cpu.is_x86 else "the dot-product extension (asimddp, e.g. Pi 5)"
    if ratio >= 1.0:
        return (f"{figures}. This CPU has no int8 dot-product instructions ({cpu.feature_list()}): XNNPACK's int8 "
                f"kernels then do about as much work as float32's, plus quantizing input and output, so int8 is a "
                f"smaller file here, not a faster one. int8 speed depends on {where}; measure on the device "
                f"(edgeclf bench).")
    return (f"{figures}, without int8 dot-product instructions ({cpu.feature_list()}): the gain comes from moving "
            f"fewer bytes. int8 speed depends on {where}; measure on the device (edgeclf bench).")


def int8_notes(cpu: CpuInfo, timings: list[dict]) -> list[str]:
    """int8_note for each full-integer model timed beside a float one at the same thread count.

    Args:
        timings: dicts with model, int8 (full integer), threads and median_ms, in the order measured.
    """
    notes = []
    for row in timings:
        reference = next((r for r in timings if not r["int8"] and r["threads"] == row["threads"]), None)
        if row["int8"] and reference is not None:
            threads = "" if row["threads"] is None else f" ({row['threads']} thread{'s' * (row['threads'] != 1)})"
            notes.append(f"{Path(row['model']).name} vs {Path(reference['model']).name}{threads}: "
                         + int8_note(cpu, row["median_ms"], reference["median_ms"]))
    return notes
