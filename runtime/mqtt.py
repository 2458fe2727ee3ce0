"""The camera on an MQTT broker: its debounced state, each change, stats and a pause switch, and Home
Assistant's device discovery, so a classifier on a Pi shows up in Home Assistant with no YAML.

Topics under `PREFIX/<device>/`: `state` (retained JSON label, score, since), `availability` (retained
`online`; `offline` as the last will and on a clean exit), `events` (each change, not retained), `stats`
(every --mqtt-stats seconds), `set` (`pause` / `resume`), `mode` (retained `running` / `paused`) and, with
Home Assistant discovery, `snapshot` (retained JPEG of the last change). Changes go out QoS 1, one at a
time and in order, each after the broker acknowledged the one before: while the broker is away they
wait in a bounded queue (what overflows is counted in the summary), and paho's own resend of the one in
flight goes first when it returns.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeclf.runtime.errors import UserError
from edgeclf.runtime.files import read_private_file
from edgeclf.runtime.sinks import FrameResult, Sink
from edgeclf.runtime.state import UNKNOWN

log = logging.getLogger(__name__)

PASSWORD_ENV = "EDGECLF_MQTT_PASSWORD"
DEFAULT_PREFIX = "edgeclf"
HA_PREFIX = "homeassistant"
QOS = 1
QUEUE_CHANGES = 1000  # changes held while the broker is away; beyond it the oldest go, counted
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 8  # back-off between connection attempts: back within seconds
ACK_WAIT_S = 5.0  # at the end of a run: how long queued changes and `offline` may take to be acknowledged
STATS_TICK_S = 1.0  # the stats sink takes the frames' records at least this often (a short feed)
STATS_TICK_SAMPLES = 500  # frames per tick whose stage times the stats' medians take, spread over the tick
STATS_SAMPLES = 10_000  # the newest samples per stage the stats' medians are taken over
HA_BIRTH_TOPIC = "homeassistant/status"  # Home Assistant's default birth message topic
# CONNACK reasons that mean the user name or password is wrong (MQTT 3.1.1 and 5 wordings, as paho names them)
REFUSED_LOGIN = {"Not authorized", "Bad user name or password"}
SNAPSHOT_WIDTH = 640  # the change's JPEG is scaled down to this width at most (Home Assistant shows a card)
INSTALL_HINT = "--mqtt needs paho-mqtt: pip install paho-mqtt (edgeclf installs it; this environment lacks it)"
_ID = re.compile(r"[A-Za-z0-9_-]+")


class MqttError(UserError):
    """A bad MQTT option (URL, password file, device name, alert label); the message says the fix."""


@dataclass(frozen=True)
class MqttConfig:
    """Everything --mqtt and its companions asked for, checked before the camera starts."""

    host: str
    port: int
    prefix: str
    device: str
    tls: bool = False
    ca: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    stats_every: float = 10.0
    ha_prefix: str | None = None  # Home Assistant discovery prefix; None: no discovery
    alerts: tuple[str, ...] = ()
    queue_changes: int = QUEUE_CHANGES

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    def topic(self, name: str) -> str:
        return f"{self.base}/{name}"

    @property
    def ha_status_topics(self) -> tuple[str, ...]:
        """Where Home Assistant says it (re)started: `<discovery prefix>/status`, and its default birth topic,
        homeassistant/status, which stays so when only the discovery prefix is changed (they are two settings)."""
        if self.ha_prefix is None:
            return ()
        return tuple(dict.fromkeys([f"{self.ha_prefix}/status", HA_BIRTH_TOPIC]))

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str) -> tuple[str, int, str, bool, str | None]:
    """`mqtt://[USER@]HOST[:PORT]/PREFIX` (or mqtts://) -> host, port, prefix, tls, user.

    Raises:
        MqttError: another scheme, no host, a bad port, a wildcard in the prefix, or a password in the URL.
    """
    example = "Use e.g. --mqtt mqtt://192.168.1.10/edgeclf or mqtts://user@broker.lan:8883/edgeclf."
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttError(f"--mqtt must be an mqtt:// or mqtts:// URL; received {url!r}. {example}")
    if parts.password is not None:
        raise MqttError(f"--mqtt {parts.scheme}://{parts.username}:***@...: a password on the command line shows in "
                        f"`ps` and shell history; drop it from the URL and put it in ${PASSWORD_ENV} or in a file "
                        "given with --mqtt-password-file (chmod 600).")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise MqttError(f"--mqtt needs a host and, if given, a port in 1-65535; received {url!r}. {example}")
    tls = parts.scheme == "mqtts"
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    raw = url.split("://", 1)[1].partition("/")[2]  # as typed: urlsplit takes # and ? for URL syntax
    if any(c in raw for c in "+#?") or "//" in prefix:
        raise MqttError(f"--mqtt: the topic prefix must be a plain topic path without +, #, ? or empty levels; "
                        f"received {raw!r}. {example}")
    return parts.hostname, port or (8883 if tls else 1883), prefix, tls, urllib.parse.unquote(parts.username or "") or None


def read_password(password_file: str | None, environ: dict | None = None) -> str | None:
    """The broker password from `password_file` (files.read_private_file's rule: its owner's only) or
    $EDGECLF_MQTT_PASSWORD, else None."""
    environ = os.environ if environ is None else environ
    if password_file:
        try:
            return read_private_file(password_file, "--mqtt-password-file", "broker password")
        except ValueError as exc:
            raise MqttError(str(exc)) from exc
    return environ.get(PASSWORD_ENV) or None


def device_name(name: str | None) -> str:
    """The device id in topics and Home Assistant ids: --device, else this host's name (dots become dashes)."""
    if name is None:
        name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0]) or "edgeclf"
    if not _ID.fullmatch(name):
        raise MqttError(f"--device must be letters, digits, _ and - only (it is part of MQTT topics and Home "
                        f"Assistant ids); received {name!r}. Use e.g. --device garden-gate.")
    return name


def from_options(url: str | None, ca: str | None = None, password_file: str | None = None, device: str | None = None,
                 keepalive: int = 30, stats_every: float = 10.0, ha_discovery: str | None = None,
                 alerts: tuple[str, ...] = (), environ: dict | None = None) -> MqttConfig | None:
    """The MQTT options checked before anything starts; None without --mqtt.

    Raises:
        MqttError: any bad option, with the fix.
    """
    if url is None:
        extra = [name for name, value in (("--mqtt-ca", ca), ("--mqtt-password-file", password_file),
                                          ("--ha-discovery", ha_discovery), ("--alert", alerts)) if value]
        if extra:
            raise MqttError(f"{', '.join(extra)} {'needs' if len(extra) == 1 else 'need'} --mqtt URL; add e.g. "
                            "--mqtt mqtt://192.168.1.10/edgeclf or drop them.")
        return None
    host, port, prefix, tls, username = parse_url(url)
    if ca is not None:
        if not tls:
            raise MqttError(f"--mqtt-ca is for a TLS broker; received --mqtt {url!r}. Use mqtts://{host}:8883/{prefix}.")
        if not Path(ca).is_file():
            raise MqttError(f"--mqtt-ca {ca}: no such file. Give the PEM file of the CA that signed the broker's "
                            "certificate.")
    password = read_password(password_file, environ)
    if password is not None and username is None:
        raise MqttError(f"a broker password needs a user name; put it in the URL: --mqtt "
                        f"{'mqtts' if tls else 'mqtt'}://USER@{host}:{port}/{prefix}")
    if not 1 <= keepalive <= 65535:
        raise MqttError(f"--mqtt-keepalive must be in [1, 65535] seconds; received {keepalive}. Use e.g. "
                        "--mqtt-keepalive 30.")
    if not stats_every > 0:
        raise MqttError(f"--mqtt-stats must be > 0 seconds; received {stats_every}. Use e.g. --mqtt-stats 10.")
    if alerts and ha_discovery is None:
        raise MqttError("--alert LABEL makes a Home Assistant binary_sensor; add --ha-discovery.")
    if ha_discovery is not None and (not ha_discovery.strip("/") or any(c in ha_discovery for c in "+#")):
        raise MqttError(f"--ha-discovery takes Home Assistant's discovery prefix; received {ha_discovery!r}. "
                        "Use --ha-discovery (it defaults to homeassistant).")
    config = MqttConfig(host, port, prefix, device_name(device), tls, Path(ca) if ca else None, username, password,
                        keepalive, stats_every, ha_discovery.strip("/") if ha_discovery is not None else None,
                        tuple(dict.fromkeys(alerts)))
    if username is not None and password is None:  # a broker may take a user without one: said, not refused
        log.warning("mqtt: the URL names user %r but no password was given; connecting without one. If the broker "
                    "wants one, set $%s or --mqtt-password-file FILE.", username, PASSWORD_ENV)
    return config


def build_sinks(config: MqttConfig, labels: list[str], model_name: str, every: int = 1) -> list[Sink]:
    """The MQTT sinks for a loaded model: changes (and snapshots) in order, and the periodic stats.

    Raises:
        MqttError: an --alert label the model does not have; paho-mqtt not installed.
    """
    known = list(dict.fromkeys([*labels, UNKNOWN]))
    for label in config.alerts:
        if label not in known:
            raise MqttError(f"--alert {label!r} is not one of {model_name}'s labels ({', '.join(known)}); "
                            f"use one of them.")
    bridge = MqttBridge(config, known, model_name)
    return [MqttSink(bridge), MqttStatsSink(bridge, every)]


def discovery(config: MqttConfig, labels: list[str], model_name: str, version: str) -> tuple[str, dict]:
    """Home Assistant's device discovery topic and payload (device-based: one device, its components)."""
    uid = f"edgeclf_{config.device}"
    availability = {"availability": [{"topic": config.topic("availability"), "payload_available": "online",
                                      "payload_not_available": "offline"}]}
    state = config.topic("state")
    cmps: dict[str, dict] = {
        "state": {"p": "sensor", "name": "State", "unique_id": f"{uid}_state", "state_topic": state,
                  "value_template": "{{ value_json.label }}", "device_class": "enum", "options": labels,
                  "icon": "mdi:eye", "json_attributes_topic": state},
        "confidence": {"p": "sensor", "name": "Confidence", "unique_id": f"{uid}_confidence", "state_topic": state,
                       "value_template": "{{ (value_json.score * 100) | round(1) }}", "unit_of_measurement": "%",
                       "state_class": "measurement", "icon": "mdi:percent"},
        "snapshot": {"p": "image", "name": "Last change", "unique_id": f"{uid}_snapshot",
                     "image_topic": config.topic("snapshot"), "content_type": "image/jpeg"},
        "classifying": {"p": "switch", "name": "Classifying", "unique_id": f"{uid}_classifying",
                        "command_topic": config.topic("set"), "state_topic": config.topic("mode"),
                        "payload_on": "resume", "payload_off": "pause", "state_on": "running",
                        "state_off": "paused", "icon": "mdi:play-pause"},
        "fps": {"p": "sensor", "name": "Frame rate", "unique_id": f"{uid}_fps", "state_topic": config.topic("stats"),
                "value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps",
                "state_class": "measurement", "entity_category": "diagnostic", "icon": "mdi:speedometer"},
        # While paused the stats carry no stage times: "None" makes the sensor unknown (an undefined value would be a
        # template warning in Home Assistant's log at every stats message, and the last time would stay shown).
        "latency": {"p": "sensor", "name": "Inference time", "unique_id": f"{uid}_latency",
                    "state_topic": config.topic("stats"), "value_template": "{{ value_json.ms.invoke | default(None) }}",
                    "unit_of_measurement": "ms", "device_class": "duration", "state_class": "measurement",
                    "entity_category": "diagnostic"},
        "dropped": {"p": "sensor", "name": "Dropped frames", "unique_id": f"{uid}_dropped",
                    "state_topic": config.topic("stats"), "value_template": "{{ value_json.dropped }}",
                    "unit_of_measurement": "frames", "state_class": "measurement", "entity_category": "diagnostic"},
    }
    for label in config.alerts:
        key = "alert_" + re.sub(r"[^A-Za-z0-9_-]", "_", label)
        cmps[key] = {"p": "binary_sensor", "name": label, "unique_id": f"{uid}_{key}", "state_topic": state,
                     "value_template": "{{ 'ON' if value_json.label == %s else 'OFF' }}" % json.dumps(label)}
    payload = {"dev": {"ids": [uid], "name": config.device, "mf": "edgeclf", "mdl": model_name, "sw": version},
               "o": {"name": "edgeclf", "sw": version}, **availability, "qos": QOS, "cmps": cmps}
    return f"{config.ha_prefix}/device/{uid}/config", payload


def snapshot_jpeg(image: np.ndarray) -> bytes:
    """A BGR frame as JPEG bytes, scaled down to SNAPSHOT_WIDTH at most."""
    if image.shape[1] > SNAPSHOT_WIDTH:
        height = max(1, round(image.shape[0] * SNAPSHOT_WIDTH / image.shape[1]))
        image = cv2.resize(image, (SNAPSHOT_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("OpenCV could not encode the snapshot as JPEG")
    return data.tobytes()


def stop_network(client: Any) -> None:
    """Disconnects a paho client started with `loop_start()` and waits for its network thread to end.

    Not paho's own `disconnect(); loop_stop()` alone: the network thread sets `client._thread` to None as it
    ends, which disconnect() makes it do, and loop_stop reads that attribute twice (`is None`, then `.join()`).
    A thread that ends between the two reads makes loop_stop raise AttributeError (paho-mqtt issue #872, open
    in 2.2; it failed a test of ours under load). The thread then has nothing left to do, so that is a stop.
    """
    client.disconnect()
    try:
        client.loop_stop()
    except AttributeError:  # paho-mqtt #872: the thread ended between loop_stop's check and its join
        pass


@dataclass
class _Change:
    event: bytes
    state: bytes
    jpeg: bytes | None


class MqttBridge:
    """One paho client shared by the MQTT sinks: connection, last will, reconnects, the ordered change queue."""

    def __init__(self, config: MqttConfig, labels: list[str], model_name: str) -> None:
        try:
            import paho.mqtt.client  # noqa: F401 - checked here, so a missing install fails before the camera starts
        except ImportError as exc:
            raise MqttError(INSTALL_HINT) from exc
        from edgeclf import __version__

        self.config, self.labels, self.model_name, self.version = config, labels, model_name, __version__
        self.connected = threading.Event()
        self.paused: threading.Event = threading.Event()  # replaced by the loop's own in start()
        self._queue: deque[_Change] = deque()
        self._wake = threading.Condition()
        self._lock = threading.Lock()  # guards the figures and the last sent state/snapshot
        self._closing = False
        self._last_state: bytes | None = None  # the newest state handed to paho: re-published on each connect
        self._last_jpeg: bytes | None = None
        # What was said of the outage going on ((refused, why) of _unreachable), None while connected or not said yet
        self._said_why: tuple[str | None, str] | None = None
        self.pause_commands = 0  # pause/resume commands taken: the stats do not count a pause as dropped frames
        self.figures = {"published": 0, "queue_overflow": 0, "connects": 0, "disconnects": 0, "stats_published": 0,
                        "commands": 0}
        self._client = None
        self._worker: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self, paused: threading.Event | None) -> None:
        """Connects in the background (a broker that is down is retried; classification goes on)."""
        import paho.mqtt.client as mqtt

        if paused is not None:
            self.paused = paused
        config = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeclf-{config.device}",
                             protocol=mqtt.MQTTv311)
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=str(config.ca) if config.ca else None)
        client.will_set(config.topic("availability"), "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect, client.on_connect_fail = self._on_connect, self._on_connect_fail
        client.on_disconnect, client.on_message = self._on_disconnect, self._on_message
        self._client = client
        self._worker = threading.Thread(target=self._send_changes, name="edgeclf-mqtt-changes", daemon=True)
        self._worker.start()
        client.connect_async(config.host, config.port, keepalive=config.keepalive)
        client.loop_start()

    def close(self) -> None:
        """Lets queued changes go out (up to ACK_WAIT_S), publishes `offline`, disconnects."""
        if self._client is None:
            return
        deadline = time.monotonic() + ACK_WAIT_S
        with self._wake:
            while self._queue and self.connected.is_set() and time.monotonic() < deadline:
                self._wake.wait(0.05)
            self._closing = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(max(0.1, deadline - time.monotonic()))
        if self.connected.is_set():
            info = self._client.publish(self.config.topic("availability"), "offline", qos=QOS, retain=True)
            self._wait(info, max(deadline, time.monotonic() + 1.0))
        stop_network(self._client)
        if self._queue:
            log.warning("mqtt: %d state change(s) were never published: %s was away when the camera stopped "
                        "(unsent in the summary)", len(self._queue), self.config.address)

    def summary(self) -> dict:
        with self._lock:
            figures = dict(self.figures)
        figures.update(broker=self.config.address, topic=self.config.base, unsent=len(self._queue))
        return figures

    # --- what the sinks call --------------------------------------------------------------------------
    def queue_change(self, change: _Change) -> None:
        """Hands a change to the sender thread; never blocks. A full queue loses its oldest change, counted."""
        with self._wake:
            if len(self._queue) >= self.config.queue_changes:
                self._queue.popleft()
                with self._lock:
                    self.figures["queue_overflow"] += 1
                if self.figures["queue_overflow"] == 1:
                    log.warning("mqtt: more than %d changes waited for %s; the oldest are dropped (counted in the "
                                "summary as queue_overflow)", self.config.queue_changes, self.config.address)
            self._queue.append(change)
            self._wake.notify_all()

    def publish_stats(self, stats: dict) -> None:
        """Stats are a snapshot of now: sent while connected, never queued for later."""
        if self.connected.is_set() and not self._closing:
            self._client.publish(self.config.topic("stats"), json.dumps(stats), qos=QOS)
            with self._lock:
                self.figures["stats_published"] += 1

    # --- the sender thread ----------------------------------------------------------------------------
    def _send_changes(self) -> None:
        """Publishes queued changes in order, each after the previous one's PUBACKs; waits out outages."""
        while True:
            with self._wake:
                while not self._closing and not (self._queue and self.connected.is_set()):
                    self._wake.wait(0.5)
                if self._closing:
                    return
                change = self._queue[0]
            infos = []
            topic = self.config.topic
            if change.jpeg is not None and self.config.ha_prefix is not None:
                infos.append(self._client.publish(topic("snapshot"), change.jpeg, qos=QOS, retain=True))
            infos.append(self._client.publish(topic("events"), change.event, qos=QOS))
            infos.append(self._client.publish(topic("state"), change.state, qos=QOS, retain=True))
            with self._lock:
                self._last_state = change.state
                self._last_jpeg = change.jpeg if change.jpeg is not None else self._last_jpeg
            # Once handed to paho, a QoS 1 message is paho's to deliver: if the connection drops now, paho sends
            # it again first thing after the reconnect. So wait for its PUBACK before the next change.
            for info in infos:
                while not self._wait(info, time.monotonic() + 1.0):
                    if self._closing:
                        break
            with self._wake:
                if self._queue and self._queue[0] is change:
                    self._queue.popleft()
                self._wake.notify_all()
            with self._lock:
                self.figures["published"] += 1

    @staticmethod
    def _wait(info: Any, deadline: float) -> bool:
        """Waits for a message's PUBACK until `deadline`: woken by paho's network thread when it comes, not by
        polling (a poll every 5 ms made each change wait at least 5 ms a message).

        A message published in the moment the connection dropped comes back with rc MQTT_ERR_NO_CONN although paho
        keeps it (QoS 1) and sends it after the reconnect; left so, is_published() would raise from then on and
        end the sender thread: it is taken as queued, which it is."""
        import paho.mqtt.client as paho

        if info.rc == paho.MQTT_ERR_NO_CONN:
            info.rc = paho.MQTT_ERR_SUCCESS
        remaining = deadline - time.monotonic()
        if remaining > 0 and not info.is_published():
            info.wait_for_publish(remaining)
        return info.is_published()

    # --- paho callbacks (paho's network thread) ------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        config = self.config
        if reason.is_failure:
            if str(reason) not in REFUSED_LOGIN:
                self._unreachable(f"the broker refused the connection: {reason}")
            elif config.username:
                self._unreachable(f"check the user name in the URL and the password in ${PASSWORD_ENV} or "
                                  "--mqtt-password-file", f"refused the login of user {config.username!r} ({reason})")
            else:
                self._unreachable("it wants a login: put the user in the URL (mqtt://USER@HOST/PREFIX) and the "
                                  f"password in ${PASSWORD_ENV} or --mqtt-password-file", f"refused a client without "
                                  f"a user name ({reason})")
            return
        client.publish(config.topic("availability"), "online", qos=QOS, retain=True)
        client.subscribe([(config.topic("set"), QOS)] + [(topic, QOS) for topic in config.ha_status_topics])
        if config.ha_prefix is not None:
            self._publish_discovery(client)
        self._publish_current(client)
        with self._lock:
            self.figures["connects"] += 1
            first = self.figures["connects"] == 1
        if not first:
            log.warning("mqtt: connected to %s again; publishing %s", config.address, config.base)
        else:
            log.warning("mqtt: connected to %s; publishing %s/%s", config.address, config.base,
                        f" and Home Assistant discovery on {config.ha_prefix}/" if config.ha_prefix else "")
        self._said_why = None
        self.connected.set()
        with self._wake:
            self._wake.notify_all()

    def _publish_current(self, client: Any) -> None:
        """The retained topics as they are now: after a broker restart they are current again within seconds."""
        with self._lock:
            state, jpeg = self._last_state, self._last_jpeg
        client.publish(self.config.topic("mode"), "paused" if self.paused.is_set() else "running", qos=QOS, retain=True)
        if state is not None:
            client.publish(self.config.topic("state"), state, qos=QOS, retain=True)
        if jpeg is not None and self.config.ha_prefix is not None:
            client.publish(self.config.topic("snapshot"), jpeg, qos=QOS, retain=True)

    def _publish_discovery(self, client: Any) -> None:
        topic, payload = discovery(self.config, self.labels, self.model_name, self.version)
        client.publish(topic, json.dumps(payload), qos=QOS)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if self._said_why is None:  # paho does not say why: ask once per outage, on its thread, briefly
            self._unreachable(self._why_unreachable())

    def _why_unreachable(self) -> str:
        host, port = self.config.host, self.config.port
        try:
            socket.getaddrinfo(host, port)
        except OSError:
            return f"the name {host} does not resolve"
        try:
            socket.create_connection((host, port), timeout=2).close()
        except ConnectionRefusedError:
            return f"nothing listens on port {port} there"
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        return "the connection failed" + ("; is --mqtt-ca the CA that signed the broker's certificate?"
                                          if self.config.tls else "")

    def _unreachable(self, why: str, refused: str | None = None) -> None:
        """One line per outage, not one per retry; and one more when the reason changes within it (the broker
        came up, but refuses the login). `refused`: the broker answered, and refused what (not unreachable)."""
        said = (refused, why)
        if said != self._said_why:
            what = f"the broker at {self.config.address} {refused}; {why}" if refused else \
                f"cannot reach {self.config.address} ({why})"
            log.warning("mqtt: %s; retrying every %d s at most, classification goes on and changes wait in a queue "
                        "(up to %d)", what, RECONNECT_MAX_S, self.config.queue_changes)
            self._said_why = said

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and not self._closing:
            with self._lock:
                self.figures["disconnects"] += 1
            self._unreachable("the connection was lost")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        config = self.config
        text = message.payload.decode("utf-8", "replace").strip().lower()
        if message.topic == config.topic("set"):
            if text in ("pause", "resume"):
                (self.paused.set if text == "pause" else self.paused.clear)()
                self.pause_commands += 1
                client.publish(config.topic("mode"), "paused" if text == "pause" else "running", qos=QOS, retain=True)
                with self._lock:
                    self.figures["commands"] += 1
                log.warning("mqtt: classification %s by %s", "paused" if text == "pause" else "resumed", message.topic)
            else:
                log.warning("mqtt: %s takes `pause` or `resume`; received %r, ignored", message.topic, text[:40])
        elif message.topic in config.ha_status_topics and text == "online":
            # Home Assistant (re)started: it forgets discovered entities until it hears them again.
            self._publish_discovery(client)
            self._publish_current(client)


class MqttSink(Sink):
    """Each state change: the event, the retained state and (with discovery) the snapshot, in order."""

    name = "mqtt"
    changes_only = True

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        self.wants_frames = bridge.config.ha_prefix is not None  # the image entity shows the change's frame

    def start(self) -> None:
        self.bridge.start(self.controls.paused if self.controls is not None else None)

    def handle(self, result: FrameResult) -> None:
        change, state = result.change, result.state
        event = {**change.as_dict(), "device": self.bridge.config.device}
        payload = state.as_dict() if state is not None else {"label": change.state, "score": change.score,
                                                               "since": change.time}
        jpeg = None
        if self.wants_frames and result.image is not None:
            jpeg = snapshot_jpeg(result.annotated())
        self.bridge.queue_change(_Change(json.dumps(event).encode(), json.dumps(payload).encode(), jpeg))

    def close(self) -> None:
        self.bridge.close()

    def summary(self) -> dict:
        return self.bridge.summary()


class MqttStatsSink(Sink):
    """Every --mqtt-stats seconds: frame rate, median stage times and frames the model missed, over that window.

    A periodic sink (sinks.Sink.period): it never costs the loop a queue put or a thread wake per frame; its
    thread takes the frames' records in batches, at most STATS_TICK_S apart, and publishes every `stats_every`.
    """

    name = "mqtt-stats"

    def __init__(self, bridge: MqttBridge, every: int = 1) -> None:
        self.bridge, self.every = bridge, every
        stats_every = bridge.config.stats_every
        self._ticks_per_window = max(1, math.ceil(stats_every / STATS_TICK_S))
        self.period = stats_every / self._ticks_per_window  # the window in equal ticks, each STATS_TICK_S at most
        self._ticks = 0
        self._ms: dict[str, deque] = {}
        self._dropped = 0
        self._previous: tuple[int, int] | None = None  # (frame index, pause/resume count) of the last frame seen
        self._frames_at_start = 0
        self._started = time.monotonic()

    def tick(self, records: list[dict], frames: int) -> None:
        if records:
            self._take(records)
        self._ticks += 1
        if self._ticks % self._ticks_per_window == 0:
            now = time.monotonic()
            self.bridge.publish_stats(self._stats(now, frames))
            self._ms, self._dropped, self._started, self._frames_at_start = {}, 0, now, frames

    def _take(self, records: list[dict]) -> None:
        """Frames the model was meant to see (every --every-th one) between two it classified, but did not (a
        live source outran it), and the stage times, from one batch of records.

        The indices only grow (the grabber counts what it reads), so the frames missed in a batch are its span
        less what was classified: two records read, not all. Only a batch with a pause or resume in it is
        walked, so that its largest gap, the pause, is not counted as missed. The stage times are taken from
        at most STATS_TICK_SAMPLES records spread evenly over the batch.
        """
        every, commands = self.every, self.bridge.pause_commands
        previous = self._previous[0] // every if self._previous is not None else records[0]["frame"] // every - 1
        if self._previous is None or commands == self._previous[1]:
            self._dropped += max(0, records[-1]["frame"] // every - previous - len(records))
        else:
            steps = np.diff(np.asarray([previous] + [r["frame"] // every for r in records], np.int64)) - 1
            steps[np.argmax(steps)] = 0  # paused and resumed since the last batch: that gap is the pause, not a loss
            self._dropped += int(np.maximum(steps, 0).sum())
        self._previous = (records[-1]["frame"], commands)
        sample = records[::max(1, len(records) // STATS_TICK_SAMPLES)]
        for stage in records[-1]["ms"]:
            if stage not in self._ms:
                self._ms[stage] = deque(maxlen=STATS_SAMPLES)
            self._ms[stage].extend([record["ms"][stage] for record in sample])

    def _stats(self, now: float, frames: int) -> dict:
        seconds, count = now - self._started, frames - self._frames_at_start
        return {"fps": round(count / seconds, 2) if seconds > 0 else 0.0,
                "ms": {s: round(float(np.median(values)), 3) for s, values in self._ms.items() if values},
                "frames": count, "dropped": self._dropped, "seconds": round(seconds, 2),
                "paused": self.bridge.paused.is_set(), "time": round(time.time(), 3)}
