"""Quantization-aware fine-tuning with tfmot, pruning-preserving when the model was pruned."""
from __future__ import annotations

from typing import Any, Callable

from edgeclf.toolchain._tf import keras, tfmot
from edgeclf.toolchain.train import fit


def quantization_aware(model: Any, train: Any, val: Any, epochs: int, learning_rate: float,
                       log: Callable[[str], None], preserve_sparsity: bool) -> tuple[Any, dict]:
    """Fine-tunes a copy of `model` with fake-quantized weights and activations.

    Every layer is annotated; the Rescaling input normalization gets an output-only config.
    With preserve_sparsity, the pruned zeros stay zero (tfmot's Default8BitPrunePreserveQuantizeScheme).

    Returns:
        The QAT model (convert it with the int8 converter) and the fine-tuning history.
    """
    copy = keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    qat = _wrapped(copy, preserve_sparsity)
    history = fit(qat, train, val, epochs, learning_rate, log, label="qat", early_stopping=False)
    return qat, history


def quantization_aware_problem(model: Any) -> str | None:
    """Why tfmot cannot wrap `model` for quantization-aware training (None: it can), found by wrapping a copy:
    run before training so that a --qat build fails in seconds, not after its float training."""
    try:
        _wrapped(keras().models.clone_model(model), preserve_sparsity=False)
    except Exception as exc:  # tfmot raises RuntimeError, ValueError, or the layer's own error on call
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return None


def _wrapped(model: Any, preserve_sparsity: bool) -> Any:
    """`model`'s layers annotated and wrapped by tfmot (the layers are reused: pass a copy)."""
    k, quantize = keras(), tfmot().quantization.keras
    output_only = _output_only_config()

    def annotate(layer: Any) -> Any:
        if isinstance(layer, k.layers.InputLayer):
            return layer
        if isinstance(layer, k.layers.Rescaling):
            # tfmot has no config for Rescaling. Quantizing its output keeps it a separate op: left
            # bare, the converter folds the 1/255 into the first conv's weights after QAT chose
            # their int8 scale, and every first-layer weight rounds to zero.
            return quantize.quantize_annotate_layer(layer, quantize_config=output_only())
        return quantize.quantize_annotate_layer(layer)

    annotated = k.models.clone_model(model, clone_function=annotate)
    with quantize.quantize_scope({output_only.__name__: output_only}):
        if preserve_sparsity:
            return quantize.quantize_apply(annotated, tfmot().experimental.combine.Default8BitPrunePreserveQuantizeScheme())
        return quantize.quantize_apply(annotated)


def _output_only_config() -> type:
    """A tfmot QuantizeConfig that fake-quantizes a layer's output only (8 bits, asymmetric)."""
    quantize = tfmot().quantization.keras

    class OutputOnlyQuantizeConfig(quantize.QuantizeConfig):
        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            return [quantize.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                                narrow_range=False)]

        def get_config(self) -> dict:
            return {}

    return OutputOnlyQuantizeConfig
