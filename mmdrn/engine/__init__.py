"""Training-side helpers for mmdrn's tools: config preparation for any
device and launcher, and a CPU mixed-precision optimizer wrapper."""

from .launch import (
    LAUNCHERS,
    init_cpu_dist,
    register_scope,
    revert_sync_bn,
    setup_amp,
    setup_device,
    setup_out,
    setup_resume,
    setup_show_dir,
)
from .optim_wrapper import CPUAmpOptimWrapper

__all__ = [
    'LAUNCHERS',
    'CPUAmpOptimWrapper',
    'init_cpu_dist',
    'register_scope',
    'revert_sync_bn',
    'setup_amp',
    'setup_device',
    'setup_out',
    'setup_resume',
    'setup_show_dir',
]
