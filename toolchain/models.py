"""Model registry: each entry builds a tf_keras classifier that takes RGB pixels 0-255.

The model owns its normalization (its first layers), so every exported artifact takes raw
pixels and nothing outside the model has to know how it was trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeclf.toolchain._tf import keras


class ModelBuildError(ValueError):
    """A model that cannot be built as asked; the message says the fix."""


@dataclass(frozen=True)
class ModelSpec:
    """What the toolchain needs to know about a registered model."""

    name: str
    default_size: int
    min_size: int
    max_size: int
    dense_layers: tuple[str, ...]  # layers pruning leaves dense (first conv, classifier)
    description: str


_REGISTRY: dict[str, tuple[ModelSpec, Callable[..., Any]]] = {}


def register_model(spec: ModelSpec) -> Callable:
    """Registers `builder(num_classes, size, config) -> tf_keras.Model` under spec.name."""

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return decorator


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    return _REGISTRY[name][0]


def input_size(spec: ModelSpec, requested: int | None) -> int:
    """The input side to build at; raises ModelBuildError outside the model's range."""
    size = spec.default_size if requested is None else requested
    if not spec.min_size <= size <= spec.max_size:
        raise ModelBuildError(f"--size for {spec.name} must be in [{spec.min_size}, {spec.max_size}]; "
                              f"received {size}. Use e.g. --size {spec.default_size}.")
    return size


def create_model(config: Any, num_classes: int, size: int) -> Any:
    """Builds the registered model `config.name` (a ModelConfig) for num_classes outputs."""
    spec, builder = _REGISTRY[config.name]
    return builder(num_classes, size, config)


def _pixels_input(size: int, scale: float = 1 / 255.0, offset: float = 0.0) -> tuple[Any, Any]:
    layers = keras().layers
    inputs = layers.Input((size, size, 3), name="pixels")
    return inputs, layers.Rescaling(scale, offset, name="normalize")(inputs)


def _conv_block(x: Any, filters: int, name: str, stride: int = 1) -> Any:
    layers = keras().layers
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
    # Momentum 0.9: with small datasets (tens of steps per epoch) the default 0.99 leaves the
    # moving statistics lagging and validation accuracy swinging between epochs.
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _classifier(x: Any, num_classes: int, dropout: float) -> Any:
    layers = keras().layers
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="classifier")(x)


@register_model(ModelSpec("tiny", 32, 8, 256, ("conv1", "classifier"), "two convolutions, for tests"))
def tiny(num_classes: int, size: int, config: Any) -> Any:
    layers = keras().layers
    inputs, x = _pixels_input(size)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras().Model(inputs, _classifier(x, num_classes, 0.0), name="tiny")


@register_model(ModelSpec("cnn", 32, 16, 512, ("conv1", "classifier"),
                          "the tutorials' 3-conv CNN with BatchNorm and global average pooling"))
def cnn(num_classes: int, size: int, config: Any) -> Any:
    layers = keras().layers
    inputs, x = _pixels_input(size)
    x = _conv_block(x, 32, "conv1")
    x = layers.MaxPooling2D(name="pool1")(x)
    x = _conv_block(x, 64, "conv2")
    x = layers.MaxPooling2D(name="pool2")(x)
    x = _conv_block(x, 128, "conv3")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras().Model(inputs, _classifier(x, num_classes, 0.2), name="cnn")


def _mobilenet_weights_file(alpha: float, size: int) -> str:
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


@register_model(ModelSpec("mobilenet_v2", 96, 32, 224, ("Conv1", "classifier"),
                          "MobileNetV2 (alpha 0.35-1.4), ImageNet weights when online"))
def mobilenet_v2(num_classes: int, size: int, config: Any) -> Any:
    # MobileNetV2 was trained on [-1, 1] inputs.
    inputs, x = _pixels_input(size, scale=1 / 127.5, offset=-1.0)
    weights = config.weights
    use_imagenet = weights == "imagenet"
    try:
        base = keras().applications.MobileNetV2(input_tensor=x, alpha=config.alpha, include_top=False,
                                                weights="imagenet" if use_imagenet else None, pooling="avg")
    except ValueError as exc:
        raise ModelBuildError(f"mobilenet_v2 cannot be built with alpha={config.alpha}, size={size}: {exc}") from exc
    except Exception as exc:  # download failures surface as several exception types
        if not use_imagenet:
            raise
        target = Path.home() / ".keras" / "models" / _mobilenet_weights_file(config.alpha, size)
        raise ModelBuildError(
            f"ImageNet weights for mobilenet_v2 could not be downloaded ({exc}). Place the file at {target}, "
            "or pass --weights PATH to a weights file, or --weights none to train from scratch.") from exc
    if weights not in ("imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise ModelBuildError(f"--weights {weights}: no such file. Pass imagenet, none, or the path of an .h5 file.")
        base.load_weights(str(path), by_name=True, skip_mismatch=True)
    if use_imagenet:
        for layer in base.layers:  # stage 1: train the new head on the frozen base
            layer.trainable = False
    else:
        # Keras builds MobileNetV2 with BatchNorm momentum 0.999, tuned for ImageNet's 5,000 steps per
        # epoch. Trained from scratch on a small folder, the moving statistics then still hold their
        # initial values after hundreds of steps and validation accuracy sits at chance.
        for layer in base.layers:
            if isinstance(layer, keras().layers.BatchNormalization):
                layer.momentum = 0.9
    outputs = _classifier(base.output, num_classes, 0.2)
    return keras().Model(inputs, outputs, name=f"mobilenet_v2_{config.alpha}_{size}")
