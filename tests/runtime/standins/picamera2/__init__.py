"""A stand-in for picamera2 (no Pi camera exists on this machine): the calls edgeclf uses, with the behaviour
picamera2's manual documents, over a synthetic sensor whose picture the tests know.

- create_video_configuration(main=, lores=) -> a configuration; configure() checks it as picamera2 does:
  lores needs main, must not exceed it, must be YUV420 on a Pi 4 (VC4; RGB888 allowed on the Pi 5's PiSP),
  and YUV420 sizes must be even.
- capture_array(name) / capture_arrays(names) -> arrays as picamera2 lays them out: "RGB888" is B, G, R in
  memory; "YUV420" is (height * 3/2, stride) with rows padded to a stride of 64 bytes.
- capture_metadata()["ScalerCrop"] and set_controls({"ScalerCrop": (x, y, w, h)}) in sensor pixels: every
  stream shows the ScalerCrop region, scaled to its size.
"""
from __future__ import annotations

import cv2
import numpy as np

from picamera2.platform import Platform, get_platform

SENSOR = (2028, 1520)  # width, height: the HQ camera's 2x2-binned mode
instances: list["Picamera2"] = []


def scene() -> np.ndarray:
    """The sensor's picture (RGB): a diagonal gradient with four coloured blocks."""
    width, height = SENSOR
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 255 // (width + height))], axis=2)
    image = image.astype(np.uint8)
    image[200:600, 200:700] = (230, 40, 40)
    image[200:600, 1300:1800] = (40, 200, 60)
    image[900:1300, 200:700] = (40, 60, 220)
    image[900:1300, 1300:1800] = (240, 220, 40)
    return image


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        self.camera_properties = {"PixelArraySize": SENSOR, "Model": "standin"}
        self.config: dict | None = None
        self.started = False
        self.crop = (0, 0, *SENSOR)
        self.captured: list[str] = []  # stream names captured, in order
        self._scene = scene()
        instances.append(self)

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None, **kwargs) -> dict:
        return {"main": {"format": "XBGR8888", "size": (1280, 720), **(main or {})},
                "lores": dict(lores) if lores else None, **kwargs}

    def configure(self, config: dict) -> None:
        main, lores = config["main"], config.get("lores")
        if lores is not None:
            if get_platform() == Platform.VC4 and lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] == "YUV420" and (lores["size"][0] % 2 or lores["size"][1] % 2):
                raise RuntimeError("YUV420 stream sizes must be even")
        self.config = config

    def start(self) -> None:
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False

    def set_controls(self, controls: dict) -> None:
        if "ScalerCrop" in controls:
            x, y, w, h = (int(v) for v in controls["ScalerCrop"])
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > SENSOR[0] or y + h > SENSOR[1]:
                raise ValueError(f"ScalerCrop {controls['ScalerCrop']} outside the sensor")
            self.crop = (x, y, w, h)

    def capture_metadata(self) -> dict:
        return {"ScalerCrop": self.crop, "SensorTimestamp": 0}

    def capture_array(self, name: str = "main") -> np.ndarray:
        if not self.started:
            raise RuntimeError("Camera is not running")
        stream = self.config.get(name)
        if stream is None:
            raise RuntimeError(f"stream {name} is not configured")
        self.captured.append(name)
        x, y, w, h = self.crop
        width, height = stream["size"]
        rgb = cv2.resize(self._scene[y:y + h, x:x + w], (width, height), interpolation=cv2.INTER_AREA)
        if stream["format"] == "YUV420":
            stride = -(-width // 64) * 64
            padded = cv2.copyMakeBorder(rgb, 0, 0, 0, stride - width, cv2.BORDER_REPLICATE)
            return cv2.cvtColor(padded, cv2.COLOR_RGB2YUV_I420)  # (height * 3/2, stride)
        if stream["format"] == "RGB888":
            return np.ascontiguousarray(rgb[:, :, ::-1])  # B, G, R in memory
        raise RuntimeError(f"the stand-in does not render {stream['format']}")

    def capture_arrays(self, names: list[str]) -> tuple[list[np.ndarray], dict]:
        return [self.capture_array(name) for name in names], self.capture_metadata()
