"""mmdrn inference: BN folding, channels_last, the measured precision.

:func:`optimize_for_inference` is the entry point (:mod:`.fast_path`); its
``dtype='auto'`` is :func:`precision_decision` (:mod:`.precision`).
"""

from .fast_path import InferenceModel, optimize_for_inference, resolve_dtype
from .fold_bn import find_conv_bn_pairs, fold_batchnorm
from .precision import (
    DTYPES,
    SHORT_NAMES,
    PrecisionDecision,
    dtype_name,
    precision_decision,
)

__all__ = [
    'DTYPES',
    'SHORT_NAMES',
    'InferenceModel',
    'PrecisionDecision',
    'dtype_name',
    'find_conv_bn_pairs',
    'fold_batchnorm',
    'optimize_for_inference',
    'precision_decision',
    'resolve_dtype',
]
