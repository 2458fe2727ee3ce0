"""edgeclf: an edge deployment toolchain for image classifiers."""
__version__ = "0.1.0"
