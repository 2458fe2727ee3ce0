"""`edgeclf doctor`: what decides whether and how fast a model runs on this machine, each problem with its fix.

Runtime only (no TensorFlow), so it answers on a Raspberry Pi before anything is installed beyond
`pip install edgeclf`. A problem that stops a model from running makes it *blocking* (exit 1).
"""
from __future__ import annotations

import glob
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata as dist_metadata
from importlib import util
from pathlib import Path

import numpy as np

from edgeclf.runtime.cpu import FEATURE_MEANINGS, CpuInfo, cpu_info

PROBE_MODEL = Path(__file__).with_name("probe_int8.tflite")  # a 7 KB int8 digits classifier shipped for this check
# Run in a child: a broken interpreter crashes the child, not doctor, and its native stderr is ours to
# read (the interpreter announces XNNPACK there once per process, on the first allocation).
PROBE = """
import sys
from pathlib import Path
from edgeclf.runtime._backend import get_backend
from edgeclf.runtime.model import run_once
run_once(get_backend(), Path(sys.argv[1]).read_bytes())
"""
SYSTEM_SITE = ("/usr/lib/python3/dist-packages",)  # where Debian's python3-picamera2 installs


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    problem: str = ""  # empty when fine
    fix: str = ""
    blocking: bool = False  # the problem stops a model from running here

    def as_dict(self) -> dict:
        return asdict(self)


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def platform_check(cpu: CpuInfo) -> Check:
    value = f"{cpu.machine}, {cpu.bits}-bit, {_os_name()}"
    if cpu.bits == 32 and cpu.machine in ("aarch64", "armv8l", "arm64", "x86_64"):  # armv8l: a 64-bit ARM kernel
        value += f" (32-bit userland on a 64-bit {cpu.machine} kernel)"
    return Check("platform", value)


def backend_check() -> list[Check]:
    """The interpreter backend, its numpy needs, and one real run of a shipped model (XNNPACK with it)."""
    from edgeclf.runtime._backend import BackendError, get_backend

    checks = [Check("python", platform.python_version()), Check("numpy", np.__version__)]
    try:
        backend = get_backend()
    except BackendError as exc:
        return checks + [Check("interpreter", "none", str(exc), "pip install ai-edge-litert", blocking=True)]
    value = f"{backend.name} {backend.version}"
    if backend.name == "tflite_runtime" and int(np.__version__.split(".")[0]) >= 2:
        return checks + [Check("interpreter", value, "tflite-runtime 2.14 is built against numpy 1 and fails "
                               f"with numpy {np.__version__}", 'pip install "numpy<2"', blocking=True)]
    if backend.name == "tensorflow.lite":
        checks.append(Check("interpreter", value, "only TensorFlow's interpreter imports: seconds to start, "
                            "hundreds of MB", "pip install ai-edge-litert (or tflite-runtime with numpy<2)"))
    else:
        checks.append(Check("interpreter", value))
    # -I: the installed edgeclf, not a checkout's edgeclf/ folder in the current directory
    done = subprocess.run([sys.executable, "-I", "-c", PROBE, str(PROBE_MODEL)], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return checks + [Check("model run", "failed", f"the interpreter cannot run a small int8 model: {last[:300]}",
                               f"reinstall it: pip install --force-reinstall {backend.name.replace('_', '-')}",
                               blocking=True)]
    checks.append(Check("model run", f"ok (int8 probe model, {backend.name})"))
    xnnpack = "XNNPACK" in done.stderr
    checks.append(Check("xnnpack", "on (the interpreter created its XNNPACK delegate)" if xnnpack else
                        "not reported (the interpreter did not announce an XNNPACK delegate; tflite-runtime 2.14 never "
                        "does, and its int8 kernels round differently from XNNPACK's)"))
    return checks


def cpu_checks(cpu: CpuInfo) -> list[Check]:
    meanings = "; ".join(f"{f}: {FEATURE_MEANINGS[f]}" for f in cpu.features) or "no SIMD features found"
    int8 = ("yes: int8 can run faster than float32 here" if cpu.int8_dot_product else
            "no: expect int8 at about float32's speed here (a smaller file, not a faster one)")
    threads = min(cpu.cores, 4)
    return [Check("cpu", f"{cpu.name}, {cpu.cores} cores"),
            Check("int8 features", f"{cpu.feature_list()} ({meanings})"),
            Check("int8 dot product", int8),
            Check("threads", f"--threads {threads} (one per core, at most 4); `edgeclf bench MODEL --threads "
                  f"1,{threads}` tells which is fastest for your model")]


def picamera_check() -> Check:
    if util.find_spec("picamera2") is not None:
        return Check("picamera2", f"importable ({_version('picamera2')})")
    system = [p for p in SYSTEM_SITE if Path(p, "picamera2").is_dir()]
    if system:
        return Check("picamera2", f"installed in {system[0]} but not visible to {sys.executable}",
                     "this venv cannot see the system packages",
                     f"recreate it with: python3 -m venv --system-site-packages {sys.prefix} && "
                     f"{sys.prefix}/bin/pip install edgeclf")
    if platform.machine().startswith(("aarch64", "arm")):
        return Check("picamera2", "not installed", "--source picamera needs it (webcams and files do not)",
                     "sudo apt install python3-picamera2, in a venv made with --system-site-packages")
    return Check("picamera2", "not installed (only needed for the Raspberry Pi camera)")


def camera_check() -> Check:
    devices = sorted(glob.glob("/dev/video*"))
    if devices:
        return Check("cameras", ", ".join(devices) + " (--source 0 is the first)")
    return Check("cameras", "no /dev/video* devices", "no webcam or V4L2 camera is visible",
                 "plug one in, or use --source picamera, a video file, a URL or an image folder")


def display_problem() -> str:
    """Why `camera --display` cannot open a window here, or "" when it can.

    The window is probed in a child process: OpenCV built with GTK aborts the whole process (no
    exception) when there is no display, as Debian's python3-opencv does over SSH on a Pi.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display: $DISPLAY and $WAYLAND_DISPLAY are unset (over SSH, or a headless machine)"
    probe = "import cv2; cv2.namedWindow('edgeclf'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "opening a window did not finish within 20 s"
    if done.returncode == 0:
        return ""
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"OpenCV cannot open a window here ({last[:200]})"


def display_check() -> Check:
    problem = display_problem()
    if not problem:
        return Check("display", "a window can be opened (camera --display)")
    return Check("display", "none", problem, "use --serve 0.0.0.0:8080 and watch in a browser, or --record out.mp4")


def _version(name: str) -> str:
    try:
        return dist_metadata.version(name)
    except dist_metadata.PackageNotFoundError:
        return "unknown version"


def run_checks() -> list[Check]:
    """Every check, in the order doctor prints them."""
    import cv2

    cpu = cpu_info()
    return [platform_check(cpu), *backend_check(), Check("opencv", cv2.__version__), *cpu_checks(cpu),
            picamera_check(), camera_check(), display_check()]
