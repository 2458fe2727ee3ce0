"""`edgeclf service install/uninstall/status`: the camera as a systemd service that starts at boot and
comes back after a crash or a stuck camera.

The unit is `Type=notify` with a watchdog: the camera loop (runtime/sdnotify.py) says READY=1 after its
first classified frame and WATCHDOG=1 only while frames are classified, so systemd restarts a camera
that stopped delivering, not only one that died. Install records what it wrote (path and SHA-256), and
uninstall removes exactly that, refusing a unit edgeclf did not write or one changed since.

The web view's password reaches the service as a systemd credential (LoadCredential=): the source file
stays root-only, systemd hands the service a private read-only copy under $CREDENTIALS_DIRECTORY (%d)
that no other unit or user sees, and the password is never in the process environment (which children
inherit and /proc/PID/environ shows), as it would be with EnvironmentFile=.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from edgeclf import __version__
from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import write_atomically

UNIT_DIR = Path("/etc/systemd/system")
STATE_DIR = Path("/var/lib/edgeclf/services")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DEFAULT_WATCHDOG_S = 30
CREDENTIAL = "web-password"
MARKER = "# Written by `edgeclf service install"


class ServiceError(UserError, ValueError):
    """A service that cannot be installed or removed; the message says why and what to do."""


def unit_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise ServiceError(f"service name must be 1-40 lowercase letters, digits, - or _, starting with a letter or "
                           f"digit; received {name!r}. Use e.g. `edgeclf service install frontdoor --config FILE`.")
    return f"edgeclf-{name}.service"


def edgeclf_executable() -> Path:
    """The `edgeclf` of the environment running now (the venv's own, not whichever is first on PATH)."""
    beside = Path(sys.executable).parent / "edgeclf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    argv0 = Path(sys.argv[0])
    if argv0.name == "edgeclf" and argv0.exists():
        return argv0.absolute()
    found = shutil.which("edgeclf")
    if found:
        return Path(found).absolute()
    raise ServiceError("cannot find the edgeclf executable of this environment; install edgeclf into the venv "
                       "(`pip install edgeclf`) and run `edgeclf service install` from it.")


@dataclass(frozen=True)
class UnitSpec:
    name: str
    config: Path  # absolute
    executable: Path
    user: str | None = None
    watchdog_s: int = DEFAULT_WATCHDOG_S
    password_file: Path | None = None  # absolute; loaded as a credential

    def text(self) -> str:
        command = f"{self.executable} camera --config {self.config}"
        if self.password_file:
            command += f" --serve-password-file %d/{CREDENTIAL}"
        lines = [
            f"{MARKER} {self.name}` (edgeclf {__version__}); remove it with `edgeclf service uninstall {self.name}`.",
            "[Unit]",
            f"Description=edgeclf camera {self.name}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            "NotifyAccess=main",
            f"ExecStart={command}",
            f"WorkingDirectory={self.config.parent}",
            # READY comes after the model loaded, the camera opened and the first frame was classified.
            "TimeoutStartSec=120",
            f"WatchdogSec={self.watchdog_s}",
            "Restart=on-failure",
            "RestartSec=5",
            "TimeoutStopSec=20",
            "Environment=PYTHONUNBUFFERED=1",
            "StandardOutput=journal",
            "StandardError=journal",
            f"SyslogIdentifier=edgeclf-{self.name}",
        ]
        if self.user:
            lines += [f"User={self.user}", "SupplementaryGroups=video"]
        if self.password_file:
            lines.append(f"LoadCredential={CREDENTIAL}:{self.password_file}")
        lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
        return "\n".join(lines)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def check_config(config: Path, camera: click.Command, password_file: Path | None) -> dict:
    """The camera config's settings, checked as the service will run them (a model, no window, a password for
    a web view on the network). Raises ServiceError naming the problem."""
    from edgeclf.runtime.camera_config import CameraConfigError, config_params, read_config
    from edgeclf.runtime.serve import parse_address
    from edgeclf.runtime.webauth import WebAuth

    context = click.Context(camera)
    try:
        settings = read_config(config, camera, context)
    except CameraConfigError as exc:
        raise ServiceError(str(exc)) from exc
    keys = {p.name: key for key, p in config_params(camera, context).items()}
    values = {keys.get(name, name): value for name, value in settings.items()}
    if not values.get("model"):
        raise ServiceError(f"{config}: no `model:` key; the service runs `edgeclf camera --config {config}` alone, so "
                           "the file must name the model (e.g. model: /home/pi/models/model_int8.tflite).")
    model = Path(values["model"])
    if not (model if model.is_absolute() else config.parent / model).is_file():
        raise ServiceError(f"{config}: model {values['model']} does not exist (relative paths are taken from the "
                           "config's folder). Fix the `model:` key.")
    if values.get("display"):
        raise ServiceError(f"{config}: `display: true` needs a screen, which a service has not. Use serve: instead.")
    if values.get("serve"):
        try:
            host = parse_address(str(values["serve"]))[0]
            WebAuth.for_serving(host, bool(values.get("serve_open")), password_file, environ={})
        except ValueError as exc:
            raise ServiceError(f"{config}: {exc} For a service pass --password-file FILE to `service install`."
                               ) from exc
    return values


def install(name: str, config: str | os.PathLike, camera: click.Command, user: str | None = None,
            unit_dir: Path = UNIT_DIR, state_dir: Path = STATE_DIR, password_file: str | os.PathLike | None = None,
            watchdog_s: int = DEFAULT_WATCHDOG_S, start: bool = True, log: Callable[[str], None] = print) -> Path:
    """Writes edgeclf-NAME.service into `unit_dir` and its record into `state_dir`; with `start` (and the real
    unit folder of a running systemd) reloads systemd and enables and starts the unit. Returns the unit path.

    Raises:
        ServiceError: a bad name, config or password file; a unit of that name edgeclf did not write.
    """
    unit = Path(unit_dir) / unit_name(name)
    config = Path(config).absolute()
    if not config.is_file():
        raise ServiceError(f"--config {config}: no such file. Write one with "
                           "`edgeclf camera MODEL --source 0 --print-config > camera.yaml`.")
    if watchdog_s < 2:
        raise ServiceError(f"--watchdog-sec must be >= 2; received {watchdog_s}. Use e.g. --watchdog-sec 30.")
    secret = Path(password_file).absolute() if password_file else None
    values = check_config(config, camera, secret)
    if not values.get("quiet") and not values.get("events_only"):
        log(f"note: {config} prints a JSON line per frame into the journal; `events_only: true` keeps only the "
            "state changes (or `quiet: true`, only the summary).")
    record_path = _record_path(Path(state_dir), name)
    if unit.exists() and not _written_by_edgeclf(unit, record_path):
        raise ServiceError(f"{unit} exists and edgeclf did not write it; nothing was changed. Choose another name.")
    spec = UnitSpec(name, config, edgeclf_executable(), user, watchdog_s, secret)
    content = spec.text().encode()
    unit.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(unit, content)
    unit.chmod(0o644)  # as units are: write_atomically's temporary file is 0600, which systemd warns about
    record = {"name": name, "unit": str(unit), "sha256": _sha256(content), "config": str(config),
              "edgeclf": __version__}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(record_path, (json.dumps(record, indent=2) + "\n").encode())
    log(f"wrote {unit}")
    if start and _manages(Path(unit_dir)):
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", unit.name)
        log(f"enabled and started {unit.name}: journalctl -u {unit.name} -f")
    elif start:
        log(f"not started ({unit_dir} is not the folder of a running systemd): systemctl daemon-reload && "
            f"systemctl enable --now {unit.name}")
    return unit


def _written_by_edgeclf(unit: Path, record_path: Path) -> bool:
    """True when `record_path` says edgeclf wrote `unit` and the unit is unchanged since."""
    try:
        record = json.loads(record_path.read_text())
        return record.get("unit") == str(unit) and record.get("sha256") == _sha256(unit.read_bytes())
    except (OSError, ValueError):
        return False


def uninstall(name: str, unit_dir: Path = UNIT_DIR, state_dir: Path = STATE_DIR,
              log: Callable[[str], None] = print) -> list[Path]:
    """Stops and disables the unit (when systemd runs it), removes the unit file and its record; returns
    what was removed.

    Raises:
        ServiceError: no record of installing it, or the unit changed since (nothing is removed then).
    """
    unit = Path(unit_dir) / unit_name(name)
    record_path = _record_path(Path(state_dir), name)
    if not record_path.is_file():
        state = "exists" if unit.exists() else "does not exist"
        raise ServiceError(f"edgeclf has no record of installing {unit.name} ({record_path} is missing; {unit} {state}); "
                           "nothing was removed. Only a unit that `edgeclf service install` wrote is removed.")
    if unit.exists() and not _written_by_edgeclf(unit, record_path):
        raise ServiceError(f"{unit} changed since `edgeclf service install` wrote it (or the record does not match); "
                           f"nothing was removed. Remove it yourself: systemctl disable --now {unit.name} && rm {unit}")
    if _manages(Path(unit_dir)):
        _systemctl("disable", "--now", unit.name, check=False)
    removed = []
    for path in (unit, record_path):
        if path.exists():
            path.unlink()
            removed.append(path)
            log(f"removed {path}")
    if _manages(Path(unit_dir)):
        _systemctl("daemon-reload", check=False)
    return removed


def status(name: str, lines: int = 2000) -> dict:
    """What systemd says about the unit, and the last summary line the camera printed into the journal."""
    unit = unit_name(name)
    result: dict = {"unit": unit, "systemctl": None, "summary": None}
    if shutil.which("systemctl"):
        shown = subprocess.run(["systemctl", "status", "--no-pager", "--lines=0", unit], capture_output=True, text=True)
        result["systemctl"] = (shown.stdout + shown.stderr).strip()
    if shutil.which("journalctl"):
        journal = subprocess.run(["journalctl", "-u", unit, "-o", "cat", "--no-pager", "-n", str(lines)],
                                 capture_output=True, text=True)
        result["summary"] = last_summary(journal.stdout)
    return result


def last_summary(text: str) -> dict | None:
    """The last `{"summary": ...}` JSON line in `text` (the camera prints one when it ends)."""
    for line in reversed(text.splitlines()):
        if line.startswith('{"summary"'):
            try:
                return json.loads(line)["summary"]
            except (ValueError, KeyError):
                continue
    return None


def _manages(unit_dir: Path) -> bool:
    """True when `unit_dir` is the system unit folder of a systemd that runs here (not a test folder)."""
    return unit_dir.resolve() == UNIT_DIR and Path("/run/systemd/system").is_dir() and bool(shutil.which("systemctl"))


def _systemctl(*args: str, check: bool = True) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ServiceError(f"systemctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
