"""mmdrn inference fast path: BN folding, channels_last, low precision.

``optimize_for_inference(model)`` is the one entry point; see
:mod:`mmdrn.inference.fast_path`. Its ``dtype='auto'`` is the precision
:func:`precision_decision` measured fastest on the running machine
(:mod:`mmdrn.inference.precision`), which also names the compute dtypes
(:data:`DTYPES`, :data:`SHORT_NAMES`). :class:`mmdrn.openmmlab.hooks.FastInferenceHook`
applies it to an mmengine Runner's test loop.
"""

from .fast_path import InferenceModel, optimize_for_inference, resolve_dtype
from .fold_bn import find_conv_bn_pairs, fold_batchnorm
from .precision import (
    DTYPES,
    SHORT_NAMES,
    PrecisionDecision,
    dtype_name,
    precision_decision,
    probe_precision,
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
    'probe_precision',
    'resolve_dtype',
]
