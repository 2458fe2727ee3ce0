"""Do the camera's actions fire once per state change, on time, and without slowing classification?

Builds a clip from real photos of three classes (crops of scikit-image's astronaut, coffee and chelsea,
a new crop every second, each class held for several seconds, a few blended frames between classes)
and a classifier for it (the nearest class centroid of a soft colour histogram, its weights computed from other crops,
converted to .tflite by the toolchain: nothing is trained). Then, through `edgeclf camera`:

1. on time: the clip played with --realtime, every action on (a webhook receiver that checks the
   signature, snapshots, GPIO on gpiozero's mock pins, and MQTT through a real Mosquitto broker when
   this checkout has --mqtt); each change is matched against the clip's known change times.
   max_lag_s: from the deciding frame's capture (its time in the clip as played) to the receiver's
   receipt (the webhook) or the subscriber's (MQTT, through the broker). Beside it the same clip with no
   action: `fps_ratio_realtime`, classified frames per second with every action on vs none at the clip's
   own rate (the issue's setup; reported, not judged: a machine that keeps up with a 10 fps clip shows 1.0).
2. an outage: the same with the webhook receiver down for 30 s in the middle of the clip: every
   change must still arrive, in order, once.
3. cost: classification FPS with all actions on vs none (the sinks `edgeclf camera` builds, run in this
   process), a clip looped as fast as it decodes, many runs interleaved, medians compared. Twice:
   - camera rate (`fps_ratio`, the figure the target is judged on): a clip of the same scenes and hold
     times as a 30 fps camera films them, so the loop meets the state changes per classified frame that a
     camera gives it (about 8 in 1000 frames with the quick run's 4 s holds). The ratio is then the share of
     the loop's capacity the actions take at the change rate they are built for. `fps_ratio_steady` takes the
     same runs' last two thirds only (a clock sink, in both configurations, reads the frames' times): without
     the sinks' start (the broker's connection and handshake), which a camera pays once, when it starts.
     `fps_ratio_interval_90`: where the figure lands when the same pairs are drawn again (a bootstrap); on a
     shared two-core machine one pair alone ranges from 0.7 to 1.2, so one run's figure is read with it.
   - stress (`fps_ratio_stress`, reported, not judged): the 10 fps clip looped unthrottled, about 24
     changes in 1000 frames; with a ~0.3 ms model that is ~70 changes a second, each with a webhook
     POST (and a fsynced queue file when changes queue behind it), a fsynced JPEG and three MQTT publishes, a rate no camera produces
     (the debouncer holds a state for --confirm frames; a real scene holds it for seconds).

4. where a change's CPU goes (`cpu_ms_per_change_by_output`): the same sinks, with no camera loop, handed one
   change every 15 ms; each output's own threads' CPU per change (webhook, snapshots, GPIO, MQTT), the loop thread's
   share (handing a change over) and the receivers'. Beside it, `cores_busy_none` in the cost runs: how many of the
   machine's cores the loop fills with no action on, so how much of the actions' CPU it can absorb.

Prints one JSON object on its last line. Targets: missed 0, duplicates 0, max_lag_s <= 1.0, fps_ratio (camera
rate) >= 0.95.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from _photos import make_photo_folder

CLASSES = ("astronaut", "coffee", "chelsea")
FPS = 10.0
CAMERA_FPS = 30.0  # the cost's camera-rate clip: the same scenes as a 30 fps camera films them
AMBIGUOUS = 3  # blended frames between two classes
CONFIRM = 3
SIDE, INPUT = 160, 64
SECRET = "bench-secret"
OUTAGE_S = 30.0
REPO = Path(__file__).resolve().parent.parent


# --- the clip and the model ------------------------------------------------------------------------------

def camera_views(name: str, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` views of one photo as a camera pointed at it would see them: 60-90% of the short side at a
    random place, sometimes mirrored, brightness 0.9-1.1; BGR, SIDE x SIDE."""
    from skimage import data

    photo = getattr(data, name)()
    short = min(photo.shape[:2])
    views = []
    for _ in range(count):
        side = int(short * rng.uniform(0.6, 0.9))
        top, left = (int(rng.integers(0, photo.shape[k] - side + 1)) for k in (0, 1))
        view = photo[top:top + side, left:left + side]
        view = view[:, ::-1] if rng.random() < 0.5 else view
        view = np.clip(view.astype(np.float32) * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
        views.append(cv2.cvtColor(cv2.resize(view, (SIDE, SIDE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
    return views


def make_clip(path: Path, order: list[int], hold_s: float, seed: int = 0,
              fps: float = FPS) -> list[tuple[str | None, str, int]]:
    """Writes the clip (a new crop of the photo every second, as a scene moves); returns the expected changes
    (previous, state, first frame of the new class)."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (SIDE, SIDE))
    hold, crop_every = int(hold_s * fps), int(fps)
    expected, frame, previous_image = [], 0, None
    for k, index in enumerate(order):
        name = CLASSES[index]
        images = [image for image in camera_views(name, -(-hold // crop_every), rng) for _ in range(crop_every)][:hold]
        if previous_image is not None:
            for j in range(1, AMBIGUOUS + 1):  # from the old class to the new one
                w = j / (AMBIGUOUS + 1)
                writer.write(cv2.addWeighted(previous_image, 1 - w, images[0], w, 0))
                frame += 1
        expected.append((CLASSES[order[k - 1]] if k else None, name, frame))
        for image in images:
            writer.write(image)
            frame += 1
        previous_image = images[-1]
    writer.release()
    return expected


def kmeans(pixels: np.ndarray, k: int, rng: np.random.Generator, steps: int = 20) -> np.ndarray:
    centres = pixels[rng.choice(len(pixels), k, replace=False)]
    for _ in range(steps):
        nearest = ((pixels[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([pixels[nearest == i].mean(0) if (nearest == i).any() else centres[i] for i in range(k)])
    return centres


def build_model(path: Path, photos: Path, colours: int = 32, tau: float = 0.01, temperature: float = 0.005) -> None:
    """A soft colour histogram and the nearest class centroid of it, as layers; no training.

    Each pixel is assigned softly to a palette of `colours` (k-means over the photos' pixels) by a 1x1
    convolution and a softmax (-|x - c|^2 / tau, whose |x|^2 term every colour shares); the average over
    the image is its histogram; a dense layer scores (2 mu_k . h - |mu_k|^2) / temperature per class.
    """
    from edgeclf.runtime.metadata import ModelMetadata, write
    from edgeclf.runtime.preprocess import preprocess
    from edgeclf.toolchain._tf import keras
    from edgeclf.toolchain.export import convert_float32

    rng = np.random.default_rng(0)
    images = {name: np.stack([preprocess(p, INPUT) for p in sorted((photos / name).glob("*.jpg"))]).astype(np.float32) / 255
              for name in CLASSES}
    pixels = np.concatenate([x.reshape(-1, 3) for x in images.values()])
    palette = kmeans(pixels[rng.choice(len(pixels), 20000, replace=False)], colours, rng)

    def histogram(x: np.ndarray) -> np.ndarray:
        logits = (2 * x.reshape(len(x), -1, 3) @ palette.T - (palette ** 2).sum(1)) / tau
        soft = np.exp(logits - logits.max(-1, keepdims=True))
        return (soft / soft.sum(-1, keepdims=True)).mean(1)

    centroids = np.stack([histogram(images[name]).mean(0) for name in CLASSES])
    k = keras()
    inputs = k.Input((INPUT, INPUT, 3))
    x = k.layers.Rescaling(1 / 255.0)(inputs)
    assign = k.layers.Conv2D(colours, 1)
    x = k.layers.GlobalAveragePooling2D()(k.layers.Softmax()(assign(x)))
    score = k.layers.Dense(len(CLASSES))
    model = k.Model(inputs, k.layers.Softmax()(score(x)))
    assign.set_weights([(2 * palette.T / tau)[None, None].astype(np.float32), (-(palette ** 2).sum(1) / tau).astype(np.float32)])
    score.set_weights([(2 * centroids.T / temperature).astype(np.float32),
                       (-(centroids ** 2).sum(1) / temperature).astype(np.float32)])
    path.write_bytes(write(convert_float32(model), ModelMetadata(name="photos colour histogram", labels=CLASSES)))


def clip_accuracy(model_path: Path, clip: Path, expected: list) -> float:
    """Top-1 of the model on the clip's unblended frames (a check that the benchmark's model works)."""
    from edgeclf.runtime.model import Model
    from edgeclf.runtime.sources import open_source

    model, source = Model(model_path), open_source(str(clip))
    starts = [e[2] for e in expected] + [10 ** 9]
    right = total = 0
    frame = 0
    while (image := source.read()) is not None:
        k = max(i for i, s in enumerate(starts) if s <= frame) if frame >= starts[0] else None
        if k is not None and frame < starts[k + 1] - AMBIGUOUS:
            label = model.labels[int(np.argmax(model.predict(image[None])[0]))]
            right += label == expected[k][1]
            total += 1
        frame += 1
    source.close()
    return right / total


# --- the receivers ----------------------------------------------------------------------------------------

class Receiver:
    """Webhook receiver on loopback: checks the signature, records (receipt time, body); can go down."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict]] = []
        self.bad_signatures = 0
        self.port = 0
        self._connections: set[socket.socket] = set()
        self._start()

    def _start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as Home Assistant's web server does

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                receiver._connections.add(self.connection)

            def finish(self):
                receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                good = hmac.compare_digest(expected, self.headers.get("X-Edgeclf-Signature", ""))
                if good:
                    receiver.received.append((now, json.loads(body)))
                else:
                    receiver.bad_signatures += 1
                self.send_response(200 if good else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/edgeclf"

    def stop(self) -> None:
        """Down as a stopped process is: the port closed and every kept-alive connection cut."""
        self.server.shutdown()
        self.server.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def outage(self, after_s: float, seconds: float) -> list[float]:
        """Goes down `after_s` from now, for `seconds`; returns [down, up] wall times once they happen."""
        times: list[float] = []

        def run() -> None:
            time.sleep(after_s)
            self.stop()
            times.append(time.time())
            time.sleep(seconds)
            self._start()
            times.append(time.time())

        threading.Thread(target=run, daemon=True).start()
        return times


class Mqtt:
    """A real Mosquitto on a free loopback port and a paho subscriber to PREFIX/+/events."""

    def __init__(self, folder: Path) -> None:
        import paho.mqtt.client as mqtt

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = folder / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.received: list[tuple[float, dict]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
        self.client.on_message = lambda c, u, m: self.received.append((time.time(), json.loads(m.payload)))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/+/events", qos=1)
        for _ in range(100):
            try:
                self.client.connect("127.0.0.1", self.port)
                break
            except OSError:
                time.sleep(0.05)
        self.client.loop_start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/bench"

    def stop(self) -> None:
        from edgeclf.runtime.mqtt import stop_network

        stop_network(self.client)
        self.process.terminate()
        self.process.wait(10)


class Receivers:
    """The cost runs' webhook receiver, broker and subscriber in a process of their own, as they would run on
    another machine: their work (HTTP parsing, signature checks, the subscriber's reads) is not the camera's,
    so it must not share the measured process's CPU time and interpreter lock (it still shares the machine)."""

    def __init__(self, folder: Path, with_mqtt: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, __file__, "--receivers", str(folder)] + (["--mqtt"] if with_mqtt else []),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        urls = json.loads(self.process.stdout.readline())
        self.webhook, self.mqtt = urls["webhook"], urls["mqtt"]

    def cpu_seconds(self) -> float:
        """CPU time the receivers' process and its children (Mosquitto) have used so far: their work shares this
        machine's cores with the camera, as it would not if they ran on another machine."""
        pids, total = [self.process.pid], 0.0
        try:
            pids += [int(p) for p in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()]
        except OSError:
            pass
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> int:
        """Stops them; returns how many webhook bodies had a bad signature."""
        self.process.stdin.close()
        figures = json.loads(self.process.stdout.readline())
        self.process.wait(30)
        return figures["bad_signatures"]


def serve_receivers(folder: Path, with_mqtt: bool) -> None:
    """The child of `Receivers`: prints the URLs, serves until its stdin closes, prints the bad signatures."""
    receiver, broker = Receiver(), (Mqtt(folder) if with_mqtt else None)
    print(json.dumps({"webhook": receiver.url, "mqtt": broker.url if broker else None}), flush=True)
    sys.stdin.read()
    receiver.stop()
    if broker:
        broker.stop()
    print(json.dumps({"bad_signatures": receiver.bad_signatures}), flush=True)


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def mqtt_available() -> str | None:
    """None when MQTT can be measured here, else why not."""
    help_text = subprocess.run([sys.executable, "-m", "edgeclf", "camera", "--help"], capture_output=True, text=True,
                               cwd=REPO).stdout
    if "--mqtt" not in help_text:
        return "this checkout's camera has no --mqtt"
    if mosquitto_binary() is None:
        return "mosquitto is not installed"
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return "paho-mqtt is not installed"
    return None


def gpio_available() -> bool:
    try:
        import gpiozero  # noqa: F401
    except ImportError:
        return False
    return True


# --- runs and scores --------------------------------------------------------------------------------------

def camera(model: Path, clip: Path, extra: list[str], env: dict) -> dict:
    command = [sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(clip), "--quiet",
               "--confirm", str(CONFIRM), *extra]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"summary"')]
    if proc.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])["summary"]


def score(expected: list, received: list[tuple[float, dict]], key: str) -> dict:
    """Matches received changes to the clip's: each expected change once, in order, decided within its window."""
    seen, duplicates, matched, spurious, lags, order = set(), 0, {}, 0, [], []
    # From the first blended frame (a blend may already look like the new class) to a few frames after CONFIRM.
    early, late = AMBIGUOUS, CONFIRM + 2
    for receipt, body in received:
        if body[key] in seen:
            duplicates += 1
            continue
        seen.add(body[key])
        hit = next((k for k, (previous, state, start) in enumerate(expected)
                    if (previous, state) == (body["previous"], body["state"]) and start - early <= body["frame"] <= start + late
                    and k not in matched), None)
        if hit is None:
            spurious += 1
            continue
        matched[hit] = receipt - body["time"]
        order.append(hit)
    lags = list(matched.values())
    return {"published": len(seen), "missed": len(expected) - len(matched), "duplicates": duplicates,
            "spurious": spurious, "in_order": order == sorted(order),
            "max_lag_s": round(max(lags), 3) if lags else None,
            "median_lag_s": round(statistics.median(lags), 3) if lags else None}


def action_sinks(labels: list[str], receivers: "Receivers", queue: Path, snapshots: Path, device: str) -> list:
    """Every action on, built as `edgeclf camera` builds them from its options: the webhook (to the receivers'),
    snapshots, GPIO on gpiozero's mock pins where gpiozero is installed, and MQTT where the receivers have a broker."""
    from edgeclf.runtime.actions import from_options

    gpio = (f"{CLASSES[0]}=17", f"{CLASSES[1]}=27") if gpio_available() else ()
    sinks = from_options(labels, "bench", webhook=receivers.webhook, webhook_queue=str(queue), snapshots=str(snapshots),
                         snapshots_max_mb=5, gpio=gpio)
    if receivers.mqtt:
        from edgeclf.runtime import mqtt

        sinks += mqtt.build_sinks(mqtt.from_options(receivers.mqtt, device=device), labels, "bench")
    return sinks


def ratio_interval(all_runs: list[float], none_runs: list[float], draws: int = 2000, seed: int = 0) -> list[float]:
    """A 90% bootstrap interval of median(all) / median(none): the pairs (adjacent runs, so they share the load of
    their moment) drawn again with replacement `draws` times. Seeded: the same runs give the same interval."""
    rng = np.random.default_rng(seed)
    a, n = np.asarray(all_runs), np.asarray(none_runs)
    picks = rng.integers(0, len(a), (draws, len(a)))
    ratios = np.median(a[picks], axis=1) / np.median(n[picks], axis=1)
    return [round(float(q), 3) for q in np.quantile(ratios, [0.05, 0.95])]


def cost(model_path: Path, clip: Path, folder: Path, pairs: int, frames: int, with_mqtt: bool, run: str) -> dict:
    """Classification FPS and CPU ms per frame (all threads: the sinks' work included) with every action on
    vs none: `pairs` pairs of runs of `frames` frames over the looped clip, as fast as it decodes, the order
    inside a pair alternating. The sinks are the ones `edgeclf camera` builds from the same options."""
    from edgeclf.runtime.model import Model
    from edgeclf.runtime.sinks import Sink, Sinks

    class Clock(Sink):
        """In both configurations: (capture time, frames so far) every 0.1 s, from the feed a periodic sink gets
        (one deque append a frame), so the FPS can also be taken over a run's steady state, its last two thirds:
        without the sinks' start (the broker's connection and handshake), which a camera pays once, when it starts."""

        name, period = "clock", 0.1

        def __init__(self) -> None:
            self.points: list[tuple[float, int]] = []

        def tick(self, records: list[dict], frames: int) -> None:
            if records:
                self.points.append((records[-1]["time"], frames))

        def steady_fps(self) -> float:
            total = self.points[-1][1]
            start = next(point for point in self.points if point[1] >= total / 3)
            return (total - start[1]) / (self.points[-1][0] - start[0]) if self.points[-1][0] > start[0] else 0.0
    from edgeclf.runtime.sources import open_source, play_file
    from edgeclf.runtime.stream import StreamOptions, run_stream

    model = Model(model_path)
    options = StreamOptions(confirm=CONFIRM, max_frames=frames)
    receivers = Receivers(folder / f"receivers-{run}", with_mqtt)
    fps: dict[str, list[float]] = {"none": [], "all": []}
    steady: dict[str, list[float]] = {"none": [], "all": []}
    cpu: dict[str, list[float]] = {"none": [], "all": []}
    changes = 0
    receivers_ms: list[float] = []
    for i in range(pairs):
        for config in ("none", "all") if i % 2 == 0 else ("all", "none"):
            sinks = []
            if config == "all":
                sinks = action_sinks(model.labels, receivers, folder / f"queue-{run}-{i}", folder / f"snapshots-{run}", run)
            source = play_file(open_source(str(clip)), realtime=False, loop=True)
            receivers_before = receivers.cpu_seconds()
            started = time.process_time()
            clock = Clock()
            summary = run_stream(model, source, options, Sinks(sinks + [clock]))
            cpu[config].append((time.process_time() - started) * 1000 / summary.classified)
            steady[config].append(clock.steady_fps())
            if config == "all":
                receivers_ms.append((receivers.cpu_seconds() - receivers_before) * 1000 / max(1, summary.changes))
            fps[config].append(summary.fps)
            changes += summary.changes if config == "all" else 0
            if config == "all" and any(figures.get("errors") for figures in summary.sinks.values()):
                raise RuntimeError(f"a sink failed in the cost runs: {summary.sinks}")
    return {"bad_signatures": receivers.stop(), "fps_ratio": round(statistics.median(fps["all"]) / statistics.median(fps["none"]), 3),
            # How far the figure moves with this machine's noise: the ratio of medians over pairs drawn again.
            "fps_ratio_interval_90": ratio_interval(fps["all"], fps["none"]),
            "fps_all_median": round(statistics.median(fps["all"]), 1),
            "fps_none_median": round(statistics.median(fps["none"]), 1),
            "fps_ratio_pairs": [round(a / n, 2) for a, n in zip(fps["all"], fps["none"])],
            # The pairs' own median: each pair's two runs are adjacent in time, so a load that drifts cancels out.
            "fps_ratio_pairs_median": round(statistics.median(a / n for a, n in zip(fps["all"], fps["none"])), 3),
            # Over each run's last two thirds (steady state: the sinks connected and running), from the frames' times.
            "fps_ratio_steady": round(statistics.median(steady["all"]) / statistics.median(steady["none"]), 3),
            "fps_ratio_steady_pairs": [round(a / n, 2) for a, n in zip(steady["all"], steady["none"])],
            "cpu_fps_ratio_pairs": [round(n / a, 2) for a, n in zip(cpu["all"], cpu["none"])],
            "cpu_ms_per_frame_all": round(statistics.median(cpu["all"]), 3),
            "cpu_ms_per_frame_none": round(statistics.median(cpu["none"]), 3),
            # What FPS would be where the CPU is the bound: the sinks' threads' work included.
            "cpu_fps_ratio": round(statistics.median(cpu["none"]) / statistics.median(cpu["all"]), 3),
            # Cores the loop keeps busy with no action (its capture, invoke and main threads): on a machine whose
            # cores it fills, whatever the actions and the receivers spend comes out of classification.
            "cores_busy_none": round(statistics.median(cpu["none"]) * statistics.median(fps["none"]) / 1000, 2),
            "cores": os.cpu_count(),
            # The actions' CPU per state change, to scale to another change rate and model: (all - none) per change.
            "cpu_ms_per_change": round((statistics.median(cpu["all"]) - statistics.median(cpu["none"]))
                                       * pairs * frames / max(1, changes), 2),
            # The receivers' own CPU per change (HTTP parsing, signature checks, the broker, the subscriber): not the
            # camera's work, but on this machine it takes the same cores (its clock ticks are 10 ms: a coarse figure).
            "receivers_cpu_ms_per_change": round(statistics.median(receivers_ms), 2) if receivers_ms else None,
            "cost_runs": f"{pairs} pairs x {frames} frames",
            "cost_changes_per_1000_frames": round(1000 * changes / (pairs * frames), 1)}


# Which output each of the camera's threads works for, by thread name (sinks.py names a sink's thread
# edgeclf-sink-<name>; the webhook's delivery, MQTT's sender and paho's network thread have their own names).
OUTPUT_THREADS = (("webhook", ("edgeclf-sink-webhook", "edgeclf-webhook-delivery")),
                  ("snapshots", ("edgeclf-sink-snapshots",)), ("gpio", ("edgeclf-sink-gpio",)),
                  ("mqtt", ("edgeclf-sink-mqtt", "edgeclf-mqtt-changes", "paho-mqtt-client-")))


def output_costs(model_path: Path, clip: Path, folder: Path, with_mqtt: bool, changes: int, gap_s: float = 0.015) -> dict:
    """Where a change's CPU goes: the CPU each output's own threads spend per state change (ms), from each thread's
    CPU clock, with no camera loop. The sinks the cost runs use get `changes` changes one at a time, `gap_s` apart
    (each handled alone, as a camera's changes come), with a frame of the clip; the loop's thread is charged for
    handing them over (`publish`), the receivers' process for taking them (ticks of 10 ms: coarser)."""
    from edgeclf.runtime.model import Model
    from edgeclf.runtime.sinks import FrameResult, Sinks
    from edgeclf.runtime.sources import open_source
    from edgeclf.runtime.state import State, StateChange

    labels = Model(model_path).labels
    source = open_source(str(clip))
    image = source.read()  # RGB, as the loop hands it to the sinks
    source.close()
    receivers = Receivers(folder / "receivers-outputs", with_mqtt)
    outputs = Sinks(action_sinks(labels, receivers, folder / "queue-outputs", folder / "snapshots-outputs", "outputs"))
    time.sleep(1.0)  # the sinks' threads started, the broker connected: their start is not a change's cost

    def clocks() -> dict[str, float]:
        seconds = {}
        for thread in threading.enumerate():
            try:
                seconds[thread.name] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, AttributeError, TypeError):  # ended meanwhile, or no per-thread clock on this platform
                pass
        return seconds

    before, receivers_before, loop_s = clocks(), receivers.cpu_seconds(), 0.0
    previous = None
    for i in range(changes):
        label = CLASSES[i % len(CLASSES)]
        now = time.time()
        change = StateChange(previous, label, 0.9, now, i * 120)
        record = {"frame": i * 120, "time": round(now, 3), "top_k": [{"label": label, "score": 0.9}],
                  "ms": {"capture": 0.1, "preprocess": 0.1, "invoke": 0.3, "post": 0.05}, "fps": 30.0,
                  "state": change.as_dict()}
        started = time.thread_time()
        outputs.publish(FrameResult(record, image, State(label, 0.9, now), change))
        loop_s += time.thread_time() - started
        previous = label
        time.sleep(gap_s)
    time.sleep(0.5)  # the last change handled
    after, receivers_after = clocks(), receivers.cpu_seconds()
    outputs.close()
    failed = {name: figures for name, figures in outputs.summary().items() if figures.get("errors")}
    receivers.stop()
    if failed:
        raise RuntimeError(f"a sink failed in the per-output runs: {failed}")
    per_change = {"publish_on_the_loop_thread": round(loop_s * 1000 / changes, 3)}
    for output, prefixes in OUTPUT_THREADS:
        names = [name for name in after if name.startswith(prefixes)]
        if names:
            per_change[output] = round(sum(after[n] - before.get(n, 0.0) for n in names) * 1000 / changes, 3)
    per_change["all_outputs"] = round(sum(per_change.values()), 3)
    per_change["receivers"] = round((receivers_after - receivers_before) * 1000 / changes, 2)
    return per_change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter clips and fewer FPS runs")
    parser.add_argument("--receivers", type=Path, help=argparse.SUPPRESS)  # the cost runs' receivers' process
    parser.add_argument("--mqtt", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receivers:
        serve_receivers(args.receivers, args.mqtt)
        return
    cycle = [0, 1, 2, 0, 2, 1]  # every class follows every other one
    hold_s = 4.0 if args.quick else 6.0
    on_time_order = cycle * (1 if args.quick else 2)
    outage_order = (cycle * 3)[:int((OUTAGE_S + 14) // hold_s) + 1] if args.quick else cycle * 3
    fps_pairs = 12 if args.quick else 20
    fps_frames = 1000 if args.quick else 2000
    # Camera-rate runs long enough for the steady state a camera lives in: in 1,000-frame runs (about half a
    # second here) starting the source and the sinks' threads and connections was most of the difference.
    camera_frames = 3000 if args.quick else 6000
    started = time.perf_counter()
    mqtt_missing = mqtt_available()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photos = make_photo_folder(folder / "photos", 30, seed=1, names=CLASSES)
        model = folder / "photos_colour_histogram.tflite"
        build_model(model, photos)
        clips = {"on_time": (folder / "on_time.mp4", on_time_order), "outage": (folder / "outage.mp4", outage_order)}
        expected = {name: make_clip(path, order, hold_s, seed) for seed, (name, (path, order)) in enumerate(clips.items())}
        accuracy = clip_accuracy(model, clips["on_time"][0], expected["on_time"])
        env = {"EDGECLF_WEBHOOK_SECRET": SECRET, "GPIOZERO_PIN_FACTORY": "mock"}
        gpio = ["--gpio", f"{CLASSES[0]}=17", "--gpio", f"{CLASSES[1]}=27"] if gpio_available() else []

        def actions(receiver: Receiver, broker: Mqtt | None, run: str) -> list[str]:
            return (["--webhook", receiver.url, "--webhook-queue", str(folder / f"queue-{run}"),
                     "--snapshots", str(folder / f"snapshots-{run}"), "--snapshots-max-mb", "5", *gpio]
                    + (["--mqtt", broker.url, "--device", "cam"] if broker else []))

        # 1 and 2 side by side (each plays at 10 FPS, a small load): on time with every action on, and an outage
        # of OUTAGE_S of the webhook receiver in the middle of a longer clip.
        receiver, broker = Receiver(), (Mqtt(folder) if mqtt_missing is None else None)
        outage_receiver = Receiver()
        clip_s = (len(outage_order) * hold_s * FPS + (len(outage_order) - 1) * AMBIGUOUS) / FPS
        times = outage_receiver.outage(max(3.0, (clip_s - OUTAGE_S) / 3), OUTAGE_S)
        runs: dict = {}
        threads = [threading.Thread(target=lambda: runs.__setitem__("on_time", camera(
                       model, clips["on_time"][0], ["--realtime", *actions(receiver, broker, "on_time")], env))),
                   # The same clip at its own rate with no action: the issue's own setup for the FPS comparison
                   # (reported beside the judged capacity ratio; at 10 fps both keep up here).
                   threading.Thread(target=lambda: runs.__setitem__("on_time_none", camera(
                       model, clips["on_time"][0], ["--realtime"], env))),
                   threading.Thread(target=lambda: runs.__setitem__("outage", camera(
                       model, clips["outage"][0], ["--realtime", "--webhook", outage_receiver.url, "--webhook-queue",
                                                   str(folder / "queue-outage")], env)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        on_time, outage = runs["on_time"], runs["outage"]
        time.sleep(1.0)  # let a last message in flight land before the receivers stop
        receiver.stop()
        outage_receiver.stop()
        bad_signatures = receiver.bad_signatures + outage_receiver.bad_signatures
        if broker:
            broker.stop()
        webhook = score(expected["on_time"], receiver.received, "id")
        mqtt = score(expected["on_time"], broker.received, "frame") if broker else None
        snapshots = sorted((folder / "snapshots-on_time").glob("*.jpg"))
        snapshots_valid = sum(cv2.imread(str(p)) is not None for p in snapshots)
        down, up = times if len(times) == 2 else (None, None)
        outage_score = score(expected["outage"], outage_receiver.received, "id")
        decided = [body["time"] for _, body in outage_receiver.received]
        during = sum(1 for t in decided if down is not None and up is not None and down <= t <= up)
        print(json.dumps({"on_time": on_time, "outage": outage, "webhook": webhook, "mqtt": mqtt,
                          "outage_score": outage_score}), file=sys.stderr)

        # 3. Cost, in this process (on a shared machine one run's FPS swings 2x; many short runs interleaved
        # and their medians compare what a handful of whole runs cannot): at a camera's change rate (judged)
        # and on the 10 fps clip looped unthrottled (stress).
        os.environ.update(env)  # the same secret and mock pins for the sinks built in this process
        camera_clip = folder / "camera_rate.mp4"
        make_clip(camera_clip, cycle, hold_s, seed=2, fps=CAMERA_FPS)
        camera_rate = cost(model, camera_clip, folder, fps_pairs, camera_frames, mqtt_missing is None, "camera")
        stress = cost(model, clips["on_time"][0], folder, fps_pairs, fps_frames, mqtt_missing is None, "stress")
        bad_signatures += camera_rate.pop("bad_signatures") + stress.pop("bad_signatures")
        per_output = output_costs(model, camera_clip, folder, mqtt_missing is None, 300 if args.quick else 600)
    sinks = [webhook] + ([mqtt] if mqtt else [])
    result = {
        "benchmark": "actions", "quick": args.quick, "clip_fps": FPS, "hold_s": hold_s,
        "classes": list(CLASSES), "model_clip_accuracy": round(accuracy, 4),
        "changes_expected": len(expected["on_time"]),
        "changes_published": min(s["published"] for s in sinks),
        "duplicates": max(s["duplicates"] for s in sinks),
        "missed": max(s["missed"] for s in sinks),
        "spurious": max(s["spurious"] for s in sinks),
        "in_order": all(s["in_order"] for s in sinks),
        "max_lag_s": max(s["max_lag_s"] for s in sinks if s["max_lag_s"] is not None),
        "frames_dropped": on_time["dropped"],
        "frames_read": on_time["frames_read"],
        # The target is judged on the camera rate (see the module docstring); the stress run is reported beside it.
        # Played with --realtime (as a camera delivers it), every action on vs none: the classified frames per second
        # and the frames the loop had to drop. Reported; the target is judged on the capacity ratio below.
        "fps_ratio_realtime": round(on_time["fps"] / runs["on_time_none"]["fps"], 3) if runs["on_time_none"]["fps"] else None,
        "frames_dropped_realtime_none": runs["on_time_none"]["dropped"],
        "fps_ratio": camera_rate["fps_ratio"], "fps_ratio_judged_on": f"camera rate: a {CAMERA_FPS:.0f} fps clip, "
        f"{camera_rate['cost_changes_per_1000_frames']} changes per 1000 frames", "fps_ratio_stress": stress["fps_ratio"],
        "fps_ratio_interval_90": camera_rate["fps_ratio_interval_90"], "fps_ratio_steady": camera_rate["fps_ratio_steady"],
        "cost_camera_rate": camera_rate, "cost_stress": stress,
        # Where a change's CPU goes, output by output (each one's own threads), with no camera loop beside it.
        "cpu_ms_per_change_by_output": per_output,
        "webhook": webhook, "mqtt": mqtt if mqtt else f"not measured: {mqtt_missing}",
        "snapshots_written": len(snapshots), "snapshots_valid_jpeg": snapshots_valid,
        "gpio": on_time["sinks"].get("gpio", "gpiozero not installed"),
        "bad_signatures": bad_signatures,
        "outage_s": round(up - down, 1) if down and up else None,
        "outage_changes_expected": len(expected["outage"]),
        "outage_changes_decided_while_down": during,
        "outage_missed": outage_score["missed"], "outage_duplicates": outage_score["duplicates"],
        "outage_in_order": outage_score["in_order"], "outage_spurious": outage_score["spurious"],
        "outage_webhook_summary": outage["sinks"]["webhook"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    targets = (result["missed"] == 0 and result["duplicates"] == 0 and result["max_lag_s"] <= 1.0
               and result["fps_ratio"] >= 0.95 and result["outage_missed"] == 0 and result["outage_duplicates"] == 0)
    result["targets_met"] = targets
    print(json.dumps(result))


if __name__ == "__main__":
    main()
