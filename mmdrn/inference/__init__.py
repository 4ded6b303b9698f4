"""mmdrn inference fast path: BN folding, channels_last, low precision.

``optimize_for_inference(model)`` is the one entry point; see
:mod:`mmdrn.inference.fast_path`. Its ``dtype='auto'`` is the precision
:func:`precision_decision` measured fastest on the running machine
(:mod:`mmdrn.inference.precision`). :class:`mmdrn.openmmlab.engine.FastInferenceHook`
applies it to an mmengine Runner's test loop.
"""

from .fast_path import (
    InferenceModel,
    amx_cpu,
    native_bf16_cpu,
    optimize_for_inference,
    resolve_dtype,
)
from .fold_bn import find_conv_bn_pairs, fold_batchnorm
from .precision import PrecisionDecision, precision_decision, probe_precision

__all__ = [
    'InferenceModel',
    'PrecisionDecision',
    'amx_cpu',
    'find_conv_bn_pairs',
    'fold_batchnorm',
    'native_bf16_cpu',
    'optimize_for_inference',
    'precision_decision',
    'probe_precision',
    'resolve_dtype',
]
