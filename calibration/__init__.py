"""The representative set that calibrates full-integer quantization."""
from edgeclf.calibration.representative import DEFAULT_SIZE, CalibrationError, CalibrationSet, select

__all__ = ["DEFAULT_SIZE", "CalibrationError", "CalibrationSet", "select"]
