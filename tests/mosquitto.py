"""A real Mosquitto broker on a free loopback port, and a paho subscriber that records what it receives.

Used by tests/runtime/test_mqtt.py and benchmarks/actions.py. Skips (one line) where Debian's `mosquitto`
or paho-mqtt is missing: `make install-mosquitto` installs the broker.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or (
    "/usr/bin/mosquitto_passwd" if Path("/usr/bin/mosquitto_passwd").exists() else None)
try:
    import paho.mqtt.client as mqtt
except ImportError:  # the skip below says what to install
    mqtt = None

from edgeclf.runtime.mqtt import stop_network

OPENSSL = shutil.which("openssl")
MISSING = ("the Mosquitto broker is not installed: `make install-mosquitto` (Debian package mosquitto)"
           if MOSQUITTO is None else "paho-mqtt is not installed: pip install paho-mqtt" if mqtt is None else None)
needs_mosquitto = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
needs_paho = pytest.mark.skipif(mqtt is None, reason="paho-mqtt is not installed: pip install paho-mqtt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(condition, timeout: float = 15.0, what: str = "a condition", detail=lambda: ""):
    """Polls `condition()` until it returns something truthy (returned); fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail()}")


class Broker:
    """`mosquitto -c` with a temporary config: one loopback listener, anonymous or with a password file."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, port: int | None = None,
                 persistence: bool = False, tls: bool = False) -> None:
        self.folder, self.port = Path(folder), port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        # With persistence, a stop (SIGTERM) saves retained messages and persistent sessions for the next start.
        # Run as root, mosquitto would switch to the user `mosquitto`, who cannot read the test's 0600 files.
        lines = [f"listener {self.port} 127.0.0.1", f"user {pwd.getpwuid(os.getuid()).pw_name}",
                 f"persistence {'true' if persistence else 'false'}", f"persistence_location {self.folder}/"]
        if tls:  # a certificate for 127.0.0.1 signed by a CA made here: clients verify it with ca.pem
            self.ca = make_certificates(self.folder)
            lines += [f"cafile {self.ca}", f"certfile {self.folder / 'server.pem'}", f"keyfile {self.folder / 'server.key'}"]
        if users:
            passwords = self.folder / "passwords"
            passwords.touch(mode=0o600)
            for user, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> "Broker":
        self.log = open(self.folder / "mosquitto.log", "ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()[-500:]}")
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
        self.log.close()

    def forget(self) -> None:
        """Deletes what a persistent broker saved: the next start knows no retained message or session."""
        (self.folder / "mosquitto.db").unlink(missing_ok=True)

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_certificates(folder: Path) -> Path:
    """A test CA (ca.pem) and a server certificate for IP 127.0.0.1 signed by it, with openssl; returns ca.pem."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=edgeclf test CA", "-days", "2", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    openssl("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "server.ext", "-out", "server.pem")
    return folder / "ca.pem"


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    received: float  # time.time() at receipt
    dup: bool = False  # the broker delivers it again (it had no PUBACK from this subscriber before a restart)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


class Subscriber:
    """A paho client subscribed to `topics` on the broker; `messages` grows as they arrive."""

    def __init__(self, port: int, topics: list[str], username: str | None = None, password: str | None = None,
                 clean_session: bool = True, ca: Path | None = None) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeclf-test-{free_port()}",
                                  clean_session=clean_session)
        self.client.reconnect_delay_set(1, 2)
        if username:
            self.client.username_pw_set(username, password)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe within 10 s")

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload), bool(message.retain), time.time(),
                                         bool(message.dup)))

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, condition, timeout: float = 15.0, what: str = "a message"):
        """Polls `condition()` until it returns something truthy; fails the test after `timeout`."""
        return poll(condition, timeout, what, lambda: f"; received "
                    f"{[(m.topic, m.payload[:60], m.retain) for m in self.messages][-10:]}")

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        stop_network(self.client)
