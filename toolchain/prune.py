"""Magnitude pruning with tfmot, and sparsity measured on the weights that come out."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable, Sequence

import numpy as np

from edgeclf.toolchain._tf import keras, tfmot
from edgeclf.toolchain.train import fit

# Reach the target sparsity after this share of the fine-tuning, then recover at constant sparsity.
SCHEDULE_END = 0.6


def _prunable(layer: Any) -> bool:
    """Layers tfmot prunes. DepthwiseConv2D is left out: tfmot's registry lists no prunable weight for
    it (measured: 0% zeros in every MobileNetV2 depthwise layer after --prune 0.5), so counting it as
    pruned understated the sparsity reached (0.469 instead of 0.5)."""
    layers = keras().layers
    return isinstance(layer, (layers.Conv2D, layers.Dense)) and not isinstance(layer, layers.DepthwiseConv2D)


def kept_dense(model: Any, always: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Prunable layers left dense: the model's own list (first conv, classifier) plus --prune-skip matches."""
    return [layer.name for layer in model.layers if _prunable(layer)
            and (layer.name in always or any(fnmatch.fnmatchcase(layer.name, p) for p in patterns))]


def _pointwise(layer: Any) -> bool:
    """A 1x1 stride-1 Conv2D: the only layer XNNPACK runs sparse."""
    layers = keras().layers
    return (isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.DepthwiseConv2D)
            and tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1))


def xnnpack_dense(model: Any, always: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """--prune-for xnnpack: every prunable layer but the 1x1 convs stays dense (zeros elsewhere buy nothing)."""
    return sorted(set(kept_dense(model, always, patterns)) |
                  {layer.name for layer in model.layers if _prunable(layer) and not _pointwise(layer)})


def xnnpack_eligibility(model: Any, sparsity: dict, min_sparsity: float) -> dict:
    """Which layers XNNPACK's sparse inference can take, and whether the network has the shape it needs.

    XNNPACK runs a sparse subgraph in NCHW layout: it must begin with a 3x3 stride-2 convolution on
    the 3 image channels, continue with 1x1 convolutions (sparse when at least 2/3 of their weights
    are zero), depthwise convolutions, additions and activations, and end in global average pooling.
    """
    layers = keras().layers
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    first = convs[0] if convs else None
    stem = bool(first is not None and tuple(first.kernel_size) == (3, 3) and tuple(first.strides) == (2, 2)
                and int(first.input_shape[-1]) == 3)
    pooled = any(isinstance(layer, layers.GlobalAveragePooling2D) for layer in model.layers)
    per_layer = {}
    for layer in model.layers:
        if _pointwise(layer):
            share = sparsity["layers"].get(layer.name, {}).get("sparsity", 0.0)
            per_layer[layer.name] = {"sparsity": round(share, 4), "eligible": share >= min_sparsity - 1e-6}
    return {"stem_3x3_stride2_rgb": stem, "ends_in_global_average_pooling": pooled,
            "pattern_ok": stem and pooled, "layers": per_layer,
            "eligible_layers": sum(v["eligible"] for v in per_layer.values()), "pointwise_layers": len(per_layer)}


def pruning_problem(model: Any, dense_layers: Sequence[str]) -> str | None:
    """Why tfmot cannot wrap `model` for pruning (None: it can), found by wrapping a copy before training."""
    sparsity_api = tfmot().sparsity.keras
    schedule = sparsity_api.ConstantSparsity(0.5, begin_step=0)

    def wrap(layer: Any) -> Any:
        if _prunable(layer) and layer.name not in dense_layers:
            return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    try:
        keras().models.clone_model(keras().models.clone_model(model), clone_function=wrap)
    except Exception as exc:  # tfmot raises ValueError or the layer's own error on call
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return None


def prune(model: Any, dense_layers: Sequence[str], train: Any, val: Any, sparsity: float, epochs: int,
          steps_per_epoch: int, learning_rate: float, log: Callable[[str], None],
          m_by_n: tuple[int, int] | None = None) -> tuple[Any, dict]:
    """Fine-tunes `model` under a pruning schedule to `sparsity` and strips the wrappers.

    Unstructured: a polynomial schedule to `sparsity`. M:N (m_by_n): M of every N weights along
    the input channels are zeroed, the pattern sparse tensor cores and some NPUs run fast.
    Only conv/dense layers not named in `dense_layers` are wrapped (a clone function): tfmot
    refuses to wrap a whole model that holds a Rescaling layer.

    Returns:
        The stripped (plain tf_keras) model and the fine-tuning history.
    """
    sparsity_api = tfmot().sparsity.keras
    total_steps = max(1, steps_per_epoch * epochs)
    frequency = max(1, steps_per_epoch // 4)
    if m_by_n:
        schedule = sparsity_api.ConstantSparsity(m_by_n[0] / m_by_n[1], begin_step=0, frequency=frequency)
        options = {"pruning_schedule": schedule, "sparsity_m_by_n": m_by_n}
    else:
        schedule = sparsity_api.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=float(sparsity), begin_step=0,
            end_step=max(1, int(total_steps * SCHEDULE_END)), frequency=frequency)
        options = {"pruning_schedule": schedule}

    def wrap(layer: Any) -> Any:
        if _prunable(layer) and layer.name not in dense_layers and layer.trainable:
            return sparsity_api.prune_low_magnitude(layer, **options)
        return layer

    # Wrapping reuses layer objects, so prune a copy: the trained model stays as it was.
    copy = keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    wrapped = keras().models.clone_model(copy, clone_function=wrap)
    history = fit(wrapped, train, val, epochs, learning_rate, log, label="prune",
                  callbacks=[sparsity_api.UpdatePruningStep()], early_stopping=False)
    return sparsity_api.strip_pruning(wrapped), history


def m_by_n_conformance(kernel: np.ndarray, m_by_n: tuple[int, int]) -> float:
    """Share of N-weight groups along the input channels that hold at least M zeros (1.0: fully M:N)."""
    m, n = m_by_n
    rows = kernel.T if kernel.ndim == 2 else np.transpose(kernel, (3, 0, 1, 2)).reshape(-1, kernel.shape[2])
    usable = rows.shape[1] - rows.shape[1] % n
    if usable == 0:
        return 0.0
    groups = rows[:, :usable].reshape(rows.shape[0], -1, n)
    return float(np.mean(np.count_nonzero(groups == 0, axis=2) >= m))


def measure_sparsity(model: Any, dense_layers: Sequence[str], m_by_n: tuple[int, int] | None = None) -> dict:
    """Fraction of exact zeros in each conv/dense kernel.

    `overall` covers the layers pruning was allowed to touch; `overall_all_layers` every kernel.
    With m_by_n, each pruned layer also reports the share of its weight groups that follow it.
    """
    layers, pruned_zeros, pruned_total, all_zeros, all_total = {}, 0, 0, 0, 0
    for layer in model.layers:
        if not _prunable(layer):
            continue
        kernel = np.asarray(layer.get_weights()[0])
        zeros = int(np.count_nonzero(kernel == 0))
        kept_dense_here = layer.name in dense_layers or not layer.trainable
        layers[layer.name] = {"sparsity": zeros / kernel.size, "weights": int(kernel.size), "pruned": not kept_dense_here}
        if m_by_n and not kept_dense_here and kernel.ndim in (2, 4):
            layers[layer.name]["m_by_n_conformance"] = m_by_n_conformance(kernel, m_by_n)
        all_zeros, all_total = all_zeros + zeros, all_total + kernel.size
        if not kept_dense_here:
            pruned_zeros, pruned_total = pruned_zeros + zeros, pruned_total + kernel.size
    return {"overall": pruned_zeros / pruned_total if pruned_total else 0.0,
            "overall_all_layers": all_zeros / all_total if all_total else 0.0,
            "structure": f"{m_by_n[0]}:{m_by_n[1]}" if m_by_n else "unstructured",
            "dense_layers": [name for name, info in layers.items() if not info["pruned"]],
            "layers": layers}
