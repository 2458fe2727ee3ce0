"""Stand-in for picamera2.platform: which ISP the camera has (PICAMERA2_STANDIN_PLATFORM=VC4 or PISP)."""
import os
from enum import Enum


class Platform(Enum):
    VC4 = 0
    PISP = 1


def get_platform() -> Platform:
    return Platform[os.environ.get("PICAMERA2_STANDIN_PLATFORM", "VC4")]
