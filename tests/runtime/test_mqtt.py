"""MQTT and Home Assistant discovery against a real Mosquitto broker, with the real tiny fixture models.

A test camera (`Scene`) is a live source whose frames the test turns black or white, so the debounced
state changes when the test says; a paho subscriber checks what reached the broker.
"""
from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime import mqtt
from edgeclf.runtime.model import Model
from edgeclf.runtime.sinks import CallbackSink, Sinks
from edgeclf.runtime.stream import StreamOptions, StreamSummary, run_stream
from tests.mosquitto import OPENSSL, Broker, Subscriber, free_port, needs_mosquitto, needs_paho, poll


class Scene:
    """A live camera that films a black or a white card, as the test chooses, at about 100 frames/s."""

    name, live = "scene", True

    def __init__(self, value: int = 0) -> None:
        self.value, self.reads = value, 0

    def read(self) -> np.ndarray:
        time.sleep(0.01)
        self.reads += 1
        return np.full((24, 32, 3), self.value, np.uint8)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def model(tiny_float32):
    return Model(tiny_float32)


@pytest.fixture(scope="module")
def labels(model):
    dark, bright = (model.labels[int(np.argmax(model.predict(np.full((16, 16, 3), v, np.uint8))[0]))] for v in (0, 255))
    assert dark != bright, "the fixture model must tell a black frame from a white one"
    return {0: dark, 255: bright}


class Camera:
    """run_stream on a Scene in a thread, with the MQTT sinks of `config` and a callback that records changes."""

    def __init__(self, model: Model, config: mqtt.MqttConfig, value: int = 0) -> None:
        self.scene, self.changes, self.summary = Scene(value), [], None
        self._stop = threading.Event()
        built = mqtt.build_sinks(config, model.labels, "digits_tiny", 1)
        self.bridge = built[0].bridge
        sinks = Sinks(built + [CallbackSink(lambda r: self.changes.append(r.change), "changes", changes_only=True)])
        self.sinks = sinks
        self._thread = threading.Thread(target=self._run, args=(model, sinks), daemon=True)
        self._thread.start()

    def _run(self, model: Model, sinks: Sinks) -> None:
        self.summary = run_stream(model, self.scene, StreamOptions(confirm=3), sinks, self._stop.is_set)

    def show(self, value: int, changes: int) -> None:
        """Films `value` until the camera has decided its `changes`-th change."""
        self.scene.value = value
        deadline = time.monotonic() + 15
        while len(self.changes) < changes:
            assert self._thread.is_alive(), "the camera loop ended"
            assert time.monotonic() < deadline, f"no state change to {value} within 15 s: {self.changes}"
            time.sleep(0.01)

    def stop(self) -> StreamSummary:
        self._stop.set()
        self._thread.join(30)
        return self.summary


def _logged(caplog, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


def _config(port: int, device: str = "cam", **kwargs) -> mqtt.MqttConfig:
    kwargs.setdefault("stats_every", 0.3)
    return mqtt.MqttConfig("127.0.0.1", port, "test", device, **kwargs)


def _json(message) -> dict:
    return json.loads(message.payload)


def _retained(port: int, topic: str, timeout: float = 15.0, until=lambda message: True):
    """The retained message of `topic`, as a client connecting now is told it (waits until there is one that
    satisfies `until`; returns the last one seen after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = Subscriber(port, [topic])
        try:
            time.sleep(0.2)  # a retained message comes right after the SUBACK
            found = [m for m in fresh.on(topic) if m.retain]
        finally:
            fresh.close()
        if found and (until(found[-1]) or time.monotonic() > deadline):
            return found[-1]
        assert time.monotonic() < deadline, f"no retained message on {topic} within {timeout} s"


# --- options: checked before anything starts ---------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("http://broker/x", "must be an mqtt:// or mqtts:// URL"),
    ("mqtt:///edgeclf", "needs a host"),
    ("mqtt://broker:99999/x", "needs a host and, if given, a port in 1-65535"),
    ("mqtt://broker/a/#", "without +, #"),
    ("mqtt://user:secret@broker/x", "put it in $EDGECLF_MQTT_PASSWORD or in a file given with --mqtt-password-file"),
])
def test_bad_mqtt_urls_are_refused_with_the_fix(url, message):
    with pytest.raises(mqtt.MqttError, match=message.replace("$", r"\$").replace("+", r"\+")) as error:
        mqtt.from_options(url)
    assert "secret" not in str(error.value)


def test_url_parts_and_defaults():
    config = mqtt.from_options("mqtts://pi@broker.lan/home/cams", device="gate", environ={"EDGECLF_MQTT_PASSWORD": "pw"})
    assert (config.host, config.port, config.prefix, config.tls, config.username, config.password) == \
        ("broker.lan", 8883, "home/cams", True, "pi", "pw")
    assert config.topic("state") == "home/cams/gate/state"
    plain = mqtt.from_options("mqtt://10.0.0.2", device="gate", environ={})
    assert (plain.port, plain.prefix, plain.password) == (1883, "edgeclf", None)


def test_password_file_must_be_owner_only(tmp_path):
    secret = tmp_path / "mqtt.pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with pytest.raises(mqtt.MqttError, match=f"^--mqtt-password-file {secret}: mode 0644 lets other users read it; a file "
                       f"holding the broker password must be its owner's only \\(0600 or 0400\\)\\. Run: chmod 600 {secret}$"):
        mqtt.from_options("mqtt://u@broker/x", password_file=str(secret), device="d")
    secret.chmod(0o600)
    assert mqtt.from_options("mqtt://u@broker/x", password_file=str(secret), device="d").password == "s3cret"
    with pytest.raises(mqtt.MqttError, match="needs a user name; put it in the URL: --mqtt mqtt://USER@broker"):
        mqtt.from_options("mqtt://broker/x", password_file=str(secret), device="d")


@pytest.mark.parametrize("args, message", [
    (["--mqtt-ca", "ca.pem", "--mqtt", "mqtt://b/x"], "--mqtt-ca is for a TLS broker"),
    (["--ha-discovery"], "--ha-discovery needs --mqtt URL"),
    (["--mqtt", "mqtt://b/x", "--alert", "3"], "--alert LABEL makes a Home Assistant binary_sensor; add --ha-discovery"),
    (["--mqtt", "mqtt://b/x", "--ha-discovery", "--alert", "cat"], "--alert 'cat' is not one of"),
    (["--mqtt", "mqtt://b/x", "--device", "my cam"], "--device must be letters, digits, _ and -"),
    (["--mqtt", "mqtt://b/x", "--mqtt-keepalive", "0"], "--mqtt-keepalive must be in [1, 65535]"),
])
def test_camera_refuses_bad_mqtt_options_in_one_line(tiny_int8, tmp_path, args, message):
    (tmp_path / "ca.pem").write_text("not used")
    result = CliRunner().invoke(cli, ["camera", str(tiny_int8), "--source", str(tmp_path), *args],
                                env={"EDGECLF_MQTT_PASSWORD": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@needs_paho
def test_stats_count_frames_the_model_missed_but_not_a_pause():
    bridge = mqtt.MqttBridge(_config(1, stats_every=3600), ["a", "unknown"], "m")  # never started: no broker needed
    stats = mqtt.MqttStatsSink(bridge, every=2)
    ms = {"capture": 1.0, "preprocess": 2.0, "invoke": 3.0, "post": 4.0}
    assert stats.period == 1.0  # a tick a second, the stats published every 3600th
    stats.tick([{"frame": frame, "ms": ms} for frame in (0, 2, 4, 10, 12)], 5)  # 6 and 8 never reached the model
    bridge.pause_commands += 2  # paused and resumed: frames 14-98 were read while paused
    stats.tick([{"frame": frame, "ms": ms} for frame in (100, 102)], 7)
    figures = stats._stats(time.monotonic(), 7)
    assert figures["dropped"] == 2 and figures["frames"] == 7 and figures["ms"] == ms


# --- a real broker -----------------------------------------------------------------------------------

@needs_mosquitto
def test_state_events_stats_and_pause_resume(model, labels, tmp_path):
    with Broker(tmp_path / "broker") as broker:
        watcher = Subscriber(broker.port, ["test/#"])
        camera = Camera(model, _config(broker.port), value=0)
        state = "test/cam/state"
        watcher.wait_for(lambda: [m for m in watcher.on(state) if _json(m)["label"] == labels[0]], what="the first state")
        camera.show(255, 2)
        watcher.wait_for(lambda: len(watcher.on("test/cam/events")) == 2, what="two events")
        watcher.wait_for(lambda: len(watcher.on("test/cam/stats")) >= 2, what="stats")

        # pause: frames are still read, none is classified, so the white-to-black turn goes unseen
        watcher.publish("test/cam/set", "pause")
        watcher.wait_for(lambda: [m for m in watcher.on("test/cam/mode") if m.text == "paused"], what="mode paused")
        reads = camera.scene.reads
        camera.scene.value = 0
        watcher.wait_for(lambda: camera.scene.reads > reads + 20, what="frames read while paused")
        assert len(camera.changes) == 2
        watcher.publish("test/cam/set", "resume")
        camera.show(0, 3)
        watcher.wait_for(lambda: len(watcher.on("test/cam/events")) == 3, what="the event after resuming")
        summary = camera.stop()
        watcher.wait_for(lambda: [m for m in watcher.on("test/cam/availability") if m.text == "offline"],
                         what="offline at a clean exit")

        late = Subscriber(broker.port, ["test/#"])  # what a client that connects now is told: the retained topics
        late.wait_for(lambda: late.on("test/cam/availability") and late.on(state) and late.on("test/cam/mode"),
                      what="the retained topics")
        retained = {m.topic: m for m in late.messages}
        watcher.close(), late.close()

    events = [_json(m) for m in watcher.on("test/cam/events")]
    assert [(e["previous"], e["state"]) for e in events] == [(None, labels[0]), (labels[0], labels[255]),
                                                            (labels[255], labels[0])]
    assert [e["frame"] for e in events] == [c.frame for c in camera.changes] and events[0]["device"] == "cam"
    assert not any(m.retain for m in watcher.on("test/cam/events"))
    assert all(retained[t].retain for t in retained) and "test/cam/events" not in retained
    assert retained["test/cam/availability"].text == "offline" and retained["test/cam/mode"].text == "running"
    assert set(_json(retained[state])) == {"label", "score", "since"} and _json(retained[state])["label"] == labels[0]
    stats = _json(watcher.on("test/cam/stats")[0])
    assert stats["fps"] > 0 and set(stats["ms"]) == {"capture", "preprocess", "invoke", "post"} and stats["dropped"] >= 0
    assert summary.paused > 0 and summary.sinks["mqtt"]["published"] == 3 and summary.sinks["mqtt"]["commands"] == 2
    assert summary.sinks["mqtt"]["queue_overflow"] == 0 and summary.sinks["mqtt"]["unsent"] == 0


@needs_mosquitto
def test_outage_queues_changes_in_order_and_a_restarted_broker_gets_the_current_state(model, labels, tmp_path):
    broker = Broker(tmp_path / "broker", persistence=True).start()
    # A persistent session (kept by the broker across its restart), so the subscriber is told what was
    # published while it was reconnecting too.
    watcher = Subscriber(broker.port, ["test/#"], clean_session=False)
    camera = Camera(model, _config(broker.port, queue_changes=2), value=255)
    try:
        watcher.wait_for(lambda: watcher.on("test/cam/state"), what="the first state")
        broker.stop()
        # The camera learns of it when paho's thread reads the closed socket: a change decided before that is
        # already paho's (QoS 1, sent again after the reconnect), not the queue's, and the count below is another.
        watcher.wait_for(lambda: not camera.bridge.connected.is_set(), what="the camera to see the broker gone")
        camera.show(0, 2)
        camera.show(255, 3)
        camera.show(0, 4)  # three changes while the broker is away; the queue holds two: the oldest goes
        broker.start()
        watcher.wait_for(lambda: len(watcher.on("test/cam/events")) >= 1 + 2, what="the queued changes", timeout=20)
        is_current = lambda message: _json(message)["label"] == labels[0]  # noqa: E731
        current = _retained(broker.port, "test/cam/state", until=is_current)
        # A restart that forgot every retained message, with no change since: the camera puts the current
        # state back on its own.
        broker.stop()
        broker.forget()
        broker.start()
        again = _retained(broker.port, "test/cam/state", until=is_current)
        availability = _retained(broker.port, "test/cam/availability")
    finally:
        summary = camera.stop()
        watcher.close()
        broker.stop()
    # A persistent session is at-least-once to the subscriber too: what the broker had sent it without getting the
    # PUBACK before it stopped comes again (dup); that is the broker's redelivery, not a second publish by the camera.
    events = [_json(m) for m in watcher.on("test/cam/events") if not m.dup]
    changes = [(c.previous, c.state) for c in camera.changes]
    assert [(e["previous"], e["state"]) for e in events] == [changes[0]] + changes[2:]
    assert _json(current)["label"] == _json(again)["label"] == labels[0]
    assert availability.text == "online"
    figures = summary.sinks["mqtt"]
    assert figures["queue_overflow"] == 1 and figures["published"] == 3 and figures["unsent"] == 0
    assert figures["connects"] == 3 and figures["disconnects"] == 2


def test_a_user_without_a_password_is_said_at_start(caplog):
    config = mqtt.from_options("mqtt://cam@broker/x", device="d", environ={})
    assert config.username == "cam" and config.password is None  # some brokers take a user alone: not refused
    lines = [r.getMessage() for r in caplog.records if "no password was given" in r.getMessage()]
    assert len(lines) == 1 and "$EDGECLF_MQTT_PASSWORD or --mqtt-password-file FILE" in lines[0]


def test_stats_templates_give_a_number_or_none_also_while_paused(labels):
    """Home Assistant renders each value_template with the stats JSON: a number, or "None" (the sensor is then
    unknown); never an undefined value (a warning in its log, and the last value left shown)."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 renders the templates as Home Assistant does")
    config = _config(1883, ha_prefix="homeassistant")
    _, payload = mqtt.discovery(config, labels, "digits_tiny", "0")
    templates = [c["value_template"] for c in payload["cmps"].values() if c.get("state_topic") == config.topic("stats")]
    running = {"fps": 29.8, "ms": {"capture": 1.0, "preprocess": 0.4, "invoke": 3.2, "post": 0.1}, "dropped": 0}
    paused = {"fps": 0.0, "ms": {}, "dropped": 0, "paused": True}  # as MqttStatsSink sends it while paused
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)  # an undefined value raises here
    for stats, invoke in ((running, "3.2"), (paused, "None")):
        rendered = [environment.from_string(t).render(value_json=stats) for t in templates]
        assert len(rendered) == 3 and invoke in rendered and all(r == "None" or float(r) >= 0 for r in rendered)


@needs_mosquitto
def test_a_broker_that_comes_up_and_refuses_the_login_is_said_after_it_was_unreachable(model, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgeclf.runtime.mqtt")
    broker = Broker(tmp_path / "broker", users={"cam": "right horse"})  # not started yet: the Pi booted first
    config = mqtt.from_options(f"mqtt://cam@127.0.0.1:{broker.port}/test", device="cam",
                               environ={"EDGECLF_MQTT_PASSWORD": "wrong"})
    camera = Camera(model, config, value=0)
    try:
        poll(lambda: _logged(caplog, "nothing listens on port"), what="the unreachable broker to be said")
        broker.start()
        poll(lambda: _logged(caplog, "refused the login of user 'cam'"), what="the refused login to be said")
    finally:
        camera.stop()
        broker.stop()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mqtt: ")]
    assert sum("refused the login" in line for line in said) == 1  # once, not once per retry


@needs_mosquitto
def test_another_discovery_prefix_still_hears_home_assistant_restart_on_its_birth_topic(model, tmp_path):
    """Home Assistant's birth topic (homeassistant/status) is its own setting, not derived from the discovery prefix."""
    with Broker(tmp_path / "broker") as broker:
        watcher = Subscriber(broker.port, ["myha/#"])
        camera = Camera(model, _config(broker.port, ha_prefix="myha"), value=0)
        topic = "myha/device/edgeclf_cam/config"
        try:
            watcher.wait_for(lambda: watcher.on(topic), what="the discovery payload")
            for sent, birth_topic in enumerate(("homeassistant/status", "myha/status"), start=2):
                watcher.publish(birth_topic, "online")
                watcher.wait_for(lambda: len(watcher.on(topic)) == sent, what=f"discovery again after {birth_topic}")
        finally:
            camera.stop()
            watcher.close()


@needs_mosquitto
def test_home_assistant_discovery_follows_the_documented_fields(model, labels, tmp_path):
    alert = labels[255]
    with Broker(tmp_path / "broker") as broker:
        watcher = Subscriber(broker.port, ["homeassistant/#", "test/#"])
        payloads = []
        for run in range(2):  # unique_ids must not change between runs
            camera = Camera(model, _config(broker.port, ha_prefix="homeassistant", alerts=(alert,)), value=0)
            topic = "homeassistant/device/edgeclf_cam/config"
            watcher.wait_for(lambda: watcher.on(topic), what="the discovery payload")
            if run == 0:
                camera.show(0, 1)
                camera.show(255, 2)
                watcher.wait_for(lambda: watcher.on("test/cam/snapshot"), what="a snapshot")
                jpeg = _retained(broker.port, "test/cam/snapshot")
                watcher.publish("homeassistant/status", "online")  # Home Assistant restarted
                watcher.wait_for(lambda: len(watcher.on(topic)) == 2, what="discovery sent again")
                watcher.publish("test/cam/set", "pause")  # what the switch sends
                watcher.wait_for(lambda: [m for m in watcher.on("test/cam/mode") if m.text == "paused"], what="paused")
            camera.stop()
            payloads.append(_json(watcher.on(topic)[-1]))
            watcher.messages.clear()
        watcher.close()

    payload = payloads[0]
    assert {"dev", "o", "cmps"} <= set(payload) and payload["o"]["name"] == "edgeclf"
    assert payload["dev"]["ids"] == ["edgeclf_cam"] and payload["dev"]["name"] == "cam"
    assert payload["availability"] == [{"topic": "test/cam/availability", "payload_available": "online",
                                         "payload_not_available": "offline"}]
    components = payload["cmps"]
    assert all(set(c) >= {"p", "unique_id"} and c["p"] in {"sensor", "binary_sensor", "image", "switch"}
               for c in components.values())
    by_platform = {}
    for key, component in components.items():
        by_platform.setdefault(component["p"], []).append(component)
    enum = components["state"]
    assert enum["device_class"] == "enum" and enum["options"] == [*dict.fromkeys([*model.labels, "unknown"])]
    assert "state_class" not in enum and "unit_of_measurement" not in enum
    assert enum["state_topic"] == "test/cam/state" and enum["value_template"] == "{{ value_json.label }}"
    image = by_platform["image"][0]
    assert image["image_topic"] == "test/cam/snapshot" and image["content_type"] == "image/jpeg"
    switch = by_platform["switch"][0]
    assert switch["command_topic"] == "test/cam/set" and switch["state_topic"] == "test/cam/mode"
    assert (switch["payload_on"], switch["payload_off"], switch["state_on"], switch["state_off"]) == \
        ("resume", "pause", "running", "paused")
    assert [b["value_template"] for b in by_platform["binary_sensor"]] == \
        ["{{ 'ON' if value_json.label == %s else 'OFF' }}" % json.dumps(alert)]
    diagnostic = [c for c in components.values() if c.get("entity_category") == "diagnostic"]
    assert {c["value_template"] for c in diagnostic} >= {"{{ value_json.fps }}",
                                                          "{{ value_json.ms.invoke | default(None) }}"}
    assert len({c["unique_id"] for c in components.values()}) == len(components)
    assert {k: c["unique_id"] for k, c in components.items()} == \
        {k: c["unique_id"] for k, c in payloads[1]["cmps"].items()}
    assert jpeg.payload[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(jpeg.payload, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == (24, 32)


@needs_mosquitto
def test_user_and_password_and_an_unreachable_broker(model, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgeclf.runtime.mqtt")
    with Broker(tmp_path / "broker", users={"cam": "right horse"}) as broker:
        watcher = Subscriber(broker.port, ["test/#"], username="cam", password="right horse")
        config = mqtt.from_options(f"mqtt://cam@127.0.0.1:{broker.port}/test", device="cam",
                                   environ={"EDGECLF_MQTT_PASSWORD": "right horse"})
        camera = Camera(model, config, value=0)
        watcher.wait_for(lambda: watcher.on("test/cam/state"), what="the state with a password")
        camera.stop()
        wrong = mqtt.from_options(f"mqtt://cam@127.0.0.1:{broker.port}/test", device="cam2",
                                  environ={"EDGECLF_MQTT_PASSWORD": "wrong"})
        camera = Camera(model, wrong, value=0)
        camera.show(0, 1)
        watcher.wait_for(lambda: _logged(caplog, "refused the login"), what="the broker's refusal to be said")
        refused = camera.stop()
        watcher.close()
    nobody_config = _config(free_port(), device="cam3")  # no broker listens there
    unreachable_address = nobody_config.address
    nobody = Camera(model, nobody_config, value=0)
    nobody.show(0, 1)
    watcher.wait_for(lambda: _logged(caplog, "nothing listens on port"), what="the unreachable broker to be said")
    unreachable = nobody.stop()
    assert unreachable.classified > 0 and refused.classified > 0
    assert refused.sinks["mqtt"]["connects"] == 0 and unreachable.sinks["mqtt"]["unsent"] == 1
    lines = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage() or "refused" in r.getMessage()]
    assert len(lines) == 2, lines  # one line each, not one per retry
    assert lines[0].startswith(f"mqtt: the broker at mqtt://127.0.0.1:{broker.port} refused the login of user 'cam' (Not "
                               "authorized); check the user name in the URL and the password in $EDGECLF_MQTT_PASSWORD "
                               "or --mqtt-password-file; retrying")  # not taken for a broker that is away
    assert "cannot reach" in lines[1] and "nothing listens on port" in lines[1]
    assert "classification goes on" in lines[1]
    unsent = [r.getMessage() for r in caplog.records if "never published" in r.getMessage()]
    assert len(unsent) == 2 and unsent[1] == (f"mqtt: 1 state change(s) were never published: {unreachable_address} "
                                              "was away when the camera stopped (unsent in the summary)")


@needs_mosquitto
@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (it makes the test's certificates)")
def test_mqtts_with_a_ca_file(model, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="edgeclf.runtime.mqtt")
    with Broker(tmp_path / "broker", tls=True) as broker:
        watcher = Subscriber(broker.port, ["test/#"], ca=broker.ca)
        config = mqtt.from_options(f"mqtts://127.0.0.1:{broker.port}/test", ca=str(broker.ca), device="tls", environ={})
        camera = Camera(model, config, value=0)
        watcher.wait_for(lambda: watcher.on("test/tls/state"), what="the state over TLS")
        camera.stop()
        # Without the CA, the broker's certificate cannot be verified: one line, and the camera goes on.
        untrusted = Camera(model, mqtt.from_options(f"mqtts://127.0.0.1:{broker.port}/test", device="tls2", environ={}))
        untrusted.show(0, 1)
        summary = untrusted.stop()
        watcher.close()
    assert summary.classified > 0 and summary.sinks["mqtt"]["connects"] == 0
    lines = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(lines) == 1 and "mqtts://127.0.0.1" in lines[0] and "--mqtt-ca" in lines[0]


# --- the last will: a real `edgeclf camera` process killed with SIGKILL -------------------------------

class _Mjpeg(http.server.BaseHTTPRequestHandler):
    """An HTTP MJPEG camera (as IP cameras serve them) that shows a white card at 20 frames/s."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 255, np.uint8))[1].tobytes()
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                 % (len(jpeg), jpeg))
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@needs_mosquitto
def test_last_will_says_offline_for_a_frozen_camera_and_a_killed_one_within_one_and_a_half_keepalives(tiny_int8,
                                                                                                     tmp_path):
    keepalive = 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mjpeg)
    server.stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Broker(tmp_path / "broker") as broker, open(tmp_path / "camera.log", "wb") as log:
        watcher = Subscriber(broker.port, ["test/#"])
        env = {**os.environ, "EDGECLF_MQTT_PASSWORD": ""}
        process = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(tiny_int8), "--source",
                                    f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", "--quiet",
                                    "--mqtt", f"mqtt://127.0.0.1:{broker.port}/test", "--device", "killed",
                                    "--mqtt-keepalive", str(keepalive), "--mqtt-stats", "0.5"],
                                   stdout=subprocess.DEVNULL, stderr=log, env=env)
        availability = "test/killed/availability"

        def will_after(count: int, timeout: float):
            """The `count`-th offline, and when the broker last heard the camera before it."""
            wills = watcher.wait_for(lambda: [m for m in watcher.on(availability) if m.text == "offline"][count - 1:],
                                     what="the last will", timeout=timeout)
            heard = [m.received for m in watcher.messages if m.topic.startswith("test/killed/")
                     and m.received < wills[0].received]
            return wills[0], max(heard)

        try:
            watcher.wait_for(lambda: watcher.on("test/killed/state") and watcher.on("test/killed/stats"),
                             what="the camera's state and stats", timeout=60)
            assert watcher.on(availability)[-1].text == "online"
            # A frozen camera (as a pulled plug: its socket stays open and silent): only the keepalive tells, so
            # the will within 5 keepalives (10 s; the default 30 s keepalive would take 45 s) shows it was applied.
            # Mosquitto 2.0 checks keepalives coarsely (here 4.2-5.1 s after the last packet for 2 s): no finer bound.
            process.send_signal(signal.SIGSTOP)
            will_after(1, timeout=5 * keepalive)
            frozen = watcher.on(availability)[-1]
            process.send_signal(signal.SIGCONT)  # it wakes, finds the connection gone, reconnects: online again
            watcher.wait_for(lambda: [m for m in watcher.on(availability) if m.received > frozen.received
                                      and m.text == "online"], what="online after the freeze", timeout=15)
            # A killed camera: the kernel closes its socket, and the broker publishes the will at once.
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            killed, killed_heard = will_after(2, timeout=4 * keepalive)
        finally:
            process.kill()
            server.stopping.set()
            server.shutdown()
            watcher.close()
    # The bound: offline within 1.5 keepalives of the last packet the broker had from the killed camera
    # (a stats message every 0.5 s, seen here a moment later). The kernel closes a killed process's socket, so
    # the broker sends the will at once.
    assert killed.received - killed_heard <= 1.5 * keepalive


def test_a_change_published_as_the_connection_drops_is_waited_for_not_raised():
    """paho 2.x returns rc MQTT_ERR_NO_CONN for a QoS 1 message published while the socket is gone, keeps it for
    the reconnect, and from then on is_published() raises: the sender thread must wait for it, not die."""
    paho = pytest.importorskip("paho.mqtt.client")
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dropped")
    info = client.publish("test/cam/state", b"{}", qos=1)  # never connected: as after a drop
    assert info.rc == paho.MQTT_ERR_NO_CONN and info.mid in client._out_messages  # kept for the reconnect
    assert mqtt.MqttBridge._wait(info, time.monotonic() + 0.05) is False  # not yet: no PUBACK
    info._set_as_published()  # what paho does when the PUBACK comes after the reconnect
    assert mqtt.MqttBridge._wait(info, time.monotonic() + 0.05) is True


@needs_mosquitto
def test_stopping_a_client_whose_network_thread_ends_first_is_no_error(tmp_path, monkeypatch):
    """paho-mqtt #872: disconnect() ends the network thread, which clears `client._thread` as it goes, and
    loop_stop() reads that attribute twice. Here the thread always ends between the two reads (as it once did in
    CI under load, failing a test at `fresh.close()`): stop_network, which the camera's close uses, stops cleanly."""
    paho = pytest.importorskip("paho.mqtt.client")
    broker = Broker(tmp_path / "broker").start()
    try:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ending")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        network, stopping = client._thread, threading.current_thread()

        class LateThreading:
            """paho's `threading`, whose current_thread() (called by loop_stop between its two reads) returns
            to the stopping thread only after the network thread has ended."""

            def __getattr__(self, name: str):
                return getattr(threading, name)

            @staticmethod
            def current_thread() -> threading.Thread:
                if threading.current_thread() is stopping:
                    network.join(10)
                return threading.current_thread()

        monkeypatch.setattr(paho, "threading", LateThreading())
        mqtt.stop_network(client)
        assert not network.is_alive()
    finally:
        broker.stop()
