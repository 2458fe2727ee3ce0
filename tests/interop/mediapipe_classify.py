"""Runs MediaPipe Tasks' ImageClassifier on a .tflite model; prints one JSON list of categories.

Runs inside the separate mediapipe venv (make install-mediapipe), never imports edgeclf.
Usage: python mediapipe_classify.py MODEL IMAGE
"""
import json
import sys

from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions
import mediapipe as mp


def main() -> None:
    model, image = sys.argv[1], sys.argv[2]
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=-1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image.create_from_file(image))
    categories = result.classifications[0].categories
    print(json.dumps([{"label": c.category_name, "score": c.score, "index": c.index} for c in categories]))


if __name__ == "__main__":
    main()
