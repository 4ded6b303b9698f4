"""mmdrn inference fast path: BN folding, channels_last, low precision.

``optimize_for_inference(model)`` is the one entry point; see
:mod:`mmdrn.inference.fast_path`. :class:`mmdrn.openmmlab.engine.FastInferenceHook`
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

__all__ = [
    'InferenceModel',
    'amx_cpu',
    'find_conv_bn_pairs',
    'fold_batchnorm',
    'native_bf16_cpu',
    'optimize_for_inference',
    'resolve_dtype',
]
