"""BuildConfig: the frozen, validated description of one build, filled from a YAML file and flags.

Derived values (the model's default input size, dataset counts...) live in stage results,
never in the config.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILTIN_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
AUGMENT_LEVELS = ("none", "light", "strong")
CLASS_WEIGHTS = ("none", "auto")
IO_TYPES = ("uint8", "int8", "float32")
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
PRUNE_BACKENDS = ("any", "xnnpack")
XNNPACK_MIN_SPARSITY = 2 / 3  # XNNPACK runs a 1x1 conv sparse only from this share of zeros
XNNPACK_DEFAULT_SPARSITY = 0.75


class ConfigError(ValueError):
    """An invalid build setting; the message states the rule, the value received and the fix."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # a folder, or a built-in dataset name
    val_split: float = 0.2  # used when the folder has no train/ and val/ subfolders
    augment: str = "none"  # none | light | strong, on training batches only
    flip: bool = True  # horizontal flips in augmentation (turn off for text, digits, left/right classes)
    class_weight: str = "none"  # none | auto (inverse class frequency, for unbalanced folders)

    def __post_init__(self) -> None:
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
    name: str = "cnn"
    size: int | None = None  # None: the model's default input size
    alpha: float = 1.0  # mobilenet_v2 width multiplier
    weights: str = "imagenet"  # mobilenet_v2: imagenet | none | PATH

    def __post_init__(self) -> None:
        from edgeclf.toolchain.models import is_model_file, model_names  # the registry is the source of truth

        _require(isinstance(self.name, str) and (self.name in model_names() or is_model_file(self.name)),
                 f"--model must be one of {', '.join(model_names())} or a tf_keras .keras/.h5 file; received "
                 f"{self.name!r}. Use e.g. --model cnn.")
        _require(self.size is None or (isinstance(self.size, int) and not isinstance(self.size, bool) and self.size > 0),
                 f"--size must be a positive integer (pixels); received {self.size!r}. Use e.g. --size 32.")
        _require(isinstance(self.alpha, (int, float)) and self.alpha > 0,
                 f"--alpha must be a positive number; received {self.alpha!r}. Use e.g. --alpha 0.35.")
        _require(self.name != "mobilenet_v2" or self.alpha in MOBILENET_ALPHAS,
                 f"--alpha for mobilenet_v2 must be one of {', '.join(map(str, MOBILENET_ALPHAS))} (the widths "
                 f"Keras builds and has ImageNet weights for); received {self.alpha!r}. Use e.g. --alpha 0.35.")


SCHEDULES = ("plateau", "cosine", "step")
STRATEGIES = ("default", "mirrored", "multiworker")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # maximum epochs (stage 1 with pretrained weights); early stopping may end sooner
    batch_size: int = 32
    learning_rate: float | None = None  # None: the model's default (see `edgeclf build --help`)
    fine_tune_epochs: int = 10  # stage 2 (pretrained weights only): epochs with the top layers unfrozen
    fine_tune_layers: int | None = None  # stage 2: base layers unfrozen; None: the model's default
    schedule: str = "plateau"  # plateau (reduce on plateau) | cosine | step (x0.1 at 50% and 75%)
    label_smoothing: float = 0.0
    patience: int = 6  # early stopping: epochs without a better validation accuracy
    tensorboard: str | None = None  # a folder for TensorBoard logs
    resume: bool = False  # continue an interrupted build with the same config from its last checkpoint
    mixed_precision: bool = False  # float16 compute on a GPU
    strategy: str = "default"  # tf.distribute: default | mirrored (local GPUs) | multiworker (TF_CONFIG)

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
    sparsity: float = 0.0  # 0 disables unstructured pruning
    epochs: int = 10  # fine-tuning epochs under the pruning schedule
    structure: str = "unstructured"  # or "M:N": M zeros in every N weights along the input channels (e.g. 2:4)
    skip: tuple[str, ...] = ()  # layer-name patterns (fnmatch) kept dense, besides the model's first conv and classifier
    for_backend: str = "any"  # "xnnpack": prune only 1x1 convs to >= 2/3 and export them sparse for XNNPACK

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
    int8: bool = False  # full integer, calibrated on a representative set
    float16: bool = False  # float16 weights, float32 compute
    dynamic: bool = False  # int8 weights, float activations (dynamic range)
    io: str = "uint8"  # the int8 model's input/output type
    per_tensor: bool = False  # one scale per tensor instead of per channel
    calib_size: int = 300
    calib_data: str | None = None  # a folder of representative images instead of the training split
    max_drop: float | None = None  # fail the build past this top-1 drop (points) of an int8 variant
    keep_float: tuple[str, ...] = ()  # Keras layers left in float in model_int8_mixed.tflite
    qat: bool = False  # also quantization-aware fine-tuning -> model_int8_qat.tflite
    qat_epochs: int = 3

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

    @classmethod
    def for_int8(cls, calib_size: int = 300, io: str = "uint8") -> "QuantizeConfig":
        return cls(int8=True, calib_size=calib_size, io=io)

    def variants(self) -> tuple[str, ...]:
        """The artifacts besides float32, in the order of the export table."""
        chosen = [name for name in ("int8", "float16", "dynamic") if getattr(self, name)]
        return tuple(chosen + (["int8_mixed"] if self.keep_float else []) + (["int8_qat"] if self.qat else []))


@dataclass(frozen=True)
class ExportConfig:
    out: str = "runs"  # the runs root; each build writes one folder inside
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


@dataclass(frozen=True)
class BuildConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    seed: int = 0

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _suggest(key: str, valid: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    if close:
        return f". Did you mean '{prefix}{close[0]}'?"
    return f". Valid keys: {', '.join(prefix + k for k in sorted(valid))}."
