"""Shared paths. Nothing here imports TensorFlow: tests/runtime also runs without it."""
from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_float32() -> Path:
    return FIXTURES / "digits_tiny" / "model_float32.tflite"


@pytest.fixture(scope="session")
def tiny_int8() -> Path:
    return FIXTURES / "digits_tiny" / "model_int8.tflite"


@pytest.fixture(scope="session")
def digits_val() -> Path:
    return FIXTURES / "digits_val"
