"""`edgeclf build`: one frozen BuildConfig through a fixed table of stages into one run folder.

The run is written in runs/.tmp-<id>/ and renamed when complete, so a failed or interrupted
build never leaves a folder that looks finished and never touches an earlier run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import gzip
import logging
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeclf.calibration import CalibrationSet, check, from_folder, select
from edgeclf.runtime import delegation
from edgeclf.runtime.bench import steady_latency
from edgeclf.runtime.cpu import cpu_info, int8_notes
from edgeclf.runtime.datasets import stratified_indices
from edgeclf.runtime.evaluate import Evaluation, evaluate, flips
from edgeclf.runtime.files import write_atomically
from edgeclf.runtime.model import Model
from edgeclf.runtime.render import confusion_png, thumbnails
from edgeclf.toolchain import report as report_module
from edgeclf.toolchain._tf import require_training_dependencies
from edgeclf.toolchain.config import BuildConfig
from edgeclf.toolchain.data import Splits, image_side, load_splits
from edgeclf.toolchain.gate import QualityGateFailed, quality_gate
from edgeclf.toolchain.models import (ModelBuildError, ModelSpec, create_model, follow_steps_with_batchnorm, get_spec,
                                      input_size, is_model_file, is_pretrained)
from edgeclf.toolchain.runfolder import RunFolder, remove_stale_resume

log = logging.getLogger(__name__)

LATENCY_THREADS = 1  # report latency single-threaded: the most stable figure on a shared machine
DEBUG_IMAGES = 32  # validation images the quantization debugger compares float and int8 layers on
CHECK_IMAGES = 2000  # training images the calibration set is compared with


@dataclass
class BuildContext:
    """What the stages share: the run folder being written, results so far, and the progress sink."""

    config: BuildConfig
    run_dir: Path
    log: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time
    strategy: Any = None  # tf.distribute strategy: models are built and compiled in its scope
    resume_dir: Path | None = None  # checkpoints that let --resume continue this config after an interruption
    started: str = ""  # the build's start time, names TensorBoard runs

    # each stage's result, set when the stage has run (STAGES' order)
    data: "DataResult | None" = None
    model: "ModelResult | None" = None
    train: "TrainResult | None" = None
    prune: "PruneResult | None" = None
    quantize: "QuantizeResult | None" = None
    export: "ExportResult | None" = None
    evaluate: "EvaluateResult | None" = None
    report: dict | None = None
    qat_history: dict = field(default_factory=dict)  # the quantize stage's QAT fine-tuning, for the report
    choice: dict | None = None  # --latency-budget: how the model was chosen, for the report
    trained_while_choosing: "TrainResult | None" = None  # --latency-budget: the winner, trained with this config
    trial: bool = False  # a model-choice trial: its folder is thrown away, so no checkpoint or figure is written

    def scope(self) -> Any:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


@dataclass
class DataResult:
    splits: Splits
    spec: ModelSpec
    size: int


@dataclass
class ModelResult:
    model: Any


@dataclass
class TrainResult:
    model: Any
    history: dict
    notes: dict = field(default_factory=dict)  # how each stage was trained, for the report


@dataclass
class PruneResult:
    model: Any  # stripped, plain tf_keras; the trained model itself when pruning is off
    sparsity: dict
    history: dict
    xnnpack: dict | None = None  # --prune-for xnnpack: per-layer eligibility and what this machine can do


@dataclass
class QuantizeResult:
    contents: dict[str, bytes]  # variant -> .tflite bytes, for every variant besides float32
    calibration: CalibrationSet | None
    layer_errors: list[dict]  # the int8 model's worst layers (QuantizationDebugger), worst first


@dataclass
class ExportResult:
    artifacts: dict[str, Path]  # variant -> .tflite in the run folder
    dense_reference: bytes | None  # the unpruned float32 model, measured but not shipped


@dataclass
class EvaluateResult:
    artifacts: dict[str, dict]
    dense_reference: dict | None
    confusion_pngs: dict[str, bytes]  # variant -> the confusion matrix figure (written beside the report)


def run_data(config: BuildConfig, ctx: BuildContext) -> DataResult:
    spec = get_spec(config.model.name)
    size = input_size(spec, config.model.size)
    splits = load_splits(config.data.source, size, config.data.val_split, config.seed, config.train.batch_size,
                         max_pixels=config.data.max_pixels)
    test = f" / {len(splits.test)} test" if splits.test is not None else ""
    ctx.log(f"  {len(splits.train)} train / {len(splits.val)} val{test} images, {len(splits.classes)} classes, "
            f"{len(splits.skipped)} skipped, at {size}x{size} (cache: {splits.cache.decoded} decoded, "
            f"{splits.cache.reused} reused)")
    return DataResult(splits, spec, size)


def run_model(config: BuildConfig, ctx: BuildContext) -> ModelResult:
    from edgeclf.toolchain.train import seed_everything

    data: DataResult = ctx.data
    seed_everything(config.seed)
    with ctx.scope():
        model = create_model(config.model, len(data.splits.classes), data.size)
    ctx.log(f"  {model.name}: {model.count_params():,} parameters, {_trainable(model):,} trainable")
    _refuse_unwrappable(config, model)
    if not is_pretrained(config.model) and not is_model_file(config.model.name):  # trained BatchNorm stays as it is
        steps = int(np.ceil(len(data.splits.train.labels) / config.train.batch_size))
        momentum = follow_steps_with_batchnorm(model, steps)
        if momentum:
            ctx.log(f"  BatchNorm momentum {momentum:.2f} for {steps} steps per epoch")
    return ModelResult(model)


def _refuse_unwrappable(config: BuildConfig, model: Any) -> None:
    """--qat and --prune wrap the model's layers with tfmot; one it cannot wrap is refused now, before training."""
    from edgeclf.toolchain._tf import tfmot
    from edgeclf.toolchain.prune import pruning_problem
    from edgeclf.toolchain.qat import quantization_aware_problem

    name = config.model.name
    if config.quantize.qat and (problem := quantization_aware_problem(model)):
        raise ModelBuildError(
            f"--qat: tfmot {tfmot().__version__} cannot wrap {name} for quantization-aware "
            f"training ({problem}). Build without --qat (--int8 still calibrates a full-integer model after "
            "training), or choose a model it wraps: cnn, resnet_mini, mobilenet_v2, resnet50, or mobilenet_v3_small/"
            "large with --minimalistic.")
    if config.prune.target and (problem := pruning_problem(model, get_spec(name).dense_layers)):
        raise ModelBuildError(f"--prune: tfmot {tfmot().__version__} cannot wrap {name} for "
                              f"pruning ({problem}). Build without --prune, or choose another --model.")


def _trainable(model: Any) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _learning_rate(config: BuildConfig, spec: ModelSpec) -> float:
    return config.train.learning_rate or spec.learning_rate


def _datasets(config: BuildConfig, splits: Splits) -> tuple[Any, Any]:
    """Training batches (shuffled, augmented, class-weighted as configured) and validation batches."""
    from edgeclf.toolchain.pipeline import Augmentation, make_dataset

    batch, data = config.train.batch_size, config.data
    train = make_dataset(splits.train.images, splits.train.labels, batch, True, config.seed,
                         Augmentation.level(data.augment, data.flip), _class_weights(config, splits))
    return train, make_dataset(splits.val.images, splits.val.labels, batch, False, config.seed)


def _class_weights(config: BuildConfig, splits: Splits) -> dict[int, float] | None:
    """Per-class loss weights with --class-weight auto, else None."""
    from edgeclf.toolchain.pipeline import class_weights

    return class_weights(splits.train.labels, len(splits.classes)) if config.data.class_weight == "auto" else None


def _fit_options(config: BuildConfig, ctx: BuildContext, stage: str) -> Any:
    from edgeclf.toolchain.train import FitOptions

    train = config.train
    return FitOptions(schedule=train.schedule, label_smoothing=train.label_smoothing, patience=train.patience,
                      tensorboard=Path(train.tensorboard) / ctx.started if train.tensorboard else None,
                      backup=ctx.resume_dir / stage if ctx.resume_dir and train.strategy != "multiworker" else None)


def run_train(config: BuildConfig, ctx: BuildContext) -> TrainResult:
    """Trains; a pretrained model trains in two stages: the new head on the frozen base's features, then
    the top layers unfrozen at a 20x smaller learning rate. Writes curves.png and checkpoints/best.keras
    (the trained model: every fit ends on its best validation epoch)."""
    from edgeclf.toolchain.train import has_backup, load_weights, save_weights

    model = ctx.model.model
    if ctx.trained_while_choosing is not None:  # same config, seed and split: the same training
        model.set_weights(ctx.trained_while_choosing.model.get_weights())
        ctx.log("  trained fully while choosing the model; not trained again")
        return _trained(ctx, model, ctx.trained_while_choosing.history, ctx.trained_while_choosing.notes)
    done = ctx.resume_dir / "trained.npz" if ctx.resume_dir else None
    if config.train.resume and done is not None and done.is_file():
        load_weights(model, done)
        history = json.loads((ctx.resume_dir / "trained.json").read_text())
        ctx.log(f"  resumed: training had finished ({len(history.get('loss', []))} epochs); weights loaded from {done}")
        return _trained(ctx, model, history, {})
    if has_backup(ctx.resume_dir / "train-1" if ctx.resume_dir else None):
        ctx.log("  resuming from the last checkpoint of the interrupted run")
    with ctx.scope():
        history, notes = (_train_pretrained(config, ctx, model) if is_pretrained(config.model)
                          else (_train_whole(config, ctx, model), {}))
    if done is not None and config.train.strategy != "multiworker":
        # The history first: --resume takes trained.npz as the sign that training finished, so a build
        # killed between the two writes must not leave the weights without their history.
        write_atomically(ctx.resume_dir / "trained.json", json.dumps(history).encode("utf-8"))
        save_weights(model, done)
    return _trained(ctx, model, history, notes)


def _trained(ctx: BuildContext, model: Any, history: dict, notes: dict) -> TrainResult:
    """Writes checkpoints/best.keras (every fit ends on its best validation epoch) and curves.png, unless the
    folder is a trial's (saving MobileNetV3-Small took 1.1 s of a 2-epoch trial's 9.2)."""
    if not ctx.trial:
        (ctx.run_dir / "checkpoints").mkdir(exist_ok=True)
        model.save(ctx.run_dir / "checkpoints" / "best.keras")
        _write_curves(ctx.run_dir, history)
    return TrainResult(model, history, notes)


def _train_whole(config: BuildConfig, ctx: BuildContext, model: Any) -> dict:
    from edgeclf.toolchain.train import fit

    train, val = _datasets(config, ctx.data.splits)
    return fit(model, train, val, config.train.epochs, _learning_rate(config, ctx.data.spec), ctx.log,
               options=_fit_options(config, ctx, "train-1"))


def _train_pretrained(config: BuildConfig, ctx: BuildContext, model: Any) -> tuple[dict, dict]:
    """Stage 1 trains the head on the frozen base's features (toolchain/frozen.py), stage 2 fine-tunes."""
    from edgeclf.toolchain.frozen import frozen_features
    from edgeclf.toolchain.pipeline import Augmentation
    from edgeclf.toolchain.train import FINE_TUNE_LR_FACTOR, fit

    splits, data = ctx.data.splits, config.data
    frozen = frozen_features(model, splits.train, splits.val, config.train.batch_size, config.seed,
                             Augmentation.level(data.augment, data.flip), _class_weights(config, splits))
    ctx.log(f"  stage 1: {frozen.describe()}")
    learning_rate = _learning_rate(config, ctx.data.spec)
    history = fit(frozen.head, frozen.train, frozen.val, config.train.epochs, learning_rate, ctx.log,
                  label="stage 1 (frozen base)", options=_fit_options(config, ctx, "train-1"))
    history["frozen_features_seconds"] = [round(frozen.seconds, 3)]
    notes = {"stage1": frozen.describe(), "stage1_mode": frozen.mode}
    if config.train.fine_tune_epochs > 0:
        train, val = _datasets(config, splits)
        history, notes["stage2"] = _fine_tune(config, ctx, model, train, val, learning_rate * FINE_TUNE_LR_FACTOR,
                                              history)
    return history, notes


def _fine_tune(config: BuildConfig, ctx: BuildContext, model: Any, train: Any, val: Any, learning_rate: float,
               history: dict) -> tuple[dict, str]:
    """Stage 2; keeps stage 1's weights when fine-tuning never beats them on validation accuracy.
    Returns the merged history and what was done, for the report."""
    from edgeclf.toolchain.models import unfreeze_top
    from edgeclf.toolchain.train import fit

    spec: ModelSpec = ctx.data.spec
    layers = config.train.fine_tune_layers if config.train.fine_tune_layers is not None else spec.fine_tune_layers
    best_stage1 = max(history.get("val_accuracy", [0.0]))
    stage1_weights = model.get_weights()
    unfrozen = unfreeze_top(model, layers)
    done = f"{unfrozen} of the top {layers} base layers unfrozen (BatchNorm kept frozen)"
    ctx.log(f"  stage 2: {done}, {_trainable(model):,} trainable weights, learning rate {learning_rate:g}")
    fine = fit(model, train, val, config.train.fine_tune_epochs, learning_rate, ctx.log, label="stage 2 (fine-tune)",
               options=_fit_options(config, ctx, "train-2"))
    if max(fine.get("val_accuracy", [0.0])) < best_stage1:
        model.set_weights(stage1_weights)
        ctx.log(f"  stage 2 never beat stage 1's validation accuracy {best_stage1:.4f}: keeping stage 1's weights")
        done += f"; it never beat stage 1's validation accuracy {best_stage1:.4f}, so stage 1's weights were kept"
    merged = {key: history.get(key, []) + fine.get(key, []) for key in set(history) | set(fine)}
    merged["fine_tune_start"] = [float(len(history.get("loss", [])))]
    merged["unfrozen_layers"] = [float(unfrozen)]
    return merged, done


def _write_curves(run_dir: Path, history: dict) -> None:
    from edgeclf.runtime.render import curves_png

    (run_dir / "curves.png").write_bytes(curves_png(history))


def run_prune(config: BuildConfig, ctx: BuildContext) -> PruneResult:
    from edgeclf.toolchain.config import XNNPACK_MIN_SPARSITY
    from edgeclf.toolchain.prune import kept_dense, measure_sparsity, prune, xnnpack_dense, xnnpack_eligibility

    data: DataResult = ctx.data
    trained = ctx.train.model
    for_xnnpack = config.prune.for_backend == "xnnpack"
    dense = (xnnpack_dense if for_xnnpack else kept_dense)(trained, data.spec.dense_layers, config.prune.skip)
    if config.prune.target == 0:
        return PruneResult(trained, measure_sparsity(trained, dense), {})
    train, val = _datasets(config, data.splits)
    steps = int(np.ceil(len(data.splits.train.labels) / config.train.batch_size))
    with ctx.scope():
        pruned, history = prune(trained, dense, train, val, config.prune.target, config.prune.epochs,
                                steps, _learning_rate(config, data.spec) / 3, ctx.log, m_by_n=config.prune.m_by_n)
    sparsity = measure_sparsity(pruned, dense, config.prune.m_by_n)
    ctx.log(f"  measured sparsity {sparsity['overall']:.3f} (target {config.prune.target:g}, {config.prune.structure})")
    xnnpack = None
    if for_xnnpack:
        xnnpack = {**xnnpack_eligibility(pruned, sparsity, XNNPACK_MIN_SPARSITY), **_xnnpack_platform()}
        ctx.log(f"  XNNPACK sparse inference: {xnnpack['eligible_layers']} of {xnnpack['pointwise_layers']} 1x1 convs "
                f"eligible, network pattern {'ok' if xnnpack['pattern_ok'] else 'not supported'}; {xnnpack['platform_note']}")
    return PruneResult(pruned, sparsity, history, xnnpack)


def _xnnpack_platform() -> dict:
    """Whether this machine's XNNPACK can run sparse at all (it turns sparse inference off on x86 with AVX)."""
    machine = platform.machine().lower()
    try:
        avx = " avx" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").lower().replace("\t", " ")
    except OSError:
        avx = False
    x86_avx = machine in ("x86_64", "amd64", "i386", "i686") and avx
    note = ("this machine is x86 with AVX, where XNNPACK disables sparse inference: the sparse model runs dense "
            "here, so its latency below is not a sparse speedup; expect one on ARM (Raspberry Pi, phones)"
            if x86_avx else f"{machine}: XNNPACK can run the eligible 1x1 convolutions sparse here")
    return {"machine": machine, "sparse_inference_on_this_machine": not x86_avx, "platform_note": note}


def run_quantize(config: BuildConfig, ctx: BuildContext) -> QuantizeResult:
    """Converts every selected variant besides the float32 reference (export's); the rows say what each needs."""
    from edgeclf.toolchain.export import REFERENCE, Calibrated, layer_errors, selected_variants

    quantize, model = config.quantize, ctx.prune.model
    calibration, calibrated, contents = None, None, {}
    for variant in selected_variants(config):
        if variant is REFERENCE:
            continue
        if variant.needs_calibration and calibrated is None:
            calibration, images = _representative_set(config, ctx.data)
            ctx.log(f"  calibrating on {len(calibration.indices)} images from {calibration.source} "
                    f"(pixel range {calibration.pixel_min}-{calibration.pixel_max})")
            for warning in calibration.warnings:
                ctx.log(f"  warning: {warning}")
            calibrated = Calibrated(images, quantize.io, not quantize.per_tensor, quantize.keep_float)
        source = _quantization_aware(config, ctx, model) if variant.quantization_aware else model
        contents[variant.name] = variant.convert(source, calibrated if variant.needs_calibration else None)
    errors = []
    if quantize.int8 and calibrated is not None:
        val = ctx.data.splits.val
        errors = layer_errors(model, calibrated.images, val.images[:DEBUG_IMAGES], quantize.io, not quantize.per_tensor)[:5]
        worst = errors[0] if errors else None
        if worst:
            ctx.log(f"  largest quantization error: {worst['tensor']} ({worst['rmse_per_step']:.2f} steps RMS)")
    return QuantizeResult(contents, calibration, errors)


def _quantization_aware(config: BuildConfig, ctx: BuildContext, model: Any) -> Any:
    """QAT fine-tuning of the (pruned) model; its history goes into the report."""
    from edgeclf.toolchain.qat import quantization_aware

    train, val = _datasets(config, ctx.data.splits)
    with ctx.scope():
        qat, history = quantization_aware(model, train, val, config.quantize.qat_epochs,
                                          _learning_rate(config, ctx.data.spec) / 10, ctx.log,
                                          preserve_sparsity=config.prune.target > 0)
    ctx.qat_history = history
    return qat


def _representative_set(config: BuildConfig, data: DataResult) -> tuple[CalibrationSet, np.ndarray]:
    """The calibration images (training split, or --calib-data) and the checks on them."""
    quantize, train = config.quantize, data.splits.train
    if quantize.calib_data:
        calibration, images = from_folder(quantize.calib_data, data.size, quantize.calib_size, config.seed,
                                           config.data.max_pixels)
    else:
        calibration = select(train.images, train.labels, data.splits.classes, train.paths, quantize.calib_size, config.seed)
        images = train.images[calibration.indices]
    per_class = calibration.per_class if set(calibration.per_class) <= set(data.splits.classes) else {}
    reference = train.images[stratified_indices(train.labels, CHECK_IMAGES, config.seed)]  # bounded memory on big folders
    warnings = check(images, per_class, reference, data.splits.classes if per_class else [])
    return dataclasses.replace(calibration, warnings=tuple(warnings)), images


def _write_artifact(path: Path, content: bytes, ctx: BuildContext, started: float) -> None:
    path.write_bytes(content)
    ctx.log(f"  saved {path.name} ({len(content) / 1024:.1f} KiB, gzip {len(gzip.compress(content)) / 1024:.1f} KiB, "
            f"{time.perf_counter() - started:.1f}s)")


def run_export(config: BuildConfig, ctx: BuildContext) -> ExportResult:
    from edgeclf.toolchain.export import REFERENCE, with_metadata

    data: DataResult = ctx.data
    final = ctx.prune.model
    run_dir = ctx.run_dir
    (run_dir / "keras").mkdir()
    shutil.copyfile(run_dir / "checkpoints" / "best.keras", run_dir / "keras" / "model.keras")  # the trained model
    if config.prune.target > 0:
        final.save(run_dir / "keras" / "pruned.keras")
    (run_dir / "labels.txt").write_text("\n".join(data.splits.classes) + "\n", encoding="utf-8")
    artifacts = {}
    started = time.perf_counter()
    artifacts[REFERENCE.name] = run_dir / f"model_{REFERENCE.name}.tflite"
    classes = data.splits.classes
    reference = with_metadata(REFERENCE.convert(final, None), REFERENCE.name, config, classes, data.size)
    _write_artifact(artifacts[REFERENCE.name], reference, ctx, started)
    for name, content in ctx.quantize.contents.items():
        artifacts[name] = run_dir / f"model_{name}.tflite"
        _write_artifact(artifacts[name], with_metadata(content, name, config, classes, data.size), ctx,
                        time.perf_counter())
    dense = (with_metadata(REFERENCE.convert(ctx.train.model, None), REFERENCE.name, config, classes, data.size)
             if config.prune.target > 0 else None)
    return ExportResult(artifacts, dense)


def _measure(model: Model, evaluation: Evaluation, content: bytes) -> dict:
    stats = steady_latency(model)
    return {"bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9)),
            "latency_ms": {"median": stats.median_ms, "p90": stats.p90_ms, "p99": stats.p99_ms,
                           "threads": LATENCY_THREADS, "runs": stats.runs},
            "accuracy": evaluation.accuracy, "top5": evaluation.top5}


def run_evaluate(config: BuildConfig, ctx: BuildContext) -> EvaluateResult:
    """Evaluates each artifact with the runtime (the interpreter the device runs), not with Keras."""
    data: DataResult = ctx.data
    export: ExportResult = ctx.export
    val = data.splits.val
    evaluations, entries, pngs = {}, {}, {}
    for variant, path in export.artifacts.items():
        model = Model(path, num_threads=LATENCY_THREADS)
        evaluations[variant] = evaluation = evaluate(model, val.images, val.labels, val.paths)
        pngs[variant] = confusion_png(evaluation.confusion(), evaluation.labels)
        (ctx.run_dir / f"confusion_{variant}.png").write_bytes(pngs[variant])
        structure = model.structure
        entries[variant] = {
            "path": str(path.name), **_measure(model, evaluation, model.content),
            "agreement_with_float32": evaluation.agreement(evaluations["float32"]),
            "per_class": evaluation.per_class(), "confusion": evaluation.confusion().tolist(),
            "flips_vs_float32": flips(evaluations["float32"], evaluation),
            "input": model.input.as_dict(), "output": model.output.as_dict(),
            "ops": structure.op_counts(), "float_ops": len(structure.float_ops()),
            "weight_sparsity": structure.weight_sparsity(),
            "xnnpack": _xnnpack(model),
        }
        if data.splits.test is not None:
            test = data.splits.test
            entries[variant]["test_accuracy"] = evaluate(model, test.images, test.labels).accuracy
        ctx.log(f"  {variant}: top-1 {100 * evaluation.accuracy:.2f}%, agreement with float32 "
                f"{100 * entries[variant]['agreement_with_float32']:.2f}%, "
                f"median {entries[variant]['latency_ms']['median']:.3f} ms")
    dense = None
    if export.dense_reference is not None:
        reference = ctx.run_dir / ".dense_reference.tflite"
        reference.write_bytes(export.dense_reference)
        model = Model(reference, num_threads=LATENCY_THREADS, labels=list(data.splits.classes))
        dense = _measure(model, evaluate(model, val.images, val.labels), export.dense_reference)
        reference.unlink()
    for warning in xnnpack_warnings(entries):
        ctx.log(f"  warning: {warning}")
    return EvaluateResult(entries, dense, pngs)


def _xnnpack(model: Model) -> dict | None:
    """How the interpreter runs the artifact: XNNPACK partitions and the ops outside them."""
    found = delegation.read(model.content, model.backend, LATENCY_THREADS)
    return found.as_dict() if found else None


def xnnpack_warnings(artifacts: dict[str, dict]) -> list[str]:
    """One line for each full-integer artifact whose graph XNNPACK does not run in one partition: the op
    types left on TFLite's built-in kernels and the int8 vs float32 median measured here."""
    warnings = []
    reference = artifacts.get("float32")
    for name, artifact in artifacts.items():
        xnnpack = artifact.get("xnnpack")
        if name == "float32" or artifact["float_ops"] or not xnnpack:
            continue
        if xnnpack["xnnpack_partitions"] == 1 and xnnpack["outside_only_at_edges"]:
            continue
        ops = ", ".join(f"{op} x{count}" for op, count in xnnpack["outside"].items())
        cost = (f"; here it takes {artifact['latency_ms']['median'] / reference['latency_ms']['median']:.2f}x "
                f"float32's median ({artifact['latency_ms']['median']:.3f} vs "
                f"{reference['latency_ms']['median']:.3f} ms)" if reference else "")
        warnings.append(f"{artifact['path']}: XNNPACK runs it in {xnnpack['xnnpack_partitions']} partitions; "
                        f"{ops} run on TFLite's built-in kernels between them{cost}. Rebuild it with this edgeclf "
                        "(its export rewrites the ops it knows), or replace those layers.")
    return warnings


def _class_weight_report(config: BuildConfig, splits: Splits) -> dict | None:
    from edgeclf.toolchain.pipeline import class_weights

    if config.data.class_weight != "auto":
        return None
    weights = class_weights(splits.train.labels, len(splits.classes))
    return {name: round(weights[i], 4) for i, name in enumerate(splits.classes)}


def _latency_context(artifacts: dict[str, dict]) -> dict:
    """The CPU the latencies were measured on and, for int8 beside float32, what the ratio means there."""
    cpu = cpu_info()
    timings = [{"model": a["path"], "int8": a["float_ops"] == 0, "threads": LATENCY_THREADS,
                "median_ms": a["latency_ms"]["median"]} for a in artifacts.values()]
    return {"threads": LATENCY_THREADS, "cpu": cpu.as_dict(), "int8_notes": int8_notes(cpu, timings),
            "xnnpack_warnings": xnnpack_warnings(artifacts)}


def run_report(config: BuildConfig, ctx: BuildContext) -> dict:
    data: DataResult = ctx.data
    prune: PruneResult = ctx.prune
    quantize: QuantizeResult = ctx.quantize
    evaluated: EvaluateResult = ctx.evaluate
    splits = data.splits
    report = {
        "schema": report_module.SCHEMA,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "model": {"name": config.model.name, "size": data.size, "parameters": int(ctx.model.model.count_params())},
        "dataset": {"root": str(splits.root), "train": len(splits.train), "val": len(splits.val),
                    **({"test": len(splits.test)} if splits.test is not None else {}),
                    "classes": list(splits.classes), "split": splits.split, "per_class": splits.class_counts(),
                    "augment": config.data.augment, "class_weight": _class_weight_report(config, splits),
                    "cache": splits.cache.as_dict(), "skipped": splits.skipped},
        "artifacts": evaluated.artifacts,
        "latency": _latency_context(evaluated.artifacts),
        "dense_reference": evaluated.dense_reference,
        "sparsity": prune.sparsity,
        "xnnpack": prune.xnnpack,
        "calibration": quantize.calibration.as_dict() if quantize.calibration else None,
        "quantization_error": {"measure": "RMS error per op output in quantization steps (0.29 = rounding only)",
                               "worst_layers": quantize.layer_errors},
        "training": ctx.train.notes,
        "model_choice": ctx.choice,
        "history": {"train": ctx.train.history, "prune": prune.history,
                    "qat": ctx.qat_history},
        "stages": dict(ctx.seconds),
        "gate": quality_gate(config, evaluated.artifacts),
    }
    report_module.write_json(ctx.run_dir / "report.json", report)
    report_module.write_json(ctx.run_dir / "dataset_split.json", splits.listing())
    (ctx.run_dir / "report.md").write_text(report_module.markdown(report), encoding="utf-8")
    val = data.splits.val
    flipped = {f["path"] for a in report["artifacts"].values() for f in a["flips_vs_float32"][:200]}
    page = report_module.html_page(report, evaluated.confusion_pngs, thumbnails(val.images, val.paths, flipped),
                                   report_module.class_samples(val.images, val.labels, splits.classes),
                                   json.loads((ctx.run_dir / "env.json").read_text(encoding="utf-8")))
    (ctx.run_dir / "report.html").write_text(page, encoding="utf-8")
    return report


# The single source of truth for what a build does, in order.
STAGES: tuple[tuple[str, Callable[[BuildConfig, BuildContext], Any]], ...] = (
    ("data", run_data), ("model", run_model), ("train", run_train), ("prune", run_prune),
    ("quantize", run_quantize), ("export", run_export), ("evaluate", run_evaluate), ("report", run_report),
)


def _resume_dir(config: BuildConfig, out: Path) -> Path:
    """Where this config's checkpoints live: the same config (--resume aside) finds the same folder."""
    key = dataclasses.replace(config, train=dataclasses.replace(config.train, resume=False)).to_yaml()
    return out / ".resume" / hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class BuildResult:
    """What a finished build hands back: its run folder and the report written there."""

    run_dir: Path
    report: dict


def build(config: BuildConfig, log: Callable[[str], None] = lambda message: None) -> BuildResult:
    """Runs every stage into a RunFolder and returns the finished run.

    With --strategy multiworker every worker runs this; the chief (worker 0) writes the run into
    --out, the others into --out/.worker-<index>/.

    Raises:
        QualityGateFailed: --max-drop was exceeded; the run is written as <name>-failed.
        DiskFull: the disk filled up; the partial run was removed.
        Whatever a stage raises; the partial run folder is removed first.
    """
    from edgeclf.toolchain.train import check_tensorboard, make_strategy, set_mixed_precision, worker_index

    require_training_dependencies()
    check_tensorboard(config.train.tensorboard)
    strategy = make_strategy(config.train.strategy)  # first: multiworker must start before other TF work
    set_mixed_precision(config.train.mixed_precision)
    index = worker_index(strategy)
    out = Path(config.export.out) / f".worker-{index}" if index else Path(config.export.out)
    choice, trained = None, None
    if config.choice.latency_budget is not None:
        config, choice, trained = _choose(config, strategy, log)
    resume_dir = _prepare_resume(config, out, log)
    try:
        with RunFolder(out, log) as run:
            ctx = BuildContext(config, run.path, log, strategy=strategy, resume_dir=resume_dir,
                               started=f"{datetime.now():%Y%m%d-%H%M%S}-{Path(config.model.name).stem}", choice=choice,
                               trained_while_choosing=trained)
            _run_stages(config, ctx)
    finally:
        set_mixed_precision(False)
    shutil.rmtree(resume_dir, ignore_errors=True)  # finished: nothing left to resume
    with contextlib.suppress(OSError):
        resume_dir.parent.rmdir()  # only when no other config has an interrupted build waiting
    name = f"{datetime.now():%Y%m%d-%H%M%S}-{Path(config.model.name).stem}-{ctx.data.size}"
    if not ctx.report["gate"]["passed"]:
        # Written in full for inspection, but named as failed and never made runs/latest.
        run_dir = run.finish(f"{name}-failed", point_latest=False)
        raise QualityGateFailed(run_dir, "; ".join(ctx.report["gate"]["failed"]) +
                                f". The run is in {run_dir} (not runs/latest).")
    return BuildResult(run.finish(name), ctx.report)


def _choose(config: BuildConfig, strategy: Any, log: Callable[[str], None]) -> tuple[BuildConfig, dict, TrainResult]:
    """--latency-budget: the candidates' latency (device.json, or measured here), brief trainings of the most
    promising that fit, full trainings of the best, and the winner's config (with --int8 when the budget is for
    int8), its trained model (the build does not train it again) and the report table. The winner is the full run
    most accurate as deployed: its int8 top-1 for an int8 budget (see choose.next_contender)."""
    from edgeclf.toolchain import choose

    c = config.choice
    side = image_side(config.data.source, max_pixels=config.data.max_pixels)  # first: a folder that cannot be read fails before any timing
    candidates = choose.grid(c.models, c.alphas, c.sizes)
    log(f"[choose] {len(candidates)} candidates, --latency-budget {c.latency_budget:g} ms for {c.budget_variant} at "
        f"{c.threads} thread(s)")
    if c.device:
        _, timings = choose.read_device(Path(c.device), candidates, c.budget_variant, c.threads)
        where = f"the device of {c.device}"
    else:
        log("  timing them on this machine (pass --device device.json to judge them on the target)")
        timings, where = choose.measure_here(candidates, c.budget_variant, c.threads, log), "this machine"
    tried = choose.finalists(choose.fitting(timings, c.latency_budget, c.budget_variant, c.threads, where), c.finalists,
                             side)
    started, epochs = time.perf_counter(), c.trial_epochs or max(2, config.train.epochs // 10)
    trials = _brief_runs(config, tried, epochs, strategy, log)
    trial_seconds = round(time.perf_counter() - started, 1)
    int8 = c.budget_variant == "int8"
    full = _full_runs(config, choose.contenders(tried, trials, c.full_runs), strategy, int8, log)
    while (extra := choose.next_contender(tried, trials, {cid: run.deployed for cid, run in full.items()})) is not None:
        log(f"  {extra.candidate.id}'s brief run ({100 * trials[extra.candidate.id]:.2f}%) beat every full run"
            f"{' at int8' if int8 else ''}: training it fully too")
        full.update(_full_runs(config, [extra], strategy, int8, log))
    best = max(full, key=lambda cid: full[cid].deployed)
    log(f"  chosen: {best}")
    chosen = config.override({**next(t.candidate for t in tried if t.candidate.id == best).overrides(),
                              **({"quantize.int8": True} if int8 else {})})
    table = choose.choice_table(timings, c.latency_budget, trials,
                                {cid: round(run.accuracy, 4) for cid, run in full.items()},
                                {cid: round(run.int8_accuracy, 4) for cid, run in full.items() if int8}, best)
    return chosen, {"budget_ms": c.latency_budget, "variant": c.budget_variant, "threads": c.threads,
                    "measured_on": where, "image_side": side, "trial_epochs": epochs, "trial_seconds": trial_seconds,
                    "full_run_seconds": round(time.perf_counter() - started - trial_seconds, 1),
                    "chosen": best, "candidates": table}, full[best].result


def _brief_runs(config: BuildConfig, tried: list, epochs: int, strategy: Any,
                log: Callable[[str], None]) -> dict[str, float]:
    """Each finalist trained `epochs` with the step schedule, whose last half runs at a tenth of the learning
    rate: a short run at the full rate ends wherever its last noisy step left it (cnn's validation accuracy on
    digits went 81, 67, 84, 88, 72% in its first epochs at 1e-3 before settling at 98%)."""
    trials, brief = {}, {"train.epochs": epochs, "train.fine_tune_epochs": 0, "train.schedule": "step"}
    for timing in tried:
        trials[timing.candidate.id] = round(_train_apart(config, timing.candidate, strategy, brief).accuracy, 4)
        log(f"  {timing.candidate.id} ({timing.median_ms:.2f} ms): {100 * trials[timing.candidate.id]:.2f}% after "
            f"{epochs} epoch(s)")
    return trials


def _full_runs(config: BuildConfig, contenders: list, strategy: Any, int8: bool,
               log: Callable[[str], None]) -> dict[str, "_Trial"]:
    """The contenders trained as the build would train them (and, with `int8`, converted to full int8 as it would
    convert them): {candidate id: _Trial}."""
    full = {}
    for timing in contenders:
        full[timing.candidate.id] = run = _train_apart(config, timing.candidate, strategy, int8=int8)
        log(f"  {timing.candidate.id} trained fully: {100 * run.accuracy:.2f}%"
            + (f", int8 {100 * run.int8_accuracy:.2f}%" if int8 else ""))
    return full


@dataclass
class _Trial:
    """A candidate trained apart from the build: its training, best validation top-1, and int8 top-1 when asked."""

    result: TrainResult
    int8_accuracy: float | None = None

    @property
    def accuracy(self) -> float:
        return max(self.result.history.get("val_accuracy", [0.0]))

    @property
    def deployed(self) -> float:
        return self.accuracy if self.int8_accuracy is None else self.int8_accuracy


def _train_apart(config: BuildConfig, candidate: Any, strategy: Any, changes: dict | None = None,
                 int8: bool = False) -> _Trial:
    """A candidate's data, model and train stages (with `changes` to the build's settings) in a folder that is
    removed, with the same seed and split as the build; with `int8`, the trained model converted as the build's
    quantize and export stages convert it (unpruned: --prune comes after the choice) and its top-1 on the
    validation split with the runtime."""
    import tempfile

    config = config.override({**candidate.overrides(), **(changes or {}), "choice.latency_budget": None,
                              "choice.device": None, **({"quantize.int8": True} if int8 else {})})
    with tempfile.TemporaryDirectory(prefix=".edgeclf-trial-") as folder:
        ctx = BuildContext(config, Path(folder), lambda message: None, strategy=strategy, trial=True)
        for name, stage in STAGES[:3]:
            setattr(ctx, name, stage(config, ctx))
        return _Trial(ctx.train, _int8_accuracy(config, ctx) if int8 else None)


def _int8_accuracy(config: BuildConfig, ctx: BuildContext) -> float:
    """The trained model as the build's full-int8 artifact (same calibration set, conversion and metadata), top-1
    on the validation split with the runtime."""
    from edgeclf.toolchain.export import Calibrated, variant, with_metadata

    quantize, data = config.quantize, ctx.data
    _, images = _representative_set(config, data)
    content = variant("int8").convert(ctx.train.model, Calibrated(images, quantize.io, not quantize.per_tensor))
    path = ctx.run_dir / "model_int8.tflite"
    path.write_bytes(with_metadata(content, "int8", config, data.splits.classes, data.size))
    return evaluate(Model(path), data.splits.val.images, data.splits.val.labels).accuracy


def _prepare_resume(config: BuildConfig, out: Path, log: Callable[[str], None]) -> Path:
    """This config's resume folder: emptied unless --resume; stale ones of other configs removed."""
    resume_dir = _resume_dir(config, out)
    if not config.train.resume:
        shutil.rmtree(resume_dir, ignore_errors=True)
    elif not resume_dir.is_dir():
        log(f"  --resume: no interrupted build of this config under {out / '.resume'}; starting from scratch")
    remove_stale_resume(out, log)
    return resume_dir


def _run_stages(config: BuildConfig, ctx: BuildContext) -> None:
    (ctx.run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    report_module.write_json(ctx.run_dir / "env.json", report_module.environment(config.seed))
    for stage_index, (name, stage) in enumerate(STAGES, 1):
        ctx.log(f"[{stage_index}/{len(STAGES)}] {name}")
        started = time.perf_counter()
        setattr(ctx, name, stage(config, ctx))
        ctx.seconds[name] = round(time.perf_counter() - started, 3)
