"""edgeclf: an edge deployment toolchain for image classifiers."""
import os

__version__ = "0.1.0"

# OpenCV reads its image-size limit once, when cv2 loads: set before any edgeclf module imports it, as a second
# line behind the header check of `edgeclf.runtime.preprocess` (its OPENCV_PIXEL_LIMIT; 2^28 instead of OpenCV's
# 2^30). A value already in the environment is kept.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))
