"""Utilities shared by mmdrn's components and tools (plain PyTorch)."""

from .checkpoint import CheckpointError, CheckpointNotFoundError, load_file
from .file_io import PathLike

__all__ = ['CheckpointError', 'CheckpointNotFoundError', 'PathLike', 'load_file']
