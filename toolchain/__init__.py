"""edgeclf's toolchain: data, models, training, pruning, quantization, export and report.

TensorFlow is imported lazily through `edgeclf.toolchain._tf`, never at import of this package.
"""
