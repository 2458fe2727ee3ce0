"""The representative set that calibrates full-integer quantization."""
from edgeclf.calibration.representative import DEFAULT_SIZE, CalibrationError, CalibrationSet, check, from_folder, select

__all__ = ["DEFAULT_SIZE", "CalibrationError", "CalibrationSet", "check", "from_folder", "select"]
