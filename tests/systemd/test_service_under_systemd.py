"""`edgeclf service install`'s unit under a real systemd (issue 30): the camera is restarted after `kill -9`, the
watchdog restarts it when its camera stalls while the process lives, both of two named services start again
after a reboot, `service status` shows what systemd says, and `service uninstall` removes the unit.

The test machine has no systemd as PID 1, so the test boots one: a Debian 12 root (tests/systemd/root.sh,
built once with mmdebstrap) under `systemd-nspawn -b`, on an overlay in the test's temporary folder (the root
stays unchanged; what the container writes outlives its reboot), with this checkout and the venv bound
read-only at their own paths (the unit's ExecStart is the venv's own `edgeclf`, as install writes it), and
the host's network, so the service reads an MJPEG camera this test serves on loopback and can stall.
Skipped, with one line saying why, where that cannot run: not root, no nspawn, no root image, no cgroup
access for a container, a root nspawn cannot boot.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgeclf.cli import cli
from tests.mjpeg import MjpegCamera

REPO = Path(__file__).resolve().parents[2]
ROOT_SH = Path(__file__).parent / "root.sh"
WATCHDOG_S = 5  # what `service install --watchdog-sec` gets; the unit's RestartSec= is 5
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SRV = "/srv/edgeclf"  # the test's folder inside the container: configs, model, frames
PASSWORD = "door-camera-secret-7"  # the second service's web view password, loaded as a systemd credential


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, password: str | None = None) -> tuple[int, bytes]:
    """The HTTP status and body of GET `url`, with the password as basic auth when given."""
    request = urllib.request.Request(url)
    if password is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"viewer:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _venv() -> tuple[Path, Path]:
    """The venv the service runs from (the runtime-only one, as on a Pi, when it exists) and its base Python."""
    runtime = REPO / ".venv-runtime"
    venv = runtime if (runtime / "bin" / "edgeclf").is_file() else Path(sys.prefix)
    home = next((line.split("=", 1)[1].strip() for line in (venv / "pyvenv.cfg").read_text().splitlines()
                 if line.split("=", 1)[0].strip() == "home"), None)
    if not (venv / "bin" / "edgeclf").is_file() or home is None:
        pytest.skip(f"no venv with an edgeclf executable and a pyvenv.cfg at {venv}; run make install-runtime")
    return venv, Path(home).parent


def _host_runs_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and Path("/proc/1/comm").read_text().strip() == "systemd"


class OwnCgroup:
    """A cgroup of its own (in each hierarchy nspawn uses) for the container where no systemd on the host makes
    one: nspawn's payload/supervisor groups go below it, not into the host's root, and leave with it."""

    def __init__(self, name: str) -> None:
        base = Path("/sys/fs/cgroup")
        hierarchies = ([base / "systemd", base / "unified"] if (base / "systemd" / "cgroup.procs").exists()
                       else [base])  # hybrid (v1 name=systemd + v2), or the v2 tree alone
        self.paths = [h / name for h in hierarchies if (h / "cgroup.procs").exists()]
        if not self.paths:
            pytest.skip(f"no cgroup hierarchy under {base} to run a container in (a container without cgroup access?)")
        try:
            for path in self.paths:
                path.mkdir(exist_ok=True)
        except OSError as exc:
            self.remove()
            pytest.skip(f"cannot create a cgroup for the container ({exc}); needs write access to {base}")

    def remove(self) -> None:
        for path in self.paths:
            for folder in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [path]:
                try:
                    folder.rmdir()
                except OSError:
                    pass


class Container:
    """A systemd-nspawn container booted on an overlay of the root: the root stays unchanged, what the container
    writes (the unit, the journal) lands in `state`'s upper folder and outlives a reboot. `run` executes a
    command in it (nsenter into its namespaces)."""

    def __init__(self, root: Path, name: str, binds_ro: list[Path], srv: Path, state: Path) -> None:
        self.name, self.state, self.log = name, state, state / "console.log"
        for folder in ("upper", "work", "merged"):
            (state / folder).mkdir()
        nspawn = [shutil.which("systemd-nspawn"), "-D", str(state / "merged"), "-M", name, "-b", "--console=pipe",
                  f"--bind={srv}:{SRV}", *[f"--bind-ro={p}" for p in binds_ro]]
        self.cgroup = None
        if not _host_runs_systemd():  # no machined or systemd to make a scope: nspawn stays in our cgroup
            self.cgroup = OwnCgroup(name)
            nspawn[1:1] = ["--register=no", "--keep-unit"]
        # The shell moves itself into that cgroup and mounts the overlay in a mount namespace of its own (so
        # it goes when the container does), then becomes nspawn.
        self.command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'for group in $5; do echo 0 > "$group/cgroup.procs" || exit 1; done; '
                        'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 5 && exec "$@"',
                        "-", str(root), str(state / "upper"), str(state / "work"), str(state / "merged"),
                        " ".join(str(p) for p in self.cgroup.paths) if self.cgroup else "", *nspawn]
        self.process: subprocess.Popen | None = None
        self.boot(first=True)

    def boot(self, first: bool = False) -> None:
        """Starts the container and waits until its systemd reached its default target."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        self.leader = None
        while self.leader is None and time.monotonic() < deadline:
            if self.process.poll() is not None:
                reason = (f"systemd-nspawn could not boot the root here (exit {self.process.returncode}): "
                          + " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:]))
                self.close()
                if first:  # this host cannot run the container at all
                    pytest.skip(reason)
                pytest.fail(reason)
            # nspawn's own child becomes the container's PID 1 (systemd); only that one: a child systemd forks
            # is also called systemd until it runs its program.
            for pid in self._children(self.process.pid):
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        self.leader = pid
                except OSError:
                    continue
            time.sleep(0.1)
        if self.leader is None:
            self.close()
            pytest.fail(f"no systemd started in the container within 60 s; see {self.log}")
        self.wait_until_booted()

    def reboot(self) -> None:
        """`systemctl reboot` in the container: its systemd stops the units and ends; nspawn exits with 133
        (what its own service restarts on) and the container is booted again on the same overlay."""
        self.run("systemctl", "reboot")
        assert self.process.wait(timeout=60) == 133, f"nspawn exited {self.process.returncode}; see {self.log}"
        self.boot()

    def wait_until_booted(self, timeout: float = 90) -> None:
        """Until the container's systemd reached its default target (its private socket answers only once
        it is up: until then systemctl cannot connect)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.run("systemctl", "is-system-running", "--wait", timeout=timeout, check=False)
            state = done.stdout.strip()
            if state in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the container's systemd is {state!r} after {timeout:.0f} s: {done.stderr.strip()}"
                            f"\n{self.journal()}")
            time.sleep(0.2)

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def run(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i", PATH, "LANG=C.UTF-8", *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"in the container, {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
                        f"\n{self.journal()}")
        return done

    def show(self, unit: str) -> dict[str, str]:
        """systemctl show's properties of `unit` that the test follows."""
        done = self.run("systemctl", "show", unit, "-p", "ActiveState,SubState,MainPID,NRestarts,StatusText,"
                        "LoadState,Result")
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def journal(self, unit: str | None = None, lines: int = 80) -> str:
        """The journal of `unit` (its own lines and systemd's about it), or the last `lines` of the whole one."""
        args = ["journalctl", "--no-pager", "-o", "short-monotonic"] + (["-u", unit] if unit else ["-n", str(lines)])
        return self.run(*args, check=False).stdout

    def wait_for(self, what: str, predicate: Callable[[], bool], unit: str, timeout: float = 90) -> None:
        """Polls `predicate` until it holds; fails with `unit`'s state and journal when it does not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        pytest.fail(f"{what}: not within {timeout:.0f} s. {unit} is {self.show(unit)}\n{self.journal(unit)}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nspawn halts the container: its systemd stops the units
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.cgroup:
            self.cgroup.remove()


@pytest.fixture(scope="module")
def container(tmp_path_factory, tiny_int8):
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux: systemd-nspawn boots a container with its own systemd")
    done = subprocess.run(["bash", str(ROOT_SH)], capture_output=True, text=True, timeout=1200)
    if done.returncode == 3:
        pytest.skip(done.stdout.strip().removeprefix("skipped: "))
    assert done.returncode == 0, done.stdout + done.stderr
    root = Path(done.stdout.strip().splitlines()[-1])
    if not all(shutil.which(tool) for tool in ("systemd-nspawn", "nsenter", "unshare")):
        pytest.skip("systemd-nspawn (Debian's systemd-container), nsenter or unshare (util-linux) is missing")
    venv, python_home = _venv()
    binds = [REPO]  # the editable install's code
    if not venv.is_relative_to(REPO):
        binds.append(venv)
    if not python_home.is_relative_to("/usr"):  # a Python of its own (pyenv, /opt): at the same path inside
        binds.append(python_home)
    srv = tmp_path_factory.mktemp("srv")
    srv.chmod(0o755)  # the second service's user reads the config, model and frames (not the password file)
    shutil.copy(tiny_int8, srv / "model_int8.tflite")
    frames = srv / "frames"
    frames.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((48, 64, 3), 60 * i, np.uint8))
    camera = MjpegCamera(interval=0.05)
    # A model path relative to the config, as a user writes it: the service resolves it from the config's folder.
    (srv / "cam.yaml").write_text(yaml.safe_dump({"model": "model_int8.tflite", "source": camera.url,
                                                  "events_only": True}))
    # The second camera plays a folder and serves its web view (on the shared loopback) with a password.
    web = f"127.0.0.1:{_free_port()}"
    (srv / "door.yaml").write_text(yaml.safe_dump({"model": f"{SRV}/model_int8.tflite", "source": f"{SRV}/frames",
                                                   "loop": True, "realtime": True, "fps": 5, "events_only": True,
                                                   "serve": web}))
    (srv / "door.password").write_text(PASSWORD + "\n")
    (srv / "door.password").chmod(0o600)
    box = Container(root, f"edgeclf-test-{os.getpid()}", binds, srv, tmp_path_factory.mktemp("container"))
    try:
        box.venv, box.camera, box.srv, box.web = venv, camera, srv, f"http://{web}"
        yield box
    finally:
        box.close()
        camera.close()


def _edgeclf(box: Container, *args: str) -> subprocess.CompletedProcess:
    return box.run(str(box.venv / "bin" / "edgeclf"), *args)


def _restarted(box: Container, unit: str, count: int, old_pid: str) -> Callable[[], bool]:
    """A check that `unit` was restarted `count` times in all and runs again (active: READY came) as a new
    process."""
    def check() -> bool:
        now = box.show(unit)
        return (now["NRestarts"], now["ActiveState"]) == (str(count), "active") and now["MainPID"] not in ("0", old_pid)
    return check


@pytest.mark.slow  # about 45 s: two waits of RestartSec=5, one of WatchdogSec=5, a reboot
def test_systemd_restarts_the_camera_after_kill_9_a_stalled_camera_and_a_reboot(container):
    box = container
    cam, door = "edgeclf-cam.service", "edgeclf-door.service"
    # install enables and starts the unit; `systemctl start` of a Type=notify unit returns after READY=1
    installed = _edgeclf(box, "service", "install", "cam", "--config", f"{SRV}/cam.yaml", "--watchdog-sec",
                         str(WATCHDOG_S))
    assert f"enabled and started {cam}" in installed.stdout, installed.stdout
    # The second runs as a user of its own, as on a Pi (--user pi): it can reach the venv (whose Python lives
    # under /root here, pyenv's) and its files, but not the password file, which only root reads.
    box.run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "camera")
    box.run("chmod", "711", "/root")
    _edgeclf(box, "service", "install", "door", "--config", f"{SRV}/door.yaml", "--user", "camera",
             "--password-file", f"{SRV}/door.password")
    first = box.show(cam)
    assert (first["ActiveState"], first["SubState"], first["NRestarts"]) == ("active", "running", "0"), first
    assert first["StatusText"].startswith("classifying at "), first  # STATUS= from the camera loop
    assert box.run("systemctl", "is-enabled", cam).stdout.strip() == "enabled"  # started again at boot
    assert box.run("stat", "-c", "%a", f"/etc/systemd/system/{cam}").stdout.strip() == "644"
    complaints = [line for line in box.journal(lines=5000).splitlines() if f"/etc/systemd/system/{cam}" in line]
    assert not complaints, complaints  # systemd read the unit without a warning (bad key, value or mode)
    door_first = box.show(door)
    assert door_first["ActiveState"] == "active" and int(door_first["MainPID"]) > 0, door_first
    assert box.run("stat", "-c", "%U", f"/proc/{door_first['MainPID']}").stdout.strip() == "camera"
    # Its web view reads the password from the credential systemd hands it (LoadCredential=, %d): the right
    # one is let in, none or a wrong one gets 401; the password is neither in its environment nor its argv.
    assert _get(f"{box.web}/status.json")[0] == 401
    assert _get(f"{box.web}/status.json", "not-the-password")[0] == 401
    status, body = _get(f"{box.web}/status.json", PASSWORD)
    assert status == 200 and isinstance(json.loads(body), dict), (status, body)
    for view in ("environ", "cmdline"):
        seen = box.run("cat", f"/proc/{door_first['MainPID']}/{view}").stdout
        assert PASSWORD not in seen and (view == "environ" or "web-password" in seen), (view, seen)

    # kill -9: Restart=on-failure brings it back as a new process, READY again
    box.run("bash", "-c", f"kill -9 {first['MainPID']}")  # bash's kill: the root has no procps
    box.wait_for("restart after kill -9", _restarted(box, cam, 1, first["MainPID"]), cam)
    second = box.show(cam)
    journal = box.journal(cam)
    assert "Main process exited, code=killed, status=9/KILL" in journal, journal
    assert "Watchdog timeout" not in journal, journal

    # The camera stalls (connection open, no frames): the process lives, the pings stop, the watchdog fires.
    box.camera.stalled.set()
    box.wait_for("watchdog timeout on the stalled camera", lambda: "Watchdog timeout" in box.journal(cam), cam,
                 timeout=WATCHDOG_S + 60)
    box.camera.stalled.clear()  # the restarted process finds frames again
    journal = box.journal(cam)
    assert f"Watchdog timeout (limit {WATCHDOG_S}s)!" in journal, journal
    assert f"Killing process {second['MainPID']} (edgeclf) with signal SIGABRT" in journal, journal
    assert "Failed with result 'watchdog'" in journal, journal
    box.wait_for("restart after the watchdog", _restarted(box, cam, 2, second["MainPID"]), cam)

    # The other service ran on, untouched: side by side, each restarted on its own.
    door_now = box.show(door)
    assert (door_now["MainPID"], door_now["NRestarts"], door_now["ActiveState"]) == (
        door_first["MainPID"], "0", "active"), door_now

    # A reboot: both start again at boot (enabled into multi-user.target), as fresh processes
    box.reboot()
    boots = [line for line in box.run("journalctl", "--list-boots", "--no-pager").stdout.splitlines()[1:] if line]
    assert len(boots) == 2, boots
    for unit in (cam, door):
        now = box.show(unit)
        assert (now["ActiveState"], now["NRestarts"]) == ("active", "0"), (unit, now)
        this_boot = box.run("journalctl", "-b", "0", "-u", unit, "--no-pager").stdout
        assert f"Started {unit}" in this_boot, this_boot
    assert _get(f"{box.web}/status.json", PASSWORD)[0] == 200  # the credential is loaded again at boot

    # service status: systemd's view while it runs; after a stop, the summary the camera printed on SIGTERM
    shown = json.loads(_edgeclf(box, "service", "status", "cam", "--json").stdout)
    assert shown["unit"] == cam and "active (running)" in shown["systemctl"] and "classifying at" in shown["systemctl"]
    box.run("systemctl", "stop", cam)
    stopped = box.show(cam)
    assert (stopped["ActiveState"], stopped["Result"]) == ("inactive", "success"), stopped
    shown = json.loads(_edgeclf(box, "service", "status", "cam", "--json").stdout)
    assert "inactive (dead)" in shown["systemctl"], shown
    assert shown["summary"]["ended"] == "interrupted" and shown["summary"]["sinks"]["systemd"]["ready"] is True, shown

    # uninstall removes the unit from systemd; the other one stays until it is uninstalled too
    removed = _edgeclf(box, "service", "uninstall", "cam")
    assert f"removed /etc/systemd/system/{cam}" in removed.stdout, removed.stdout
    assert box.show(cam)["LoadState"] == "not-found"
    assert box.show(door)["ActiveState"] == "active"
    _edgeclf(box, "service", "uninstall", "door")
    gone = box.show(door)
    assert (gone["LoadState"], gone["ActiveState"]) == ("not-found", "inactive"), gone
    assert not box.run("ls", "/etc/systemd/system/multi-user.target.wants").stdout.count("edgeclf-")


def test_the_unit_is_written_readable_as_systemd_expects(tiny_int8, tmp_path):
    """Without a container too: a unit file that only root can read makes systemd warn on every reload
    ("marked world-inaccessible"), which the test above saw under systemd; install writes it 0644."""
    config = tmp_path / "camera.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_int8), "source": "0", "events_only": True}))
    result = CliRunner().invoke(cli, ["service", "install", "cam", "--config", str(config), "--unit-dir",
                                      str(tmp_path / "units"), "--state-dir", str(tmp_path / "state"), "--no-start"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "units" / "edgeclf-cam.service").stat().st_mode) == 0o644
