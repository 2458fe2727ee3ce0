"""Model registry: each entry builds a tf_keras classifier that takes RGB pixels 0-255.

The model owns its normalization (its first layers), so every exported artifact takes raw
pixels and nothing outside the model has to know how it was trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeclf.runtime.errors import UserError
from edgeclf.toolchain._tf import keras, keras_home
from edgeclf.toolchain.config import MOBILENET_ALPHAS, MOBILENET_V3_ALPHAS


class ModelBuildError(UserError, ValueError):
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
    learning_rate: float = 3e-3  # Adam's rate when --learning-rate is not given
    fine_tune_layers: int = 0  # with pretrained weights: base layers unfrozen in stage 2 (0: one stage)
    alphas: tuple[float, ...] = ()  # the --alpha widths it builds (none: --alpha does not apply)


_REGISTRY: dict[str, tuple[ModelSpec, Callable[..., Any]]] = {}


def register_model(spec: ModelSpec) -> Callable:
    """Registers `builder(num_classes, size, config) -> tf_keras.Model` under spec.name."""

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return decorator


MODEL_FILE_SUFFIXES = (".keras", ".h5")
HEAD_LAYERS = ("pixels", "normalize", "dropout", "classifier")  # the layers edgeclf adds around a base network


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def is_model_file(name: str) -> bool:
    return Path(name).suffix.lower() in MODEL_FILE_SUFFIXES


def get_spec(name: str) -> ModelSpec:
    """The registry entry, or for a model file (--model PATH) a spec read from the file's input."""
    if is_model_file(name):
        model = _load_file(name)
        size = int(model.input_shape[1])
        convs = [layer.name for layer in model.layers if isinstance(layer, keras().layers.Conv2D)]
        return ModelSpec(Path(name).stem, size, size, size, tuple(convs[:1]) + (model.layers[-1].name, "classifier"),
                         f"loaded from {name}")
    return _REGISTRY[name][0]


def learning_rates() -> str:
    """Each registered model's default learning rate, for --help."""
    return ", ".join(f"{name} {spec.learning_rate:g}" for name, (spec, _) in sorted(_REGISTRY.items()))


def input_size(spec: ModelSpec, requested: int | None) -> int:
    """The input side to build at; raises ModelBuildError outside the model's range."""
    size = spec.default_size if requested is None else requested
    if not spec.min_size <= size <= spec.max_size:
        raise ModelBuildError(f"--size for {spec.name} must be in [{spec.min_size}, {spec.max_size}]; "
                              f"received {size}. Use e.g. --size {spec.default_size}.")
    return size


def create_model(config: Any, num_classes: int, size: int) -> Any:
    """Builds the registered model `config.name` (a ModelConfig), or loads a model file, for num_classes outputs."""
    if is_model_file(config.name):
        return _from_file(config.name, num_classes)
    spec, builder = _REGISTRY[config.name]
    return builder(num_classes, size, config)


_LOADED: dict[str, Any] = {}


def _load_file(path: str) -> Any:
    """A tf_keras model file, loaded once per process (get_spec and create_model both need it)."""
    if path not in _LOADED:
        if not Path(path).is_file():
            raise ModelBuildError(f"--model {path}: no such file. Pass a model name ({', '.join(model_names())}) "
                                  "or the path of a tf_keras .keras/.h5 model file.")
        try:
            model = keras().models.load_model(path, compile=False)
        except Exception as exc:  # h5py, zip and deserialization errors have no common base
            raise ModelBuildError(f"--model {path}: not a loadable tf_keras model ({exc}). Save it with "
                                  "model.save('model.h5') or model.save('model.keras') from tf_keras.") from exc
        shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
        if shape is None or len(shape) != 4 or shape[3] != 3 or not shape[1] or shape[1] != shape[2]:
            raise ModelBuildError(f"--model {path}: its input is {model.input_shape}; edgeclf needs one image input "
                                  "(None, S, S, 3): square RGB pixels. Rebuild the model with such an input.")
        _LOADED[path] = model
    return _LOADED[path]


def _from_file(path: str, num_classes: int) -> Any:
    """The file's model taking 0-255 pixels, with a new classifier when its output has another class count.

    A model without a Rescaling/Normalization layer among its first layers is assumed to take [0, 1]
    pixels (what most Keras tutorials train on) and gets a Rescaling(1/255) in front.
    """
    layers = keras().layers
    loaded = _load_file(path)
    scaled = any(isinstance(layer, (layers.Rescaling, layers.Normalization)) for layer in loaded.layers[:4])
    inputs = layers.Input(loaded.input_shape[1:], name="pixels")
    x = inputs if scaled else layers.Rescaling(1 / 255.0, name="normalize")(inputs)
    if loaded.output_shape[-1] == num_classes:
        return keras().Model(inputs, loaded(x), name=Path(path).stem)
    features = keras().Model(loaded.inputs, loaded.layers[-2].output, name=f"{Path(path).stem}_features")
    return keras().Model(inputs, _classifier(features(x), num_classes, 0.0), name=Path(path).stem)


def base_layers(model: Any) -> list:
    """The layers of the network under edgeclf's head, in order (what stage 2 unfreezes from the top)."""
    return [layer for layer in model.layers if layer.name not in HEAD_LAYERS
            and not isinstance(layer, keras().layers.InputLayer)]


def unfreeze_top(model: Any, count: int) -> int:
    """Stage 2 of fine-tuning: the top `count` base layers become trainable, BatchNorm excepted.

    BatchNorm layers stay frozen, which in tf_keras also keeps them in inference mode: their
    ImageNet statistics are not overwritten by a few small batches.

    Returns:
        How many layers were unfrozen.
    """
    layers = base_layers(model)
    unfrozen = 0
    for layer in layers[max(0, len(layers) - count):]:
        if isinstance(layer, keras().layers.BatchNormalization):
            continue
        layer.trainable = True
        unfrozen += 1
    return unfrozen


def follow_steps_with_batchnorm(model: Any, steps_per_epoch: int) -> float | None:
    """Sets every BatchNormalization's momentum so its moving statistics follow training within about a
    quarter of an epoch: 1 - 4 / steps, in [0.5, 0.99]. Returns the momentum (None: no BatchNorm).

    Validation runs on the moving statistics. With a fixed momentum of 0.9 a 300-image folder (10 steps
    an epoch) kept them an epoch or two behind the weights: cnn at 96 px reached 85% training accuracy
    in its second epoch while validation sat at 13%; at momentum 0.5 validation read 81% (measured
    here). Large folders keep a slow average (1,200 images: 0.89; 12,800 and up: 0.99).
    """
    momentum = min(0.99, max(0.5, 1.0 - 4.0 / max(1, steps_per_epoch)))
    norms = [layer for layer in model.submodules if isinstance(layer, keras().layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = momentum
    return momentum if norms else None


def settle_batchnorm(model: Any, images: Any) -> None:
    """Sets every BatchNormalization's moving statistics to those of `images` (one forward pass), for a
    model with random weights that stands in for a trained one (tests, latency benchmarks).

    At initialization the moving statistics are 0 and 1 whatever the layer's input, so activations of a
    deep network shrink block after block (MobileNetV3-Small's last ones to 1e-8): int8 calibration then
    gives scales no trained model has, and XNNPACK declines ops whose input and output scales are more
    than 1024x apart. With the statistics of real activations the scales are those of a trained model.
    """
    norms = [layer for layer in model.submodules if isinstance(layer, keras().layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def is_pretrained(config: Any) -> bool:
    """Whether the model starts from trained weights, so it trains in two stages (frozen base, then fine-tuning)."""
    return get_spec(config.name).fine_tune_layers > 0 and config.weights != "none"


def _pixels_input(size: int, scale: float | tuple = 1 / 255.0, offset: float | tuple = 0.0) -> tuple[Any, Any]:
    layers = keras().layers
    inputs = layers.Input((size, size, 3), name="pixels")
    per_channel = (list(scale) if isinstance(scale, tuple) else scale, list(offset) if isinstance(offset, tuple) else offset)
    return inputs, layers.Rescaling(*per_channel, name="normalize")(inputs)


def _conv_bn(x: Any, filters: int, kernel: int, name: str, stride: int = 1) -> Any:
    """Conv2D (no bias) named `name`, then BatchNormalization named `<name>_bn`."""
    layers = keras().layers
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
    # Momentum 0.9: with small datasets (tens of steps per epoch) the default 0.99 leaves the
    # moving statistics lagging and validation accuracy swinging between epochs.
    return layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)


def _conv_block(x: Any, filters: int, name: str, stride: int = 1) -> Any:
    return keras().layers.ReLU(name=f"{name}_relu")(_conv_bn(x, filters, 3, name, stride))


def _classifier(x: Any, num_classes: int, dropout: float) -> Any:
    layers = keras().layers
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    # float32 scores even under a mixed_float16 policy (a float16 softmax loses small probabilities)
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)


@register_model(ModelSpec("tiny", 32, 8, 256, ("conv1", "classifier"), "two convolutions, for tests"))
def tiny(num_classes: int, size: int, config: Any) -> Any:
    layers = keras().layers
    inputs, x = _pixels_input(size)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras().Model(inputs, _classifier(x, num_classes, 0.0), name="tiny")


CNN_STRIDED_FROM = 64  # input side from which cnn's first convolution has stride 2


@register_model(ModelSpec("cnn", 32, 16, 512, ("conv1", "classifier"),
                          "the tutorials' 3-conv CNN with BatchNorm and global average pooling"))
def cnn(num_classes: int, size: int, config: Any) -> Any:
    """From 64 px the first convolution has stride 2: at 96 px a full-resolution 32-channel layer (and its
    BatchNorm) made epochs 3.7x longer for the same validation accuracy on photo crops (measured here)."""
    layers = keras().layers
    inputs, x = _pixels_input(size)
    x = _conv_block(x, 32, "conv1", stride=2 if size >= CNN_STRIDED_FROM else 1)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = _conv_block(x, 64, "conv2")
    x = layers.MaxPooling2D(name="pool2")(x)
    x = _conv_block(x, 128, "conv3")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras().Model(inputs, _classifier(x, num_classes, 0.2), name="cnn")


def _residual_block(x: Any, filters: int, name: str, stride: int = 1) -> Any:
    """A basic residual block (two 3x3 convs) with a 1x1 projection when the shape changes."""
    layers = keras().layers
    shortcut = x
    y = _conv_block(x, filters, f"{name}_conv1", stride)
    y = _conv_bn(y, filters, 3, f"{name}_conv2")
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, f"{name}_project", stride)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


@register_model(ModelSpec("resnet_mini", 32, 16, 256, ("conv1", "classifier"),
                          "CIFAR-style ResNet: three stages of two basic residual blocks (16, 32, 64 filters)"))
def resnet_mini(num_classes: int, size: int, config: Any) -> Any:
    layers = keras().layers
    inputs, x = _pixels_input(size)
    x = _conv_block(x, 16, "conv1")
    for stage, filters in enumerate((16, 32, 64), 1):
        for block in (1, 2):
            x = _residual_block(x, filters, f"stage{stage}_block{block}", 2 if block == 1 and stage > 1 else 1)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras().Model(inputs, _classifier(x, num_classes, 0.0), name="resnet_mini")


KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _mobilenet_weights_file(alpha: float, size: int) -> str:
    """The file Keras' MobileNetV2 loads for this width and size: its own sizes, else its 224 file; alpha as str(float)."""
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def _imagenet_weights(model: str, name: str, url: str) -> str:
    """The local path of Keras' ImageNet weights file `name`, downloaded from `url` into $KERAS_HOME/models once.

    edgeclf fetches the file Keras would (same name, same URL) itself: tf_keras' own download ignores
    KERAS_HOME and always uses ~/.keras, so the folder an offline message names would not be the one
    it reads. Raises ModelBuildError naming the exact file and folder when the download fails.
    """
    try:
        return keras().utils.get_file(name, url + name, cache_subdir="models", cache_dir=keras_home())
    except Exception as exc:  # download failures surface as several exception types
        target = Path(keras_home()) / "models" / name
        raise ModelBuildError(
            f"ImageNet weights for {model} could not be downloaded ({exc}). Place the file at {target}, "
            "or pass --weights PATH to a weights file, or --weights none to train from scratch.") from exc


@dataclass(frozen=True)
class Application:
    """How a Keras application family becomes an edgeclf model: its input normalization, the base network
    (built on that normalization's output, so the model stays one flat graph) and its ImageNet file."""

    name: str
    scale: float | tuple[float, ...]  # normalize = pixels * scale + offset, per channel when a tuple
    offset: float | tuple[float, ...]
    make: Callable[..., Any]  # make(x, size, config, weights) -> the base, global-average pooled
    imagenet_file: Callable[[Any, int], str]  # (config, size) -> the file Keras would load
    url: str
    after_load: Callable[[Any], None] = lambda base: None  # adapts loaded weights to edgeclf's RGB input
    imagenet_normalize: tuple[Any, Any] | None = None  # (scale, offset) with --weights imagenet, when it differs


def _from_application(app: Application, num_classes: int, size: int, config: Any) -> Any:
    """inputs (RGB 0-255) -> normalize -> the application's base -> dropout -> classifier."""
    weights = config.weights
    scale, offset = app.imagenet_normalize if weights == "imagenet" and app.imagenet_normalize else (app.scale, app.offset)
    inputs, x = _pixels_input(size, scale, offset)
    imagenet = _imagenet_weights(app.name, app.imagenet_file(config, size), app.url) if weights == "imagenet" else None
    try:
        base = app.make(x, size, config, imagenet)
    except ValueError as exc:
        raise ModelBuildError(f"{app.name} cannot be built with alpha={config.alpha}, size={size}: {exc}") from exc
    if weights not in ("imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise ModelBuildError(f"--weights {weights}: no such file. Pass imagenet, none, or the path of an .h5 file.")
        base.load_weights(str(path), by_name=True, skip_mismatch=True)
    if weights != "none":
        app.after_load(base)
        for layer in base.layers:  # stage 1: train the new head on the frozen base
            layer.trainable = False
    else:
        # Keras builds these networks with BatchNorm momentum 0.99-0.999, tuned for ImageNet's 5,000 steps
        # per epoch. Trained from scratch on a small folder, the moving statistics then still hold their
        # initial values after hundreds of steps and validation accuracy sits at chance.
        for layer in base.layers:
            if isinstance(layer, keras().layers.BatchNormalization):
                layer.momentum = 0.9
    outputs = _classifier(base.output, num_classes, 0.2)
    alpha = f"_{config.alpha}" if app.name.startswith("mobilenet") else ""
    return keras().Model(inputs, outputs, name=f"{app.name}{alpha}_{size}")


def _base(application: str, **options: Any) -> Callable[..., Any]:
    def make(x: Any, size: int, config: Any, weights: str | None) -> Any:
        # input_shape as well as input_tensor: from the tensor alone Keras takes the size as undefined
        return getattr(keras().applications, application)(input_tensor=x, input_shape=(size, size, 3),
                                                          include_top=False, weights=weights, pooling="avg",
                                                          **{k: v(config) for k, v in options.items()})

    return make


def _alpha(config: Any) -> float:
    return config.alpha


def _no_preprocessing(config: Any) -> bool:
    return False  # edgeclf's own `normalize` layer scales the pixels


def _minimalistic(config: Any) -> bool:
    return config.minimalistic


MOBILENET_V3_IMAGENET = ((0.75, False), (1.0, False), (1.0, True))  # (alpha, minimalistic) Keras has weights for


def _mobilenet_v3_file(kind: str) -> Callable[[Any, int], str]:
    def name(config: Any, size: int) -> str:
        """Keras has 224 px files only (and loads them at every size): 0.75 and 1.0 wide, minimalistic 1.0."""
        if (float(config.alpha), bool(config.minimalistic)) not in MOBILENET_V3_IMAGENET:
            raise ModelBuildError(
                f"Keras has no ImageNet weights for mobilenet_v3_{kind} with alpha {config.alpha}"
                f"{' (minimalistic)' if config.minimalistic else ''}: it has 0.75 and 1.0, and 1.0 minimalistic. "
                "Use --alpha 1.0 (or 0.75), or --weights none to train from scratch.")
        variant = f"{kind}{'_minimalistic' if config.minimalistic else ''}_224_{float(config.alpha)}_float"
        return f"weights_mobilenet_v3_{variant}_no_top_v2.h5"

    return name


IMAGENET_MEAN_RGB, IMAGENET_STD_RGB = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _efficientnet_imagenet_normalize() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """With weights="imagenet" Keras multiplies EfficientNet's normalized input by 1/sqrt(std) per channel
    (tensorflow#49930); edgeclf loads the same file by path, so its `normalize` layer does it in front instead:
    (a*x + b)/255 - mean == (x/255 - mean)/sqrt(std) for a = 1/sqrt(std), b = 255 * mean * (1 - a)."""
    scale = tuple(1 / math.sqrt(std) for std in IMAGENET_STD_RGB)
    return scale, tuple(255 * mean * (1 - a) for mean, a in zip(IMAGENET_MEAN_RGB, scale))


RESNET_MEAN_RGB = (123.68, 116.779, 103.939)  # Keras' 'caffe' preprocessing: BGR minus these, no scaling


def _rgb_first_conv(base: Any) -> None:
    """Keras' ResNet50 weights expect BGR; edgeclf feeds RGB, so conv1's input channels are reversed once."""
    conv = base.get_layer("conv1_conv")
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel[:, :, ::-1, :], *rest])


MOBILENET_V2 = Application("mobilenet_v2", 1 / 127.5, -1.0, _base("MobileNetV2", alpha=_alpha),
                           lambda config, size: _mobilenet_weights_file(config.alpha, size),
                           KERAS_APPLICATIONS_URL + "mobilenet_v2/")
APPLICATIONS = {
    "mobilenet_v2": MOBILENET_V2,
    **{f"mobilenet_v3_{kind}": Application(
        f"mobilenet_v3_{kind}", 1 / 127.5, -1.0,
        _base(f"MobileNetV3{kind.title()}", alpha=_alpha, minimalistic=_minimalistic,
              include_preprocessing=_no_preprocessing),
        _mobilenet_v3_file(kind), KERAS_APPLICATIONS_URL + "mobilenet_v3/") for kind in ("small", "large")},
    # EfficientNet normalizes inside the base (Rescaling 1/255 and ImageNet mean/std): it takes 0-255 pixels.
    "efficientnet_b0": Application("efficientnet_b0", 1.0, 0.0, _base("EfficientNetB0"),
                                   lambda config, size: "efficientnetb0_notop.h5",
                                   "https://storage.googleapis.com/keras-applications/",
                                   imagenet_normalize=_efficientnet_imagenet_normalize()),
    "resnet50": Application("resnet50", 1.0, tuple(-m for m in RESNET_MEAN_RGB), _base("ResNet50"),
                            lambda config, size: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            KERAS_APPLICATIONS_URL + "resnet/", after_load=_rgb_first_conv),
}


def _register_application(spec: ModelSpec) -> None:
    register_model(spec)(lambda num_classes, size, config: _from_application(APPLICATIONS[spec.name], num_classes,
                                                                              size, config))


# fine_tune_layers: about the top third of each base (MobileNetV2's 54 of 154 layers; ResNet50: its last stage).
_register_application(ModelSpec("mobilenet_v2", 96, 32, 224, ("Conv1", "classifier"),
                                "MobileNetV2 (alpha 0.35-1.4), ImageNet weights when online", learning_rate=1e-3,
                                fine_tune_layers=54, alphas=MOBILENET_ALPHAS))
_register_application(ModelSpec("mobilenet_v3_small", 96, 32, 224, ("Conv", "classifier"),
                                "MobileNetV3-Small (hard-swish, squeeze-excite; --minimalistic without them)",
                                learning_rate=1e-3, fine_tune_layers=70, alphas=MOBILENET_V3_ALPHAS))
_register_application(ModelSpec("mobilenet_v3_large", 96, 32, 224, ("Conv", "classifier"),
                                "MobileNetV3-Large (hard-swish, squeeze-excite; --minimalistic without them)",
                                learning_rate=1e-3, fine_tune_layers=90, alphas=MOBILENET_V3_ALPHAS))
_register_application(ModelSpec("efficientnet_b0", 96, 32, 224, ("stem_conv", "classifier"),
                                "EfficientNetB0 (swish, squeeze-excite)", learning_rate=1e-3, fine_tune_layers=80))
_register_application(ModelSpec("resnet50", 96, 32, 224, ("conv1_conv", "classifier"),
                                "ResNet50 (25.6M parameters: a desktop model, for comparison)", learning_rate=1e-3,
                                fine_tune_layers=33))
