"""The `edgeclf` command line: parses options and calls the library; no logic of its own.

TensorFlow is imported only inside `build`; every other command runs on the runtime alone.
"""
from __future__ import annotations

import functools
import json
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click
import numpy as np

from edgeclf import __version__
from edgeclf.runtime import folder as folders
from edgeclf.runtime.bench import bench as run_bench
from edgeclf.runtime.errors import UserError
from edgeclf.runtime.evaluate import class_mapping, evaluate
from edgeclf.runtime.files import write_atomically
from edgeclf.runtime.model import Model
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, check_max_pixels, preprocess

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}
EXIT_BAD_INPUT = 2


class InputError(click.ClickException):
    """Bad input from the user: one line, exit code 2."""

    exit_code = EXIT_BAD_INPUT


def reports_errors(command: Callable) -> Callable:
    """Turns user errors (runtime/errors.py UserError, from any layer) into one-line messages, exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            raise InputError(str(exc)) from exc

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def echo_table(header: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[int], sep: str = " ") -> None:
    """Every tabular output: the first column left-aligned, the others right-aligned, each in its width."""

    def line(cells: Sequence[str]) -> str:
        return "  " + sep.join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))

    click.echo(line(header))
    for row in rows:
        click.echo(line(row))


def _threads(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise InputError(f"--threads must be >= 1; received {value}. Use e.g. --threads 2.")
    return value


json_option = click.option("--json", "as_json", is_flag=True, help="Print results as JSON (for scripts).")
threads_option = click.option("--threads", type=int, default=None, show_default="backend default",
                              help="Interpreter threads.")


def _max_pixels(ctx: Any, param: Any, value: int) -> int:
    try:
        return check_max_pixels(value)
    except UserError as exc:
        raise InputError(str(exc)) from exc


max_pixels_option = click.option(
    "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, callback=_max_pixels,
    help="Pixel budget of one image (width x height), read from its header before decoding: a larger image is "
         "refused (skipped and listed in a folder), never decoded.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def cli() -> None:
    """edgeclf: train, prune and quantize image classifiers to .tflite, then run and benchmark them."""


class _Values(click.ParamType):
    """One or more comma-separated values of one type; a repeatable option's values are joined by _joined."""

    name = "values"

    def __init__(self, element: type) -> None:
        self.element = element

    def convert(self, value: Any, param: Any, ctx: Any) -> list:
        parts = value.split(",") if isinstance(value, str) else [value]
        try:
            return [self.element(part.strip() if isinstance(part, str) else part) for part in parts if part != ""]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.element.__name__} values", param, ctx)


def _joined(ctx: Any, param: Any, value: tuple) -> tuple:
    return tuple(item for part in value for item in part)


def _setting_option(setting: Any, flag: str | None = None) -> click.Option:
    """The click option for one BuildConfig setting (toolchain/config.py `setting()`): flag, help, choices, default."""
    meta, default = setting.field.metadata, setting.field.default
    shown = meta["show_default"]
    kwargs: dict[str, Any] = {"default": default, "help": meta["help"] or None, "metavar": meta["metavar"],
                              "show_default": shown() if callable(shown) else (shown or True)}
    decls = [flag or setting.flag]
    if setting.type is bool:
        decls = [f"{setting.flag}/--no-{setting.flag[2:]}"] if default else decls
        kwargs["is_flag"] = True
    elif meta["choices"]:
        kwargs["type"] = click.Choice(list(meta["choices"]))
    elif meta["folder"]:
        kwargs["type"] = click.Path(file_okay=False)
    elif setting.type in (int, float, str):
        kwargs["type"] = setting.type
    else:  # tuple[str, ...] (or of int, float): repeatable, each value may be a comma-separated list
        kwargs.update(multiple=True, type=_Values(typing.get_args(setting.type)[0]), callback=_joined)
        kwargs["show_default"] = shown or ",".join(map(str, default)) or False
    return click.Option([*decls, setting.param], **kwargs)


class SettingsCommand(click.Command):
    """`edgeclf build`: one option per BuildConfig setting, made from toolchain/config.py when first needed
    (parsing or --help), so that importing the CLI for a runtime command never imports the toolchain."""

    flags: dict[str, str] | None = None  # setting key -> its flag in this command; None: every setting, own flag

    @property
    def params(self) -> list[click.Parameter]:
        if not self._with_settings:
            from edgeclf.toolchain.config import settings

            chosen = [s for s in settings() if self.flags is None or s.key in self.flags]
            self._params = [*(_setting_option(s, self.flags and self.flags[s.key]) for s in chosen), *self._params]
            self._with_settings = True
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._params, self._with_settings = value, False


@cli.command(cls=SettingsCommand, context_settings=CONTEXT)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML build config; flags given on the command line override it.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
@click.pass_context
@reports_errors
def build(ctx: click.Context, config_file: str | None, quiet: bool, as_json: bool, **flags: Any) -> None:
    """Train, prune, quantize, export and evaluate a classifier into runs/<id>/."""
    from edgeclf.runtime._native_log import filter_process_stderr

    filter_process_stderr()  # before TensorFlow loads: its C++ logs ignore every log-level setting
    from edgeclf.toolchain.config import BuildConfig, settings

    config = BuildConfig.from_yaml(config_file) if config_file else BuildConfig()
    given = {s.key: flags[s.param] for s in settings()  # a flag overrides --config only when given
             if ctx.get_parameter_source(s.param) != click.core.ParameterSource.DEFAULT}
    config = config.override(given)

    from edgeclf.toolchain.gate import QualityGateFailed
    from edgeclf.toolchain.build import build as run_build
    from edgeclf.toolchain.export import ExportError
    from edgeclf.toolchain.runfolder import DiskFull

    log = (lambda message: None) if quiet or as_json else (lambda message: click.echo(message, err=True))
    try:
        result = run_build(config, log=log)
    except ExportError as exc:
        raise click.ClickException(f"export failed: {exc}") from exc
    except QualityGateFailed as exc:
        raise click.ClickException(f"quality gate failed: {exc}") from exc
    except DiskFull as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("interrupted: the partial run was removed and earlier runs are untouched. Run the same command "
                   "with --resume to continue from the last finished epoch.", err=True)
        sys.exit(130)
    run_dir, report = result.run_dir, result.report
    summary = {"run": str(run_dir), "artifacts": {
        name: {"path": str(run_dir / a["path"]), "accuracy": a["accuracy"], "bytes": a["bytes"],
               "gzip_bytes": a["gzip_bytes"], "latency_ms": a["latency_ms"]["median"]}
        for name, a in report["artifacts"].items()}, "sparsity": report["sparsity"]["overall"]}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"run: {run_dir}")
    echo_table(["variant", "top-1", "KiB", "gzip KiB", "ms", "file"],
               ([name, f"{100 * a['accuracy']:.2f}%", f"{a['bytes'] / 1024:.1f}", f"{a['gzip_bytes'] / 1024:.1f}",
                 f"{a['latency_ms']:.3f}", Path(a["path"]).name] for name, a in summary["artifacts"].items()),
               [11, 8, 9, 9, 8, 0])
    if config.prune.target:
        click.echo(f"  sparsity {summary['sparsity']:.3f} (target {config.prune.target:g}, {config.prune.structure})")
    click.echo(f"  report: {run_dir / 'report.md'}")


class CandidatesCommand(SettingsCommand):
    flags = {"choice.models": "--models", "choice.alphas": "--alphas", "choice.sizes": "--sizes"}


@cli.command(cls=CandidatesCommand, context_settings=CONTEXT)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the .tflite files and manifest.json (files of the same grid already there are kept).")
@json_option
@reports_errors
def candidates(out_dir: str, as_json: bool, **flags: Any) -> None:
    """Random-weight float32 and int8 .tflite files of a grid of models (family x width x size), to time on the
    device with the runtime alone: edgeclf bench DIR/*.tflite --threads N --json > device.json; then
    edgeclf build --latency-budget MS --device device.json."""
    from edgeclf.runtime._native_log import filter_process_stderr

    filter_process_stderr()  # before TensorFlow loads
    from edgeclf.toolchain.choose import grid, write_candidates

    chosen = grid(flags["choice__models"], flags["choice__alphas"], flags["choice__sizes"])
    log = (lambda message: None) if as_json else (lambda message: click.echo(message, err=True))
    log(f"writing {len(chosen)} candidates x float32, int8 into {out_dir}")
    manifest = write_candidates(Path(out_dir), chosen, log)
    if as_json:
        emit_json(manifest)
        return
    echo_table(["candidate", "float32 KiB", "int8 KiB"],
               ([c["id"], f"{c['bytes']['float32'] / 1024:.1f}", f"{c['bytes']['int8'] / 1024:.1f}"]
                for c in manifest["candidates"]), [28, 12, 10])
    click.echo(f"grid {manifest['grid']}: {len(chosen)} candidates in {out_dir} (manifest.json). On the device:\n"
               f"  edgeclf bench {out_dir}/*.tflite --threads 1 --json > device.json\n"
               f"then here: edgeclf build --data DIR --latency-budget MS --device device.json")


@cli.command("data", context_settings=CONTEXT)
@click.argument("folder", metavar="DIR")
@click.option("--show", type=int, default=20, help="Skipped files and duplicate groups to list (all with --json).")
@max_pixels_option
@json_option
@reports_errors
def data_command(folder: str, show: int, max_pixels: int, as_json: bool) -> None:
    """Check a dataset folder before training: per-class counts, image sizes, duplicates, files that would be skipped."""
    from edgeclf.toolchain.data import resolve_source
    from edgeclf.toolchain.survey import survey

    root = resolve_source(folder)
    splits = folders.scan_splits(root)
    with _Progress("checking", sum(len(split.files) for split in splits.values()), not as_json) as progress:
        result = survey(root, progress, splits, max_pixels)
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(f"{result.root}: {result.layout}, {len(result.classes)} classes")
    splits = list(result.counts)
    echo_table(["class", *splits], ([name[:24], *(str(result.counts[s][name]) for s in splits)] for name in result.classes),
               [24] + [8] * len(splits), sep="")
    click.echo("  image sizes (longer side, px): " + ", ".join(f"{b}: {n}" for b, n in result.sizes.items()))
    click.echo("  most common: " + ", ".join(f"{size} ({n})" for size, n in result.common_sizes))
    click.echo(f"  duplicates (identical bytes): {len(result.duplicates)} group(s)")
    for group in result.duplicates[:show]:
        click.echo(f"    {' = '.join(group['paths'])}" + (f"  [classes {', '.join(group['classes'])}]"
                                                          if len(group["classes"]) > 1 else ""))
    click.echo(f"  would be skipped: {len(result.skipped)} file(s)")
    for item in result.skipped[:show]:
        click.echo(f"    {item['path']}: {item['reason']}")
    if len(result.skipped) > show or len(result.duplicates) > show:
        click.echo("    ... (--show N or --json for all)")
    for line in result.advice:
        click.echo(f"  note: {line}")


def _load_model(path: str, threads: int | None = None) -> Model:
    return Model(path, num_threads=_threads(threads))


@cli.command(context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--top-k", "-k", type=int, default=3, help="Labels to print per image.")
@threads_option
@max_pixels_option
@json_option
@reports_errors
def classify(model_path: str, images: tuple[str, ...], top_k: int, threads: int | None, max_pixels: int,
             as_json: bool) -> None:
    """Print the top-k labels and scores of each image."""
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1; received {top_k}. Use e.g. --top-k 3.")
    model = _load_model(model_path, threads)
    results = []
    for path in images:
        scores = model.predict(preprocess(path, model.input_size, max_pixels))[0]
        results.append({"image": path, "top_k": [{"label": label, "score": score}
                                                 for label, score in model.top_k(scores, top_k)]})
    if as_json:
        emit_json(results)
        return
    for result in results:
        best = ", ".join(f"{t['label']} {t['score']:.3f}" for t in result["top_k"])
        click.echo(f"{result['image']}: {best}")


def _tensor_line(info: dict) -> str:
    quant = f", scale {info['scale']:g}, zero point {info['zero_point']}" if info["scale"] else ""
    return f"{info['dtype']} {info['shape']}{quant}"


@cli.command(context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL")
@json_option
@reports_errors
def inspect(model_path: str, as_json: bool) -> None:
    """Show a model's input/output types, shapes, quantization, ops (and which of them XNNPACK runs) and size."""
    from edgeclf.runtime import delegation

    model = _load_model(model_path)
    info = model.describe()
    xnnpack = delegation.read(model.content, model.backend)
    info["xnnpack"] = xnnpack.as_dict() if xnnpack else None
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info['path']}: {info['bytes'] / 1024:.1f} KiB ({info['backend']})")
    click.echo(f"  input   {_tensor_line(info['input'])}")
    click.echo(f"  output  {_tensor_line(info['output'])}")
    labels = info["labels"]
    click.echo(f"  labels  {len(labels)}: {', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}")
    click.echo(f"  ops     {sum(info['ops'].values())}: " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()))
    click.echo(f"  float32 ops: {info['float_ops']}"
               + (f"   weight sparsity: {info['weight_sparsity']:.3f}" if info["weight_sparsity"] is not None else ""))
    click.echo(f"  {xnnpack.summary() if xnnpack else 'XNNPACK partitions: not listed by ' + info['backend']}")
    meta = info["metadata"]
    if meta is None:
        click.echo("  metadata: none (add it with `edgeclf metadata MODEL --labels labels.txt`)")
        return
    click.echo(f"  metadata: {meta['name']!r} version {meta['version'] or '-'}, author {meta['author'] or '-'}, "
               f"license {meta['license'] or '-'}")
    click.echo(f"    input {meta['color_space']}, normalization mean {meta['normalization']['mean']} "
               f"std {meta['normalization']['std']}, range {meta['input_stats']['min']}-{meta['input_stats']['max']}; "
               f"{len(meta['labels'])} labels packed")
    if meta["description"]:
        click.echo(f"    {meta['description']}")


@cli.command("metadata", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL")
@click.option("--labels", "labels_file", required=True, type=click.Path(dir_okay=False),
              help="Text file with one label per line, in output order.")
@click.option("--name", default=None, show_default="the file name", help="Model name.")
@click.option("--description", default="", help="What the model does.")
@click.option("--author", default="")
@click.option("--license", "license_", default="")
@click.option("--version", "version_", default="1", help="Model version.")
@click.option("--mean", type=float, default=0.0, help="Normalization mean: the model takes (pixel - mean) / std.")
@click.option("--std", type=float, default=1.0, help="Normalization std (edgeclf models take raw pixels: 0 and 1).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              show_default="MODEL_metadata.tflite beside MODEL", help="Where to write the new model.")
@click.option("--in-place", is_flag=True, help="Replace MODEL itself (atomically) instead of writing a copy.")
@json_option
@reports_errors
def metadata_command(model_path: str, labels_file: str, name: str | None, description: str, author: str,
                     license_: str, version_: str, mean: float, std: float, out_path: str | None,
                     in_place: bool, as_json: bool) -> None:
    """Add or replace TFLite Metadata (labels, normalization) in any .tflite classifier."""
    from edgeclf.runtime.metadata import MetadataError, ModelMetadata, write
    from edgeclf.runtime.model import read_labels

    if in_place and out_path:
        raise InputError("--in-place and --out exclude each other; received both. Use one of them.")
    if std == 0:
        raise InputError("--std must not be 0; received 0. Use e.g. --std 1 (edgeclf models) or --std 127.5.")
    model = _load_model(model_path)
    labels_path = Path(labels_file)
    if not labels_path.is_file():
        raise InputError(f"{labels_path}: no such labels file. Pass a text file with one label per line.")
    labels = tuple(read_labels(labels_path))
    source = Path(model_path)
    target = source if in_place else Path(out_path or source.with_name(f"{source.stem}_metadata.tflite"))
    info = ModelMetadata(name=name or source.stem, labels=labels, description=description, version=version_,
                         author=author, license=license_, mean=(mean,), std=(std,))
    try:
        content = write(model.content, info)
    except MetadataError as exc:
        raise InputError(f"{source}: {exc}") from exc
    write_atomically(target, content)
    result = {"model": str(target), "bytes": len(content), "labels": len(labels), "source_kept": target != source}
    if as_json:
        emit_json(result)
        return
    click.echo(f"wrote {target} ({len(content) / 1024:.1f} KiB) with {len(labels)} labels"
               + ("" if in_place else f"; {source} unchanged"))


def _resolve_data(data: str) -> Path:
    """A folder, or a built-in dataset name (digits written once; needs scikit-learn)."""
    from edgeclf.runtime.datasets import resolve

    return folders.eval_root(resolve(data))


class _Progress:
    """A click progress bar on stderr for long loops, silent when output is JSON or not a terminal."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        show = enabled and total and sys.stderr.isatty()
        self._bar = click.progressbar(length=total, label=label, file=sys.stderr) if show else None

    def __enter__(self) -> Callable[[int], None]:
        if self._bar is None:
            return lambda n: None
        self._bar.__enter__()
        return self._bar.update

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _labelled_images(models: list[Model], data: str, show_progress: bool,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[folders.LabelledImages, np.ndarray, Path]:
    """Loads the eval images once at the first model's input size; targets in its label space."""
    root = _resolve_data(data)
    folder = folders.scan(root)
    mapping = class_mapping(folder.classes, models[0], root)
    for other in models[1:]:
        if other.labels != models[0].labels:
            raise InputError(f"{other.path} has labels {other.labels[:5]}... which differ from "
                             f"{models[0].path}'s; compare models trained on the same classes.")
        if other.input_size != models[0].input_size:
            raise InputError(f"{other.path} takes {other.input_size} inputs but {models[0].path} takes "
                             f"{models[0].input_size}; compare models with the same input size.")
    with _Progress("decoding", len(folder.files), show_progress) as progress:
        loaded = folders.load(folder.files, models[0].input_size, progress, max_pixels)
    if not len(loaded.labels):
        raise InputError(f"{root}: no readable images. Check the skipped files: {loaded.skipped[:3]}")
    return loaded, mapping[loaded.labels], root


def _evaluate(model: Model, loaded: folders.LabelledImages, targets: np.ndarray, show_progress: bool):
    with _Progress(f"{model.path.name}", len(targets), show_progress) as progress:
        return evaluate(model, loaded.images, targets, loaded.paths, progress)


def _write_text(path: str, text: str) -> None:
    write_atomically(Path(path), text.encode("utf-8"))


data_option = click.option("--data", required=True,
                           help="Labelled image folder (root/<class>/*; its val/ split if it has one) or digits.")
html_option = click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
                           help="Also write one self-contained HTML page with tables and figures.")


@cli.command("eval", context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL")
@data_option
@threads_option
@click.option("--png", "png_file", type=click.Path(dir_okay=False), default=None,
              help="Write the confusion matrix as a PNG.")
@html_option
@max_pixels_option
@json_option
@reports_errors
def eval_command(model_path: str, data: str, threads: int | None, png_file: str | None, html_file: str | None,
                 max_pixels: int, as_json: bool) -> None:
    """Accuracy, per-class precision/recall/F1, confusion matrix and misclassified files on a labelled folder."""
    from edgeclf.runtime.render import confusion_png, eval_page, thumbnails

    model = _load_model(model_path, threads)
    loaded, targets, root = _labelled_images([model], data, not as_json, max_pixels)
    evaluation = _evaluate(model, loaded, targets, not as_json)
    result = {"model": model_path, "data": str(root), **evaluation.as_dict(), "skipped": loaded.skipped}
    if png_file or html_file:
        confusion = confusion_png(evaluation.confusion(), evaluation.labels)
        if png_file:
            write_atomically(Path(png_file), confusion)
        if html_file:
            thumbs = thumbnails(loaded.images, loaded.paths, [m["path"] for m in result["misclassified"][:200]])
            _write_text(html_file, eval_page(result, confusion, thumbs))
    if as_json:
        emit_json(result)
        return
    click.echo(f"{model_path} on {root}: top-1 {100 * evaluation.accuracy:.2f}%  top-5 "
               f"{100 * evaluation.top5:.2f}%  ({len(targets)} images, {len(loaded.skipped)} skipped)")
    echo_table(["class", "support", "precision", "recall", "F1"],
               ([label[:20], str(c["support"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}"]
                for label, c in result["per_class"].items()), [20, 8, 10, 8, 8])
    matrix = evaluation.confusion()
    width = max(4, max(len(str(v)) for v in matrix.flat) + 1)
    click.echo("  confusion (rows: true, columns: predicted)")
    echo_table(["", *(label[:width - 1] for label in evaluation.labels)],
               ([label[:12], *(str(v) for v in row)] for label, row in zip(evaluation.labels, matrix)),
               [12] + [width] * len(evaluation.labels), sep="")
    wrong = result["misclassified"]
    click.echo(f"  misclassified: {len(wrong)}")
    for m in wrong[:20]:
        click.echo(f"    {m['path']}: {m['label']} -> {m['predicted']} ({m['score']:.2f})")
    if len(wrong) > 20:
        click.echo(f"    ... {len(wrong) - 20} more (--json lists all)")


@cli.command(context_settings=CONTEXT)
@click.argument("model_paths", nargs=-1, required=True, metavar="MODEL_A MODEL_B [MODEL...]")
@data_option
@threads_option
@click.option("--max-drop", type=float, default=None,
              help="Exit 1 when a model's top-1 is more than this many points below the first's (CI gate).")
@html_option
@max_pixels_option
@json_option
@reports_errors
def compare(model_paths: tuple[str, ...], data: str, threads: int | None, max_drop: float | None,
            html_file: str | None, max_pixels: int, as_json: bool) -> None:
    """Run models on the same images: accuracy, agreement, flips, divergence, size and latency."""
    from edgeclf.runtime.cpu import cpu_info, int8_notes
    from edgeclf.runtime.evaluate import compare_models
    from edgeclf.runtime.render import compare_page, confusion_png, thumbnails

    if len(model_paths) < 2:
        raise InputError(f"compare needs at least two models; received {len(model_paths)}. "
                         "Use e.g. edgeclf compare model_float32.tflite model_int8.tflite --data val/.")
    if max_drop is not None and max_drop < 0:
        raise InputError(f"--max-drop must be >= 0 points; received {max_drop}. Use e.g. --max-drop 1.0.")
    models = [_load_model(path, threads) for path in model_paths]
    loaded, targets, root = _labelled_images(models, data, not as_json, max_pixels)
    evaluations = [_evaluate(model, loaded, targets, not as_json) for model in models]
    rows = compare_models(models, evaluations, loaded.images[0], threads)
    cpu = cpu_info()
    result = {"data": str(root), "images": int(len(targets)), "skipped": loaded.skipped, "models": rows,
              "cpu_features": cpu.as_dict(), "int8_notes": int8_notes(cpu, rows)}
    if html_file:
        flipped = [f["path"] for row in rows[1:] for f in row["flips"][:200]]
        confusions = [confusion_png(e.confusion(), e.labels) for e in evaluations]
        _write_text(html_file, compare_page(result, confusions, thumbnails(loaded.images, loaded.paths, flipped)))
    dropped = [r for r in rows[1:] if max_drop is not None and -r["difference_pts"] > max_drop]
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{len(targets)} images from {root}")
        echo_table(["model", "KiB", "top-1", "diff pts", "agree", "KL", "cosine", "flips", "ms"],
                   ([r["model"][-40:], f"{r['bytes'] / 1024:.1f}", f"{100 * r['accuracy']:.2f}%",
                     f"{r['difference_pts']:+.2f}", f"{100 * r['agreement']:.2f}%", f"{r['mean_kl']:.4f}",
                     f"{r['mean_cosine']:.4f}", str(len(r["flips"])), f"{r['median_ms']:.3f}"] for r in rows),
                   [40, 8, 8, 9, 8, 8, 7, 6, 8])
        for row in rows[1:]:
            for f in row["flips"][:10]:
                click.echo(f"    flip {f['path']}: {f['label']}: {f['reference']} -> {f['other']} ({f['outcome']})")
        click.echo(f"  latency on {cpu.name} ({cpu.feature_list()})")
        for note in result["int8_notes"]:
            click.echo(f"  {note}")
    if dropped:
        raise click.ClickException("; ".join(
            f"{r['model']} is {-r['difference_pts']:.2f} points below {rows[0]['model']} (--max-drop {max_drop})"
            for r in dropped))


def _thread_list(value: str) -> list[int | None]:
    try:
        threads = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        threads = [0]
    if not threads or any(t < 1 for t in threads):
        raise InputError(f"--threads must be a comma-separated list of integers >= 1; received {value!r}. "
                         "Use e.g. --threads 1,2,4.")
    return threads


@cli.command(context_settings=CONTEXT)
@click.argument("model_paths", nargs=-1, required=True, metavar="MODEL...")
@click.option("--threads", default="1", help="Thread counts to measure, comma-separated (e.g. 1,2,4).")
@click.option("--runs", type=int, default=50, help="Minimum timed inferences.")
@click.option("--min-time", type=float, default=1.0, help="Minimum seconds of timed inferences.")
@click.option("--warmup", type=int, default=5, help="Inferences run and discarded before timing.")
@click.option("--data", default=None, show_default="random pixels",
              help="Feed real images from this folder (preprocessed like eval) instead of random pixels.")
@click.option("--compare-to", "baseline_file", type=click.Path(dir_okay=False), default=None,
              help="A previous `bench --json` output; exit 1 when a median regressed past --threshold.")
@click.option("--threshold", type=float, default=0.10, help="Allowed median slowdown vs --compare-to (0.10 = 10%).")
@json_option
@reports_errors
def bench(model_paths: tuple[str, ...], threads: str, runs: int, min_time: float, warmup: int, data: str | None,
          baseline_file: str | None, threshold: float, as_json: bool) -> None:
    """Time model load, first inference and steady-state latency on this CPU."""
    from edgeclf.runtime.bench import regressions
    from edgeclf.runtime.cpu import cpu_info, int8_notes

    for name, value, least in (("--runs", runs, 1), ("--warmup", warmup, 0)):
        if value < least:
            raise InputError(f"{name} must be >= {least}; received {value}. Use e.g. {name} {max(least, 5)}.")
    if min_time < 0:
        raise InputError(f"--min-time must be >= 0 seconds; received {min_time}. Use e.g. --min-time 1.")
    if threshold <= 0:
        raise InputError(f"--threshold must be > 0; received {threshold}. Use e.g. --threshold 0.1 for 10%.")
    baseline = _read_baseline(Path(baseline_file)) if baseline_file else None
    thread_counts = _thread_list(threads)
    results = []
    for path in model_paths:
        images, source = (None, "random") if data is None else (_bench_images(path, data), data)
        results += [run_bench(path, t, runs, min_time, warmup, images, source).as_dict() for t in thread_counts]
    first = {r["threads"]: r["median_ms"] for r in results if r["model"] == model_paths[0]}
    for r in results:
        r["ratio_to_first"] = r["median_ms"] / first[r["threads"]]
    slower = regressions(results, baseline, threshold) if baseline is not None else []
    cpu = cpu_info()
    notes = int8_notes(cpu, results)
    if as_json:
        emit_json({"cpu": cpu.name, "cpu_features": cpu.as_dict(), "results": results, "int8_notes": notes,
                   "regressions": slower})
    else:
        click.echo(f"{cpu.name}, {cpu.cores} cores, {cpu.feature_list()}; {results[0]['backend']}; "
                   f"input: {results[0]['input']}")
        echo_table(["model", "KiB", "threads", "load ms", "first ms", "median ms", "p90 ms", "p99 ms", "inf/s", "vs first"],
                   ([r["model"][-40:], f"{r['bytes'] / 1024:.1f}", str(r["threads"]), f"{r['load_ms']:.1f}",
                     f"{r['first_ms']:.2f}", f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}",
                     f"{r['throughput']:.1f}", f"{r['ratio_to_first']:.2f}x"] for r in results),
                   [40, 8, 7, 8, 9, 10, 8, 8, 8, 8])
        click.echo(f"  peak RSS {max(r['peak_rss_mb'] for r in results):.1f} MiB")
        for note in notes:
            click.echo(f"  {note}")
    if slower:
        raise click.ClickException("latency regressed: " + "; ".join(slower))


def _read_baseline(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable `edgeclf bench --json` file ({exc}). "
                         "Write one with: edgeclf bench MODEL --json > baseline.json") from exc
    results = data.get("results") if isinstance(data, dict) else data
    if not isinstance(results, list) or not all(isinstance(r, dict) and "median_ms" in r for r in results):
        raise InputError(f"{path}: expected the output of `edgeclf bench --json` (results with median_ms). "
                         "Write one with: edgeclf bench MODEL --json > baseline.json")
    return results


def _bench_images(model_path: str, data: str, limit: int = 64) -> np.ndarray:
    model = _load_model(model_path)
    root = _resolve_data(data)
    loaded = folders.load(folders.scan(root).files[:limit], model.input_size)
    if not len(loaded.labels):
        raise InputError(f"{root}: no readable images to benchmark with.")
    return loaded.images


@cli.command(context_settings=CONTEXT)
@click.argument("model_path", metavar="MODEL")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, is_eager=True,
              callback=lambda ctx, param, value: _camera_config(ctx, param, value),
              help="YAML camera config: every option below is a key (--top-k is top_k; the model is model); "
              "flags given on the command line override it.")
@click.option("--print-config", is_flag=True, help="Print the effective configuration (config file and flags) as "
              "YAML and exit: a starting point for --config.")
@click.option("--source", default="0", help="Webcam index (0, 1), picamera, a video file, an rtsp:// or http:// URL, "
              "or a folder of images.")
@threads_option
@click.option("--top-k", "-k", type=int, default=3, help="Labels per frame.")
@click.option("--every", type=int, default=1, help="Classify every Nth frame.")
@click.option("--smooth", type=int, default=1, help="Average the scores over the last K classified frames.")
@click.option("--threshold", type=float, default=0.0, help='Report "unknown" when the best score is below this.')
@click.option("--resolution", default=None, show_default="the camera's own; picamera 640x480",
              help="Capture size WxH for a webcam or the Pi camera (e.g. 320x240): smaller frames cost less "
              "to decode and resize, which bounds a small model's frame rate.")
@click.option("--roi", default=None, help="Classify only this region: x,y,w,h in frame pixels.")
@click.option("--center-crop", is_flag=True, help="Classify the largest centred square of the frame.")
@click.option("--max-frames", type=int, default=None, show_default="until the source ends or Ctrl-C",
              help="Stop after this many classified frames.")
@click.option("--display", is_flag=True, help="Show the annotated frames in a window (needs opencv-python with GUI).")
@click.option("--record", type=click.Path(dir_okay=False), default=None, help="Write the annotated frames to this .mp4.")
@click.option("--serve", default=None, help="Serve the live annotated stream and top-k on HOST:PORT "
              "(e.g. 127.0.0.1:8080; 0.0.0.0:8080 exposes it to the network, with a password: "
              "$EDGECLF_WEB_PASSWORD or --serve-password-file).")
@click.option("--serve-password-file", type=click.Path(dir_okay=False), default=None,
              help="File (mode 0600) holding the web view's password (HTTP basic auth, any user name); "
              "or set EDGECLF_WEB_PASSWORD. Never on the command line.")
@click.option("--serve-open", is_flag=True, help="Serve a network address without a password, on purpose.")
@click.option("--serve-viewers", type=int, default=4, help="Streams served at once; one more gets 503.")
@click.option("--quiet", "-q", is_flag=True, help="No JSON line per frame; only the summary.")
@click.option("--confirm", type=int, default=3, show_default=True,
              help="The state changes after a new label (or unknown) wins this many classified frames in a row.")
@click.option("--hold", type=float, default=None,
              help="Instead of --confirm: the state changes after a new label holds this many seconds.")
@click.option("--events-only", is_flag=True, help="Print a JSON line only for frames that change the state.")
@max_pixels_option
@click.option("--webhook", default=None, help="POST each state change as JSON to this URL, signed with "
              "X-Edgeclf-Signature when $EDGECLF_WEBHOOK_SECRET or --webhook-secret-file is set; retried, queued on disk.")
@click.option("--webhook-secret-file", type=click.Path(dir_okay=False), default=None,
              help="File (mode 0600) holding the webhook's HMAC-SHA256 secret.")
@click.option("--webhook-queue", type=click.Path(file_okay=False), default=None,
              show_default="~/.cache/edgeclf/webhook-<hash of the URL>",
              help="Folder where changes wait for the receiver (the last 1000), kept across restarts.")
@click.option("--snapshots", type=click.Path(file_okay=False), default=None,
              help="Write the frame of each state change here as a JPEG named by time and state.")
@click.option("--snapshots-max-mb", type=float, default=100.0, show_default=True,
              help="Cap of the snapshot folder; the oldest snapshots are removed first.")
@click.option("--gpio", multiple=True, metavar="LABEL=PIN",
              help="Drive a GPIO pin (BCM number) high while the state is LABEL (gpiozero); repeatable.")
@click.option("--realtime/--no-realtime", default=None, show_default="on with --serve, --mqtt, --webhook or --fps",
              help="Play a video file or image folder at its own frame rate, as a camera would (frames the model "
              "misses are dropped and counted).")
@click.option("--loop", is_flag=True, help="Play a video file or image folder again from the start when it ends.")
@click.option("--fps", type=float, default=None, show_default="a video's own rate; 10 for a folder",
              help="Frames per second to play a video file or image folder at (turns --realtime on).")
@click.option("--mqtt", default=None, metavar="URL", help="Publish the state, changes and stats to a broker: "
              "mqtt://[USER@]HOST[:PORT]/PREFIX or mqtts://...; the password comes from $EDGECLF_MQTT_PASSWORD "
              "or --mqtt-password-file, never the URL.")
@click.option("--mqtt-ca", type=click.Path(dir_okay=False), default=None, help="CA file (PEM) for an mqtts:// broker.")
@click.option("--mqtt-password-file", type=click.Path(dir_okay=False), default=None,
              help="File (chmod 600) holding the broker password.")
@click.option("--mqtt-keepalive", type=int, default=30, show_default=True,
              help="Seconds between keepalives; the broker announces `offline` 1.5x this after a lost camera.")
@click.option("--mqtt-stats", type=float, default=10.0, show_default=True, help="Publish stats every this many seconds.")
@click.option("--device", "device_name", default=None, show_default="this host's name",
              help="The camera's id in MQTT topics and in Home Assistant.")
@click.option("--ha-discovery", is_flag=False, flag_value="homeassistant", default=None, metavar="[PREFIX]",
              help="Announce the camera to Home Assistant (MQTT device discovery; prefix homeassistant).")
@click.option("--alert", "alerts", multiple=True, metavar="LABEL",
              help="With --ha-discovery: a binary_sensor that is on while the state is LABEL (repeatable).")
@click.option("--review", "review_dir", type=click.Path(file_okay=False), default=None,
              help="Keep the frames worth a human look here (top score below --review-below, and those around each "
              "state change) with a JSON sidecar each; file them into a training folder with edgeclf collect --review DIR.")
@click.option("--review-below", type=float, default=0.5, help="--review keeps frames whose top score is below this.")
@click.option("--review-every", type=float, default=2.0, help="--review saves at most once per this many seconds.")
@click.option("--review-max-mb", type=float, default=200.0, help="Cap of the --review folder; the oldest go first.")
@reports_errors
@click.pass_context
def camera(ctx: click.Context, config_file: str | None, print_config: bool, serve_password_file: str | None,
           serve_open: bool, serve_viewers: int,
           model_path: str, source: str, threads: int | None, top_k: int, every: int, smooth: int, threshold: float,
           resolution: str | None, roi: str | None, center_crop: bool, max_frames: int | None, display: bool,
           record: str | None, serve: str | None, quiet: bool, confirm: int, hold: float | None,
           events_only: bool, max_pixels: int, webhook: str | None, webhook_secret_file: str | None,
           webhook_queue: str | None, snapshots: str | None, snapshots_max_mb: float, gpio: tuple[str, ...],
           realtime: bool | None, loop: bool, fps: float | None, review_dir: str | None, review_below: float,
           review_every: float, review_max_mb: float, mqtt: str | None, mqtt_ca: str | None,
           mqtt_password_file: str | None, mqtt_keepalive: int, mqtt_stats: float, device_name: str | None,
           ha_discovery: str | None, alerts: tuple[str, ...]) -> None:
    """Classify a live camera, a video, a stream or an image folder; JSON lines out, summary at the end.

    A debounced state (--confirm / --hold) marks the frames where what the camera sees changes: those
    JSON lines carry a "state" field, and --events-only prints only them.
    """
    if print_config:
        from edgeclf.runtime.camera_config import effective_config, to_yaml

        click.echo(to_yaml(effective_config(ctx)), nl=False)
        return
    from edgeclf.runtime.outputs import JsonLinesSink, RecorderSink, WindowSink
    from edgeclf.runtime.sdnotify import SystemdSink, stop_on_sigterm
    from edgeclf.runtime.webauth import WebAuth
    from edgeclf.runtime.serve import LiveServer, ServeSink, parse_address
    from edgeclf.runtime.sinks import Sinks
    from edgeclf.runtime.actions import ActionError, wants_realtime
    from edgeclf.runtime.actions import from_options as action_sinks
    from edgeclf.runtime.sources import SourceError, open_source, parse_resolution, play_file
    from edgeclf.runtime.stream import StreamOptionError, StreamOptions, parse_roi, run_stream

    try:
        options = StreamOptions(top_k=top_k, every=every, smooth=smooth, threshold=threshold,
                                roi=parse_roi(roi) if roi else None, center_crop=center_crop, max_frames=max_frames,
                                confirm=confirm, hold=hold)
        address = parse_address(serve) if serve else None
        auth = WebAuth.for_serving(address[0], serve_open, serve_password_file) if address else None
        if serve_viewers < 1:
            raise ValueError(f"--serve-viewers must be >= 1; received {serve_viewers}. Use e.g. --serve-viewers 4.")
        size = parse_resolution(resolution) if resolution else None
        realtime = wants_realtime(realtime, ctx.params)
    except (StreamOptionError, SourceError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    if record and Path(record).suffix.lower() != ".mp4":
        raise InputError(f"--record {record}: the recorder writes MP4; use a .mp4 path.")
    if display:
        _check_display()
    from edgeclf.runtime import mqtt as mqtt_sinks

    mqtt_config = mqtt_sinks.from_options(mqtt, mqtt_ca, mqtt_password_file, device_name, mqtt_keepalive, mqtt_stats,
                                          ha_discovery, alerts)
    model = _load_model(model_path, threads)
    try:
        actions = action_sinks(model.labels, model.metadata.name if model.metadata else Path(model_path).stem,
                               webhook, webhook_secret_file, webhook_queue, snapshots=snapshots,
                               snapshots_max_mb=snapshots_max_mb, gpio=gpio)
    except ActionError as exc:
        raise InputError(str(exc)) from exc
    if mqtt_config:
        actions += mqtt_sinks.build_sinks(mqtt_config, model.labels, Path(model_path).name, every)
    from edgeclf.runtime.review import from_options as review_sink
    from edgeclf.runtime.stream import crop

    review = review_sink(review_dir, model_path, review_below, review_every, review_max_mb, lambda i: crop(i, options))
    try:
        # An image folder played uncropped is decoded as training decoded it (a large JPEG at a reduced scale).
        whole = options.roi is None and not options.center_crop
        stream_source = open_source(source, size, max_pixels, model.input_size if whole else None,
                                    model_size=model.input_size, roi=options.roi, center_crop=options.center_crop)
        played = play_file(stream_source, realtime, loop, fps)
    except SourceError as exc:
        raise InputError(str(exc)) from exc
    if size and getattr(stream_source, "resolution", size) != size:
        click.echo(f"{source}: asked for {size[0]}x{size[1]}, the camera gives "
                   f"{stream_source.resolution[0]}x{stream_source.resolution[1]} (its nearest mode)", err=True)
    outputs: list = [] if quiet else [JsonLinesSink(events_only)]
    if record:
        outputs.append(RecorderSink(Path(record)))
    if address:
        server = LiveServer(*address, auth=auth, viewers=serve_viewers)
        click.echo(f"serving {server.url}", err=True)
        outputs.append(ServeSink(server))
    systemd = SystemdSink.from_environment()  # under a Type=notify unit: READY, WATCHDOG, STATUS, STOPPING
    if systemd:
        stop_on_sigterm()
        outputs.append(systemd)
    if display:
        outputs.append(WindowSink())
    sinks = Sinks(outputs + actions + ([review] if review else []))
    try:
        summary = run_stream(model, played, options, sinks)
    except StreamOptionError as exc:
        raise InputError(str(exc)) from exc
    _print_stream_summary(summary, source)
    for item in getattr(stream_source, "skipped", []):  # an image folder's unreadable or over-budget files
        click.echo(f"skipped {item['path']}: {item['reason']}", err=True)


def _camera_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from edgeclf.runtime.camera_config import load_into

    return load_into(ctx, param, value)


def _print_stream_summary(summary: Any, source: str) -> None:
    """The summary as a last JSON line, one human line on stderr; exit 1 when the source failed."""
    from edgeclf.runtime.outputs import json_line

    result = summary.as_dict()
    click.echo(json_line({"summary": result}))
    stages = ", ".join(f"{name} {v['median']:.2f}" for name, v in result["stage_ms"].items() if v)
    click.echo(f"{result['ended']}: {result['classified']} frames classified at {result['fps']:.1f} FPS "
               f"({result['dropped']} dropped, {result['skipped']} skipped); median ms: {stages}", err=True)
    if summary.ended.startswith("source failed"):
        raise click.ClickException(f"{source}: {summary.ended}; the summary above covers the frames before it.")


def _check_display() -> None:
    from edgeclf.runtime.doctor import display_problem

    problem = display_problem()
    if problem:
        raise InputError(f"--display needs OpenCV with GUI support (opencv-python, not opencv-python-headless) "
                         f"and a screen: {problem}. Use --serve 127.0.0.1:8080 to watch in a browser instead.")


@cli.command(context_settings=CONTEXT)
@click.option("--source", default=None, help="Camera to collect from: webcam index (0, 1), picamera, a video file or "
              "image folder (played in a loop at its own rate), an rtsp:// or http:// URL.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The image folder: frames go to OUT/<class>/<time>.jpg (edgeclf data / build --data read it as is).")
@click.option("--labels", default=None, help="Classes, comma-separated, in key order (1-9); class folders already "
              "in --out follow. The page can add more.")
@click.option("--serve", default=None, show_default="a local browser with a display, else keys in the terminal",
              help="Serve the page on HOST:PORT (0.0.0.0:8080 exposes it, with a password: $EDGECLF_WEB_PASSWORD "
              "or --serve-password-file).")
@click.option("--serve-password-file", type=click.Path(dir_okay=False), default=None,
              help="File (mode 0600) holding the page's password; or set EDGECLF_WEB_PASSWORD.")
@click.option("--serve-open", is_flag=True, help="Serve a network address without a password, on purpose.")
@click.option("--rate", type=float, default=10.0, help="Frames per second written while a class button is held.")
@click.option("--quality", type=int, default=90, help="JPEG quality of the stored frames.")
@click.option("--size", default=None, show_default="as captured", help="Shrink stored frames to fit WxH (aspect kept).")
@click.option("--roi", default=None, help="Store only this region: x,y,w,h in frame pixels (as camera --roi).")
@click.option("--resolution", default=None, help="Capture size WxH for a webcam or the Pi camera.")
@click.option("--review", "review_dir", type=click.Path(file_okay=False), default=None,
              help="Also show the frames `edgeclf camera --review DIR` kept, to assign to a class or discard.")
@reports_errors
def collect(source: str | None, out: str, labels: str | None, serve: str | None, serve_password_file: str | None,
            serve_open: bool, rate: float, quality: int, size: str | None, roi: str | None, resolution: str | None,
            review_dir: str | None) -> None:
    """Build an image folder with this device's camera: a page with one button per class (tap: one frame,
    hold: --rate frames a second), or keys 1-9 in a terminal over SSH; and file the frames a camera kept
    for review. Runs until Ctrl-C."""
    from edgeclf.runtime.collect import run_collect
    from edgeclf.runtime.outputs import json_line

    summary = run_collect(out, source, labels, serve, rate, quality, size, roi, resolution, review_dir, serve_open,
                          serve_password_file, say=lambda line: click.echo(line, err=True))
    click.echo(json_line({"summary": summary}))
    if summary["ended"].startswith("source failed"):
        raise click.ClickException(summary["ended"])


@cli.group(context_settings=CONTEXT)
def service() -> None:
    """Run `edgeclf camera --config FILE` as a systemd service: at boot, restarted after a crash or a stuck camera."""


@service.command("install", context_settings=CONTEXT)
@click.argument("name")
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="The camera config (edgeclf camera --print-config writes one); it must name the model.")
@click.option("--user", default=None, show_default="root", help="Run the camera as this user (in group video).")
@click.option("--password-file", type=click.Path(dir_okay=False), default=None,
              help="File (mode 0600) with the web view's password, handed to the service as a systemd credential.")
@click.option("--watchdog-sec", type=int, default=30, help="systemd restarts the camera after this many seconds "
              "without a classified frame.")
@click.option("--unit-dir", type=click.Path(file_okay=False), default="/etc/systemd/system",
              help="Where the unit file goes; another folder than the default only writes it (for checks).")
@click.option("--state-dir", type=click.Path(file_okay=False), default="/var/lib/edgeclf/services",
              help="Where install records what it wrote, so that uninstall removes exactly that.")
@click.option("--no-start", is_flag=True, help="Write the unit without enabling and starting it.")
@reports_errors
def service_install(name: str, config_file: str, user: str | None, password_file: str | None, watchdog_sec: int,
                    unit_dir: str, state_dir: str, no_start: bool) -> None:
    """Write /etc/systemd/system/edgeclf-NAME.service (Type=notify, watchdog, restart on failure) and start it."""
    from edgeclf.runtime.service import install

    install(name, config_file, camera, user, Path(unit_dir), Path(state_dir), password_file, watchdog_sec,
            not no_start, log=click.echo)


@service.command("uninstall", context_settings=CONTEXT)
@click.argument("name")
@click.option("--unit-dir", type=click.Path(file_okay=False), default="/etc/systemd/system", help="As for install.")
@click.option("--state-dir", type=click.Path(file_okay=False), default="/var/lib/edgeclf/services",
              help="As for install.")
@reports_errors
def service_uninstall(name: str, unit_dir: str, state_dir: str) -> None:
    """Stop and disable edgeclf-NAME.service and remove exactly what install wrote."""
    from edgeclf.runtime.service import uninstall

    uninstall(name, Path(unit_dir), Path(state_dir), log=click.echo)


@service.command("status", context_settings=CONTEXT)
@click.argument("name")
@json_option
@reports_errors
def service_status(name: str, as_json: bool) -> None:
    """What systemd says about edgeclf-NAME.service, and the last summary the camera printed."""
    from edgeclf.runtime.service import status

    result = status(name)
    if as_json:
        emit_json(result)
        return
    click.echo(result["systemctl"] or "systemctl is not available here")
    summary = result["summary"]
    click.echo(f"last summary: {json.dumps(summary)}" if summary else "last summary: none in the journal yet")


@cli.command(context_settings=CONTEXT)
@json_option
def doctor(as_json: bool) -> None:
    """What decides whether and how fast a model runs here: platform, interpreter, CPU int8 features, camera."""
    from edgeclf.runtime.doctor import run_checks

    checks = run_checks()
    blocking = [c for c in checks if c.blocking]
    if as_json:
        emit_json({"ok": not blocking, "checks": [c.as_dict() for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            click.echo(f"{check.name:>{width}s}  {check.value}")
            if check.problem:
                label = "BLOCKING" if check.blocking else "note"
                click.echo(f"{'':>{width}s}  {label}: {check.problem}" + (f"; fix: {check.fix}" if check.fix else ""))
        click.echo("ready to run models" if not blocking else f"{len(blocking)} problem(s) block running a model here")
    if blocking:
        sys.exit(1)


class DefaultCommandGroup(click.Group):
    """A group whose default subcommand runs when none is named: `edgeclf runs DIR` is `edgeclf runs list DIR`."""

    default_command = "list"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=DefaultCommandGroup, context_settings=CONTEXT)
def runs() -> None:
    """Every build under a runs folder side by side: `edgeclf runs [DIR]` (the list command), and
    `edgeclf runs diff A B`."""


@runs.command("list", context_settings=CONTEXT)
@click.argument("folder", metavar="[DIR]", default="runs", required=False)
@click.option("--sort", "sort_by", default="time", help="Column to sort by, best first (newest, most accurate, "
              "smallest, fastest, sparsest; text A-Z): time, data, model, variants, top1, size, latency, sparsity, "
              "status, name.")
@click.option("--filter", "filters", multiple=True, metavar="COLUMN=VALUE",
              help="Keep the runs whose column contains VALUE (any case); repeat to combine.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as a page, each run linking to its report.html.")
@json_option
@reports_errors
def runs_list(folder: str, sort_by: str, filters: tuple[str, ...], html_file: str | None, as_json: bool) -> None:
    """One table of the runs in DIR (default runs/), newest first: time, data, model/size, variants, top-1,
    size and latency per variant, sparsity, status (finished, failed, running, interrupted)."""
    from edgeclf.runtime import runs as run_table

    rows = run_table.filter_rows(run_table.sort_rows(run_table.list_runs(Path(folder)), sort_by), filters)
    if html_file:
        title = f"edgeclf runs: {Path(folder).resolve().name}"
        _write_text(html_file, run_table.html_page(rows, Path(html_file), title))
    if as_json:
        emit_json(rows)
        return
    for line in run_table.text_table(rows):
        click.echo(line)
    if html_file:
        click.echo(f"page: {html_file}")


@runs.command("diff", context_settings=CONTEXT)
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.option("--dir", "folder", default="runs", help="Where to look for A and B given by name.")
@json_option
@reports_errors
def runs_diff(run_a: str, run_b: str, folder: str, as_json: bool) -> None:
    """The settings (config.yaml) and figures (report.json) that differ between runs A and B (folders, or names
    under --dir)."""
    from edgeclf.runtime import runs as run_table

    result = run_table.diff(run_table.resolve_run(run_a, Path(folder)), run_table.resolve_run(run_b, Path(folder)))
    if as_json:
        emit_json(result)
        return
    for line in run_table.diff_lines(result):
        click.echo(line)


def main() -> None:
    cli(prog_name="edgeclf")


if __name__ == "__main__":
    sys.exit(main())
