"""TFLite Metadata: written into every artifact, read back by the runtime, MediaPipe and Android.

The metadata follows the published `metadata_schema.fbs`: a `TFLITE_METADATA` buffer in the
model plus associated files (labels.txt) appended to the model as an uncompressed zip, exactly
as tflite-support's MetadataPopulator lays them out.
"""
from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass, field

import flatbuffers
from flatbuffers import number_types

from edgeclf.runtime import _metadata_schema as meta_fb
from edgeclf.runtime import flatbuffer
from edgeclf.runtime.errors import UserError

log = logging.getLogger(__name__)

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
LABELS_FILE = "labels.txt"
# Every field written here exists since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"


class MetadataError(UserError, ValueError):
    """Metadata that cannot be written or read; the message names the problem and the fix."""


@dataclass(frozen=True)
class ModelMetadata:
    """What an edgeclf artifact says about itself. Normalization: (pixel - mean) / std per channel."""

    name: str
    labels: tuple[str, ...]
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    color_space: str = "RGB"
    input_min: tuple[float, ...] = (0.0,)
    input_max: tuple[float, ...] = (255.0,)
    extra: dict = field(default_factory=dict, compare=False)  # fields read but not written by edgeclf

    def as_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "version": self.version,
                "author": self.author, "license": self.license, "color_space": self.color_space,
                "normalization": {"mean": list(self.mean), "std": list(self.std)},
                "input_stats": {"min": list(self.input_min), "max": list(self.input_max)},
                "labels": list(self.labels)}


def _litert_schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise MetadataError("writing metadata needs the TFLite schema bindings of ai-edge-litert: "
                            "pip install ai-edge-litert") from exc
    return schema_py_generated


def _metadata_buffer(metadata: ModelMetadata) -> bytes:
    normalization = meta_fb.NormalizationOptionsT()
    normalization.mean, normalization.std = list(metadata.mean), list(metadata.std)
    unit = meta_fb.ProcessUnitT()
    unit.optionsType = meta_fb.ProcessUnitOptions.NormalizationOptions
    unit.options = normalization

    image = meta_fb.ImagePropertiesT()
    image.colorSpace = getattr(meta_fb.ColorSpaceType, metadata.color_space)
    pixels = meta_fb.TensorMetadataT()
    pixels.name = "image"
    pixels.description = f"{metadata.color_space} pixels 0-255, resized to the input size (no crop)."
    pixels.content = meta_fb.ContentT()
    pixels.content.contentPropertiesType = meta_fb.ContentProperties.ImageProperties
    pixels.content.contentProperties = image
    pixels.processUnits = [unit]
    pixels.stats = meta_fb.StatsT()
    pixels.stats.min, pixels.stats.max = list(metadata.input_min), list(metadata.input_max)

    labels = meta_fb.AssociatedFileT()
    labels.name = LABELS_FILE
    labels.description = "Class labels, one per line, in output order."
    labels.type = meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    probability = meta_fb.TensorMetadataT()
    probability.name = "probability"
    probability.description = f"Probabilities of the {len(metadata.labels)} classes."
    probability.content = meta_fb.ContentT()
    probability.content.contentPropertiesType = meta_fb.ContentProperties.FeatureProperties
    probability.content.contentProperties = meta_fb.FeaturePropertiesT()
    probability.stats = meta_fb.StatsT()
    probability.stats.min, probability.stats.max = [0.0], [1.0]
    probability.associatedFiles = [labels]

    subgraph = meta_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [pixels]
    subgraph.outputTensorMetadata = [probability]
    model = meta_fb.ModelMetadataT()
    model.name, model.description, model.version = metadata.name, metadata.description, metadata.version
    model.author, model.license = metadata.author, metadata.license
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def write(content: bytes, metadata: ModelMetadata) -> bytes:
    """Returns the model with `metadata` (replacing any earlier metadata and associated files).

    Raises:
        MetadataError: the label count differs from the model's output size.
    """
    schema = _litert_schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    graph = model.subgraphs[0]
    classes = int(graph.tensors[graph.outputs[0]].shape[-1])
    if len(metadata.labels) != classes:
        raise MetadataError(f"{len(metadata.labels)} labels given but the model has {classes} outputs. "
                            f"Give one label per output, in output order.")
    buffer = schema.BufferT()
    buffer.data = list(_metadata_buffer(metadata))
    existing = [m for m in (model.metadata or []) if m.name.decode() == METADATA_NAME]
    if existing:  # replace in place, as MetadataPopulator does: no buffer is renumbered
        model.buffers[existing[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(1024 + len(content))
    builder.Finish(model.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    stream = io.BytesIO()
    stream.write(bytes(builder.Output()))
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(metadata.labels) + "\n")
    return stream.getvalue()


def _metadata_bytes(content: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer, read with the flatbuffers package alone (no schema bindings).

    Fields (schema.fbs): Model.buffers 4, Model.metadata 6; Metadata.name 0, buffer 1; Buffer.data 0.
    """
    model = flatbuffer.root(content)
    buffers = flatbuffer.tables(model, 4)
    for entry in flatbuffer.tables(model, 6):
        if flatbuffer.string(entry, 0) != METADATA_NAME:
            continue
        index = flatbuffer.scalar(entry, 1, number_types.Uint32Flags)
        if index >= len(buffers):
            raise MetadataError(f"the TFLITE_METADATA entry points at buffer {index} of {len(buffers)}")
        data = flatbuffer.vector_bytes(buffers[index], 0)
        if data:
            return data
    return None


def associated_files(content: bytes) -> dict[str, bytes]:
    """Files packed after the model as a zip; empty when there are none."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return {}


def _text(value: bytes | None) -> str:
    return value.decode("utf-8") if value else ""


def read(content: bytes) -> ModelMetadata | None:
    """Parses the model's TFLite Metadata; None when it has none.

    Raises:
        MetadataError: a metadata buffer that is not valid TFLite Metadata.
    """
    data = _metadata_bytes(content)
    if data is None:
        return None
    if data[4:8] != METADATA_IDENTIFIER:
        raise MetadataError("the TFLITE_METADATA buffer is not TFLite Metadata (no M001 identifier). "
                            "Rewrite it with `edgeclf metadata MODEL --labels labels.txt`.")
    root = meta_fb.ModelMetadataT.InitFromObj(meta_fb.ModelMetadata.GetRootAs(data, 0))
    subgraph = (root.subgraphMetadata or [None])[0]
    inputs = (subgraph.inputTensorMetadata or [None])[0] if subgraph else None
    outputs = (subgraph.outputTensorMetadata or [None])[0] if subgraph else None
    mean, std, color_space, input_min, input_max = (0.0,), (1.0,), "RGB", (0.0,), (255.0,)
    if inputs is not None:
        for unit in inputs.processUnits or []:
            if isinstance(unit.options, meta_fb.NormalizationOptionsT):
                mean, std = tuple(map(float, unit.options.mean)), tuple(map(float, unit.options.std))
        properties = inputs.content.contentProperties if inputs.content else None
        if isinstance(properties, meta_fb.ImagePropertiesT):
            names = {v: k for k, v in vars(meta_fb.ColorSpaceType).items() if not k.startswith("_")}
            color_space = names.get(properties.colorSpace, "UNKNOWN")
        if inputs.stats is not None and inputs.stats.min is not None and inputs.stats.max is not None:
            input_min, input_max = tuple(map(float, inputs.stats.min)), tuple(map(float, inputs.stats.max))
    labels: tuple[str, ...] = ()
    label_files = [f for f in (outputs.associatedFiles or []) if f.type == meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS] if outputs else []
    if label_files:
        packed = associated_files(content)
        name = _text(label_files[0].name)
        if name in packed:
            labels = tuple(line.strip() for line in packed[name].decode("utf-8").splitlines() if line.strip())
        else:
            log.warning("metadata names %s but the file is not packed in the model", name)
    return ModelMetadata(name=_text(root.name), labels=labels, description=_text(root.description),
                         version=_text(root.version), author=_text(root.author), license=_text(root.license),
                         mean=mean, std=std, color_space=color_space, input_min=input_min, input_max=input_max,
                         extra={"min_parser_version": _text(root.minParserVersion)})
