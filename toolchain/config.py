"""BuildConfig: the frozen, validated description of one build, filled from a YAML file and flags.

Each setting is declared once, as a field made by `setting()`: its default, its `edgeclf build` flag,
help text and choices live there, and the CLI generates its options (and which flag sets which key)
from these fields. Adding a setting is adding a field.

Derived values (the model's default input size, dataset counts...) live in stage results,
never in the config.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from edgeclf.runtime.datasets import BUILTIN_DATASETS
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageError, check_max_pixels
from edgeclf.toolchain.choose import BRIEF_RUN_MARGIN, DEFAULT_ALPHAS, DEFAULT_MODELS, DEFAULT_SIZES
from edgeclf.runtime.errors import UserError

AUGMENT_LEVELS = ("none", "light", "strong")
CLASS_WEIGHTS = ("none", "auto")
IO_TYPES = ("uint8", "int8", "float32")
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # MobileNetV2's widths (Keras has ImageNet weights for each)
MOBILENET_V3_ALPHAS = (0.35, 0.5, 0.75, 1.0)  # built at any; Keras' ImageNet weights: 0.75 and 1.0
PRUNE_BACKENDS = ("any", "xnnpack")
XNNPACK_MIN_SPARSITY = 2 / 3  # XNNPACK runs a 1x1 conv sparse only from this share of zeros
XNNPACK_DEFAULT_SPARSITY = 0.75


def setting(default: Any, help: str = "", *, flag: str | None = None, choices: tuple[str, ...] | None = None,
            metavar: str | None = None, show_default: str | Callable[[], str] | None = None,
            folder: bool = False) -> Any:
    """A config field that is also an `edgeclf build` option.

    Args:
        flag: the option's name when it is not --<field-name> (e.g. --data for data.source).
        choices: the valid values; the option offers exactly these.
        show_default: what --help shows as the default when it is not the value itself (a callable is
            asked when the options are made, e.g. for per-model defaults).
        folder: the value is a folder path.
    """
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "metavar": metavar,
                                            "show_default": show_default, "folder": folder, "option": True})


def _per_model(attribute: str, only_set: bool = False) -> Callable[[], str]:
    """--help text for a default that each registered model sets (e.g. its input size)."""

    def text() -> str:
        from edgeclf.toolchain.models import get_spec, model_names

        values = {name: getattr(get_spec(name), attribute) for name in model_names()}
        return "per model: " + ", ".join(f"{name} {value:g}" for name, value in values.items() if value or not only_set)

    return text


class ConfigError(UserError, ValueError):
    """An invalid build setting; the message states the rule, the value received and the fix."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    source: str = setting("digits", "Image folder (root/<class>/*.jpg, or with train/, val/ [, test/] subfolders) or a "
                                    "built-in: digits (offline), mnist, fashion_mnist, cifar10 (downloaded by Keras once).",
                          flag="--data")
    val_split: float = setting(0.2, "Validation share when the folder has no val/ subfolder (stratified, seeded).")
    augment: str = setting("none", "Training-batch augmentation: flip, rotation, zoom, translation, contrast (light: "
                                   "10 degrees, 10%; strong: 20 degrees, 20%).", choices=AUGMENT_LEVELS)
    flip: bool = setting(True, "Horizontal flips in augmentation; --no-flip for text, digits or left/right classes.")
    class_weight: str = setting("none", "auto: weight the loss by inverse class frequency (unbalanced folders).",
                                choices=CLASS_WEIGHTS)
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, "Pixel budget of one image (width x height), read from its header "
                                                  "before decoding: a larger image is skipped and listed, never decoded.")

    def __post_init__(self) -> None:
        try:
            check_max_pixels(self.max_pixels)
        except ImageError as exc:
            raise ConfigError(str(exc)) from None
        _require(isinstance(self.source, str) and self.source != "",
                 f"--data must be a folder or one of {', '.join(BUILTIN_DATASETS)}; received {self.source!r}. "
                 "Use e.g. --data photos/ or --data digits.")
        _require(isinstance(self.val_split, (int, float)) and 0.0 < self.val_split < 1.0,
                 f"--val-split must be in (0, 1); received {self.val_split!r}. Use e.g. --val-split 0.2.")
        _require(self.augment in AUGMENT_LEVELS,
                 f"--augment must be one of {', '.join(AUGMENT_LEVELS)}; received {self.augment!r}. Use e.g. --augment light.")
        _require(isinstance(self.flip, bool), f"data.flip is a switch (true/false); received {self.flip!r}.")
        _require(self.class_weight in CLASS_WEIGHTS,
                 f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}; received {self.class_weight!r}. "
                 "Use --class-weight auto for unbalanced classes.")


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting("cnn", "Model: cnn, resnet_mini, tiny, mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, "
                               "efficientnet_b0, resnet50, or a tf_keras .keras/.h5 file whose input is an image.",
                        flag="--model")
    size: int | None = setting(None, "Input side in pixels.", show_default=_per_model("default_size"))
    alpha: float = setting(1.0, "Width multiplier of mobilenet_v2 and mobilenet_v3_small/large.")
    weights: str = setting("imagenet", "Weights of the Keras application models (mobilenet_*, efficientnet_b0, "
                                       "resnet50): imagenet, none or PATH.")
    # after weights: ModelConfig(name, size, alpha, weights) keeps its positional order
    minimalistic: bool = setting(False, "mobilenet_v3_small/large without hard-swish, squeeze-excite and 5x5 kernels.")

    def __post_init__(self) -> None:
        from edgeclf.toolchain.models import get_spec, is_model_file, model_names  # the registry is the source of truth

        _require(isinstance(self.name, str) and (self.name in model_names() or is_model_file(self.name)),
                 f"--model must be one of {', '.join(model_names())} or a tf_keras .keras/.h5 file; received "
                 f"{self.name!r}. Use e.g. --model cnn.")
        _require(self.size is None or (isinstance(self.size, int) and not isinstance(self.size, bool) and self.size > 0),
                 f"--size must be a positive integer (pixels); received {self.size!r}. Use e.g. --size 32.")
        _require(isinstance(self.minimalistic, bool),
                 f"--minimalistic is a yes/no switch; received {self.minimalistic!r}. Use minimalistic: true in YAML.")
        _require(isinstance(self.alpha, (int, float)) and self.alpha > 0,
                 f"--alpha must be a positive number; received {self.alpha!r}. Use e.g. --alpha 0.35.")
        if self.name in model_names():
            self._check_family_options(get_spec(self.name))

    def _check_family_options(self, spec: Any) -> None:
        """--alpha is checked for the families that have widths (the others have one and ignore it)."""
        _require(not spec.alphas or self.alpha in spec.alphas,
                 f"--alpha for {self.name} must be one of {', '.join(map(str, spec.alphas))} (the widths edgeclf "
                 f"builds it at); received {self.alpha!r}. Use e.g. --alpha {spec.alphas[0] if spec.alphas else ''}.")
        _require(not self.minimalistic or self.name.startswith("mobilenet_v3"),
                 f"--minimalistic applies to mobilenet_v3_small and mobilenet_v3_large only; received --model "
                 f"{self.name}. Leave --minimalistic out, or use --model mobilenet_v3_small.")


SCHEDULES = ("plateau", "cosine", "step")
STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = setting(20, "Maximum training epochs (stage 1 with pretrained weights; early stopping).")
    batch_size: int = setting(32)
    learning_rate: float | None = setting(None, "Adam learning rate (stage 1 with pretrained weights; stage 2 uses "
                                                "1/20 of it).", show_default=_per_model("learning_rate"))
    fine_tune_epochs: int = setting(10, "Pretrained weights only: stage 2 epochs with the top base layers unfrozen "
                                        "(0: head only).")
    fine_tune_layers: int | None = setting(None, "Pretrained weights only: base layers unfrozen in stage 2 (BatchNorm "
                                                 "stays frozen).", show_default=_per_model("fine_tune_layers", True))
    schedule: str = setting("plateau", "Learning rate: x0.3 on a val_loss plateau, cosine decay, or x0.1 at 50% and "
                                       "75% of the epochs.", choices=SCHEDULES)
    label_smoothing: float = setting(0.0)
    patience: int = setting(6, "Early stopping: epochs without a better validation accuracy (best weights are restored).")
    tensorboard: str | None = setting(None, "Also write TensorBoard logs here.", folder=True)
    resume: bool = setting(False, "Continue an interrupted build of the same config from its last checkpoint.")
    mixed_precision: bool = setting(False, "float16 compute on a GPU (refused on a CPU, where it is slower).")
    strategy: str = setting("default", "tf.distribute: mirrored over local GPUs, multiworker over the hosts in "
                                       "TF_CONFIG.", choices=STRATEGIES)

    def __post_init__(self) -> None:
        _require(_is_int(self.epochs) and self.epochs >= 1,
                 f"--epochs must be an integer >= 1; received {self.epochs!r}. Use e.g. --epochs 20.")
        _require(_is_int(self.batch_size) and 1 <= self.batch_size <= 4096,
                 f"--batch-size must be an integer in [1, 4096]; received {self.batch_size!r}. Use e.g. --batch-size 32.")
        _require(self.learning_rate is None or (_is_number(self.learning_rate) and 0 < self.learning_rate < 1),
                 f"--learning-rate must be in (0, 1); received {self.learning_rate!r}. Use e.g. --learning-rate 0.001.")
        _require(_is_int(self.fine_tune_epochs) and self.fine_tune_epochs >= 0,
                 f"--fine-tune-epochs must be an integer >= 0; received {self.fine_tune_epochs!r}. "
                 "Use e.g. --fine-tune-epochs 10 (0 skips stage 2).")
        _require(self.fine_tune_layers is None or (_is_int(self.fine_tune_layers) and self.fine_tune_layers >= 0),
                 f"--fine-tune-layers must be an integer >= 0; received {self.fine_tune_layers!r}. "
                 "Use e.g. --fine-tune-layers 50.")
        _require(self.schedule in SCHEDULES,
                 f"--schedule must be one of {', '.join(SCHEDULES)}; received {self.schedule!r}. Use e.g. --schedule cosine.")
        _require(_is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                 f"--label-smoothing must be in [0, 1); received {self.label_smoothing!r}. Use e.g. --label-smoothing 0.1.")
        _require(_is_int(self.patience) and self.patience >= 1,
                 f"--patience must be an integer >= 1; received {self.patience!r}. Use e.g. --patience 6.")
        _require(self.tensorboard is None or (isinstance(self.tensorboard, str) and self.tensorboard != ""),
                 f"--tensorboard must be a folder path; received {self.tensorboard!r}. Use e.g. --tensorboard tb/.")
        for name in ("resume", "mixed_precision"):
            value = getattr(self, name)
            _require(isinstance(value, bool), f"--{name.replace('_', '-')} is a switch (true/false); received {value!r}.")
        _require(self.strategy in STRATEGIES,
                 f"--strategy must be one of {', '.join(STRATEGIES)}; received {self.strategy!r}. "
                 "Use --strategy mirrored for the GPUs of one machine, multiworker with TF_CONFIG set.")
        _require(not (self.resume and self.strategy == "multiworker"),
                 "--resume is not supported with --strategy multiworker (each worker would have to find the same "
                 "checkpoint); restart the workers without --resume.")


@dataclass(frozen=True)
class PruneConfig:
    sparsity: float = setting(0.0, "Target weight sparsity in [0, 0.95); 0 disables pruning.", flag="--prune")
    epochs: int = setting(10, "Fine-tuning epochs while pruning.", flag="--prune-epochs")
    structure: str = setting("unstructured", "unstructured, or M:N (e.g. 2:4: two zeros in every four weights along "
                                             "the input channels).", flag="--prune-structure")
    skip: tuple[str, ...] = setting((), "Keep layers matching this name pattern dense (repeatable; the first conv "
                                        "and classifier always are).", flag="--prune-skip", metavar="PATTERN")
    for_backend: str = setting("any", "xnnpack: prune only 1x1 convs (to --prune, default 0.75, at least 2/3) and "
                                      "also export model_float32_sparse.tflite for XNNPACK's sparse inference (ARM; "
                                      "off on x86 with AVX).", flag="--prune-for", choices=PRUNE_BACKENDS)

    def __post_init__(self) -> None:
        _require(_is_number(self.sparsity) and 0.0 <= self.sparsity < 0.95 and math.isfinite(self.sparsity),
                 f"--prune must be in [0, 0.95); received {self.sparsity!r}. Use e.g. --prune 0.5.")
        _require(_is_int(self.epochs) and self.epochs >= 1,
                 f"--prune-epochs must be an integer >= 1; received {self.epochs!r}. Use e.g. --prune-epochs 10.")
        structure = re.fullmatch(r"(\d+):(\d+)", str(self.structure))
        _require(self.structure == "unstructured" or (structure is not None and 0 < int(structure[1]) < int(structure[2])),
                 f"--prune-structure must be unstructured or M:N with 0 < M < N; received {self.structure!r}. "
                 "Use e.g. --prune-structure 2:4.")
        if structure is not None:
            implied = int(structure[1]) / int(structure[2])
            _require(self.sparsity in (0, implied),
                     f"--prune-structure {self.structure} sets the sparsity to {implied:g}; received --prune "
                     f"{self.sparsity}. Leave --prune out or pass --prune {implied:g}.")
        _require(isinstance(self.skip, (tuple, list)) and all(isinstance(p, str) and p for p in self.skip),
                 f"--prune-skip takes layer-name patterns; received {self.skip!r}. Use e.g. --prune-skip 'block_1*'.")
        object.__setattr__(self, "skip", tuple(self.skip))  # YAML gives a list
        _require(self.for_backend in PRUNE_BACKENDS,
                 f"--prune-for must be one of {', '.join(PRUNE_BACKENDS)}; received {self.for_backend!r}. "
                 "Use --prune-for xnnpack for XNNPACK's sparse inference (ARM).")
        if self.for_backend == "xnnpack":
            _require(self.structure == "unstructured",
                     f"--prune-for xnnpack prunes unstructured; received --prune-structure {self.structure}. Leave it out.")
            _require(self.sparsity == 0 or self.sparsity >= XNNPACK_MIN_SPARSITY,
                     f"--prune-for xnnpack needs at least 2/3 zeros in each 1x1 conv (XNNPACK's threshold); received "
                     f"--prune {self.sparsity}. Use --prune 0.75 or leave --prune out.")

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        if self.structure == "unstructured":
            return None
        m, n = self.structure.split(":")
        return int(m), int(n)

    @property
    def target(self) -> float:
        """The sparsity pruning aims for; 0 when pruning is off."""
        if self.for_backend == "xnnpack":
            return self.sparsity or XNNPACK_DEFAULT_SPARSITY
        return self.m_by_n[0] / self.m_by_n[1] if self.m_by_n else self.sparsity


@dataclass(frozen=True)
class QuantizeConfig:
    int8: bool = setting(False, "Also export a full-integer model (uint8 pixels in, scale 1, zero point 0).")
    float16: bool = setting(False, "Also export float16 weights (model_float16.tflite).")
    dynamic: bool = setting(False, "Also export dynamic-range int8 weights (model_dynamic.tflite).")
    io: str = setting("uint8", "Input/output type of the int8 model: uint8 (raw pixels, scale 1), int8 or float32.",
                      choices=IO_TYPES)
    per_tensor: bool = setting(False, "One quantization scale per tensor instead of per channel.")
    calib_size: int = setting(300, "Representative images for int8 calibration (class-stratified).")
    calib_data: str | None = setting(None, "Calibrate on this image folder instead of the training split.")
    max_drop: float | None = setting(None, "Fail (exit 1, run kept as <name>-failed) when an int8 variant's top-1 is "
                                           "more than this many points below float32.")
    keep_float: tuple[str, ...] = setting((), "Also export model_int8_mixed.tflite with this Keras layer left in float "
                                              "(repeatable; not full integer).", metavar="LAYER")
    qat: bool = setting(False, "Also quantization-aware fine-tuning -> model_int8_qat.tflite (keeps the pruned zeros "
                               "with --prune).")
    qat_epochs: int = setting(3, "QAT fine-tuning epochs.")

    def __post_init__(self) -> None:
        for name in ("int8", "float16", "dynamic", "per_tensor", "qat"):
            value = getattr(self, name)
            _require(isinstance(value, bool),
                     f"--{name.replace('_', '-')} is a switch (true/false); received {value!r}.")
        _require(self.io in IO_TYPES, f"--io must be one of {', '.join(IO_TYPES)}; received {self.io!r}. "
                 "Use --io uint8 (raw pixels in, what MediaPipe and most devices take).")
        _require(_is_int(self.calib_size) and self.calib_size >= 1,
                 f"--calib-size must be an integer >= 1; received {self.calib_size!r}. Use e.g. --calib-size 300.")
        _require(self.calib_data is None or (isinstance(self.calib_data, str) and self.calib_data != ""),
                 f"--calib-data must be a folder path; received {self.calib_data!r}. Use e.g. --calib-data photos/calib.")
        _require(self.max_drop is None or (_is_number(self.max_drop) and 0 <= self.max_drop <= 100),
                 f"--max-drop must be in [0, 100] points; received {self.max_drop!r}. Use e.g. --max-drop 1.0.")
        _require(isinstance(self.keep_float, (tuple, list)) and all(isinstance(n, str) and n for n in self.keep_float),
                 f"--keep-float takes Keras layer names; received {self.keep_float!r}. Use e.g. --keep-float conv1.")
        _require(not self.keep_float or self.int8,
                 f"--keep-float {' '.join(self.keep_float)} makes a mixed variant of the int8 model; add --int8.")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))  # YAML gives a list
        _require(_is_int(self.qat_epochs) and self.qat_epochs >= 1,
                 f"--qat-epochs must be an integer >= 1; received {self.qat_epochs!r}. Use e.g. --qat-epochs 3.")
        _require(self.max_drop is None or self.int8 or self.dynamic or self.qat,
                 f"--max-drop {self.max_drop} gates an int8 variant, but none is built. Add --int8, --qat or --dynamic.")


@dataclass(frozen=True)
class ExportConfig:
    out: str = setting("runs", "Runs folder; each build writes one run inside.")
    # Written into every artifact's TFLite Metadata.
    author: str = ""
    license: str = ""
    version: str = "1"

    def __post_init__(self) -> None:
        _require(isinstance(self.out, str) and self.out != "",
                 f"--out must be a folder path; received {self.out!r}. Use e.g. --out runs.")
        for name in ("author", "license", "version"):
            value = getattr(self, name)
            _require(isinstance(value, str),
                     f"export.{name} must be text; received {value!r}. Quote it in the YAML file, e.g. {name}: \"1\".")


BUDGET_VARIANTS = ("int8", "float32")


@dataclass(frozen=True)
class ChoiceConfig:
    latency_budget: float | None = setting(
        None, "Choose the model for this latency (median ms per image): candidates that fit are trained briefly, the "
              "best fully; --model, --alpha and --size are then chosen, not taken. Turns on --int8 when the budget is "
              "for int8.", metavar="MS")
    device: str | None = setting(None, "The candidates timed on the device: `edgeclf bench DIR/*.tflite --threads N "
                                       "--json` of `edgeclf candidates --out DIR` (default: timed on this machine).",
                                 metavar="FILE")
    threads: int = setting(1, "Threads the latency budget is judged at.")
    budget_variant: str = setting("int8", "The artifact the latency budget is for.", choices=BUDGET_VARIANTS)
    finalists: int = setting(5, "Candidates trained briefly under --latency-budget.")
    full_runs: int = setting(2, "Of those, the most this many are trained fully: the best brief run and the ones "
                                f"within {100 * BRIEF_RUN_MARGIN:g} points of it; the build keeps the most accurate as "
                                "deployed (int8 top-1 for an int8 budget; a finalist whose brief run beat that is "
                                "trained fully too).")
    models: tuple[str, ...] = setting(DEFAULT_MODELS, "The candidates' families (repeatable; as `edgeclf candidates "
                                                      "--models`).", flag="--candidate-models", metavar="MODEL")
    alphas: tuple[float, ...] = setting(DEFAULT_ALPHAS, "The candidates' widths, for the families that have them "
                                                        "(repeatable).", flag="--candidate-alphas", metavar="ALPHA")
    sizes: tuple[int, ...] = setting(DEFAULT_SIZES, "The candidates' input sizes (repeatable).",
                                     flag="--candidate-sizes", metavar="PIXELS")
    trial_epochs: int | None = setting(None, "Epochs of each brief training.", show_default="max(2, epochs / 10)")

    def __post_init__(self) -> None:
        _require(self.latency_budget is None or (_is_number(self.latency_budget) and self.latency_budget > 0),
                 f"--latency-budget must be a positive number of milliseconds; received {self.latency_budget!r}. "
                 "Use e.g. --latency-budget 20.")
        _require(self.device is None or self.latency_budget is not None,
                 f"--device {self.device} gives the candidates' latency for --latency-budget, which is not set. "
                 "Add e.g. --latency-budget 20.")
        for name, value in (("threads", self.threads), ("finalists", self.finalists), ("full-runs", self.full_runs)):
            _require(_is_int(value) and value >= 1,
                     f"--{name} must be an integer >= 1; received {value!r}. Use e.g. --{name} 1.")
        _require(self.trial_epochs is None or (_is_int(self.trial_epochs) and self.trial_epochs >= 1),
                 f"--trial-epochs must be an integer >= 1; received {self.trial_epochs!r}. Use e.g. --trial-epochs 2.")
        for name, values, kind in (("models", self.models, str), ("alphas", self.alphas, (int, float)),
                                   ("sizes", self.sizes, int)):
            _require(isinstance(values, (tuple, list)) and values and all(isinstance(v, kind) for v in values),
                     f"--candidate-{name} takes one or more values; received {values!r}. Use e.g. the defaults.")
            object.__setattr__(self, name, tuple(values))  # YAML gives a list
        _require(self.budget_variant in BUDGET_VARIANTS, f"--budget-variant must be one of "
                 f"{', '.join(BUDGET_VARIANTS)}; received {self.budget_variant!r}. Use e.g. --budget-variant int8.")


@dataclass(frozen=True)
class BuildConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    seed: int = setting(0, "Seed for split, training and calibration.")

    def __post_init__(self) -> None:
        _require(_is_int(self.seed) and self.seed >= 0,
                 f"--seed must be an integer >= 0; received {self.seed!r}. Use e.g. --seed 0.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any], origin: str = "config") -> "BuildConfig":
        """Builds a config from nested keys; unknown keys are errors naming the closest valid key."""
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: expected a mapping of sections (data, model, train, ...); "
                              f"received {type(values).__name__}.")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in sections:
                raise ConfigError(f"{origin}: unknown key {key!r}{_suggest(key, sections)}")
            section_type = sections[key].default_factory if sections[key].default_factory is not dataclasses.MISSING else None
            if section_type is None:
                kwargs[key] = value
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {key!r} must be a mapping of settings; received {value!r}.")
            known = {f.name for f in dataclasses.fields(section_type)}
            for sub in value:
                if sub not in known:
                    raise ConfigError(f"{origin}: unknown key '{key}.{sub}'"
                                      f"{_suggest(sub, known, prefix=key + '.')}")
            kwargs[key] = section_type(**value)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "BuildConfig":
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}). Check the --config path.") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}). Fix the file or pass the settings as flags.") from exc
        return cls.from_dict(values, origin=str(path))

    def override(self, dotted: dict[str, Any]) -> "BuildConfig":
        """A copy with 'section.key' values replaced (the flags a user gave)."""
        values = self.to_dict()
        for key, value in dotted.items():
            section, _, name = key.partition(".")
            if name:
                values[section][name] = value
            else:
                values[section] = value
        return BuildConfig.from_dict(values)


@dataclass(frozen=True)
class Setting:
    """One `edgeclf build` option, read from its config field."""

    key: str  # "section.name" (or "seed") as BuildConfig.override takes it
    flag: str  # e.g. --val-split
    field: dataclasses.Field
    type: Any  # the field's type without None: bool, int, float, str or tuple[str, ...]

    @property
    def param(self) -> str:
        """The option's parameter name, "section__name" (a key with its dot replaced)."""
        return self.key.replace(".", "__")


def settings() -> list[Setting]:
    """Every field of BuildConfig that is a build option, in declaration order."""
    import typing

    found, top = [], typing.get_type_hints(BuildConfig)
    for section in dataclasses.fields(BuildConfig):
        owner = section.default_factory if section.default_factory is not dataclasses.MISSING else None
        if owner is None:
            members = [(section.name, section, top[section.name])]
        else:
            hints = typing.get_type_hints(owner)
            members = [(f"{section.name}.{f.name}", f, hints[f.name]) for f in dataclasses.fields(owner)]
        for key, spec, hint in members:
            if spec.metadata.get("option"):
                union = typing.get_origin(hint) in (typing.Union, types.UnionType)  # X | None
                kinds = [t for t in typing.get_args(hint) if t is not type(None)] if union else [hint]
                flag = spec.metadata["flag"] or "--" + key.rpartition(".")[2].replace("_", "-")
                found.append(Setting(key, flag, spec, kinds[0]))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _suggest(key: str, valid: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    if close:
        return f". Did you mean '{prefix}{close[0]}'?"
    return f". Valid keys: {', '.join(prefix + k for k in sorted(valid))}."
