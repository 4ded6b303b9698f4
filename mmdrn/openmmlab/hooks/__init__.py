"""mmengine hooks that a config names in ``custom_hooks``."""

from .fast_inference import FastInferenceHook
from .nan_guard import NaNGuardHook, NonFiniteLossError
from .preemption import PREEMPTED_EXIT_CODE, PreemptionHook, TrainingPreempted
from .rng_state import RNGStateHook

__all__ = [
    'FastInferenceHook',
    'NaNGuardHook',
    'NonFiniteLossError',
    'PREEMPTED_EXIT_CODE',
    'PreemptionHook',
    'RNGStateHook',
    'TrainingPreempted',
]
