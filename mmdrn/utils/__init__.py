"""Utilities shared by mmdrn's components and tools."""

from .checkpoint import CheckpointError, load_file, register_mmengine_loader
from .mmengine_compat import allow_mmengine_checkpoints

__all__ = [
    'CheckpointError',
    'allow_mmengine_checkpoints',
    'load_file',
    'register_mmengine_loader',
]
