"""edgeclf's runtime: load, run, evaluate and benchmark .tflite classifiers without TensorFlow."""
from edgeclf.runtime.bench import BenchResult, bench
from edgeclf.runtime.evaluate import Evaluation, evaluate
from edgeclf.runtime.folder import DatasetError, ImageFolder, scan
from edgeclf.runtime.model import Model, ModelError
from edgeclf.runtime.preprocess import ImageError, load_image, preprocess

__all__ = ["BenchResult", "bench", "Evaluation", "evaluate", "DatasetError", "ImageFolder", "scan",
           "Model", "ModelError", "ImageError", "load_image", "preprocess"]
