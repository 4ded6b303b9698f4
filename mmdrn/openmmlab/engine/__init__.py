"""Training-side helpers for mmdrn's tools: config preparation for any
device and launcher, a CPU mixed-precision optimizer wrapper, atomic
checkpoint writing, a hook that stops training at a NaN/Inf loss, one that
saves and exits on a pre-emption signal, and one that runs the test loop on
the inference fast path."""

from ...utils.file_io import remove_stale_temp_files
from .atomic_io import disable_atomic_checkpoints, enable_atomic_checkpoints
from .fast_inference import FastInferenceHook
from .launch import (
    AMP_MODES,
    LAUNCHERS,
    init_cpu_dist,
    load_tool_config,
    register_scope,
    revert_sync_bn,
    setup_amp,
    setup_device,
    setup_out,
    setup_show_dir,
    teardown_distributed,
)
from .nan_guard import NaNGuardHook, NonFiniteLossError, add_nan_guard
from .optim_wrapper import CPUAmpOptimWrapper
from .preemption import (
    PREEMPTED_EXIT_CODE,
    PreemptionHook,
    TrainingPreempted,
    add_preemption_hook,
)
from .resume import find_resumable_checkpoint, setup_resume
from .strict_load import (
    CheckpointMismatchError,
    StrictLoadHook,
    check_fit,
    describe_state_dict,
    load_checkpoint_strict,
)

__all__ = [
    'AMP_MODES',
    'LAUNCHERS',
    'CPUAmpOptimWrapper',
    'CheckpointMismatchError',
    'FastInferenceHook',
    'StrictLoadHook',
    'NaNGuardHook',
    'NonFiniteLossError',
    'PREEMPTED_EXIT_CODE',
    'PreemptionHook',
    'TrainingPreempted',
    'add_nan_guard',
    'check_fit',
    'describe_state_dict',
    'add_preemption_hook',
    'disable_atomic_checkpoints',
    'enable_atomic_checkpoints',
    'find_resumable_checkpoint',
    'init_cpu_dist',
    'load_checkpoint_strict',
    'load_tool_config',
    'register_scope',
    'remove_stale_temp_files',
    'revert_sync_bn',
    'setup_amp',
    'setup_device',
    'setup_out',
    'setup_resume',
    'setup_show_dir',
    'teardown_distributed',
]
