"""Utilities shared by mmdrn's components and tools (plain PyTorch)."""

from .checkpoint import CheckpointError, CheckpointNotFoundError, load_file

__all__ = ['CheckpointError', 'CheckpointNotFoundError', 'load_file']
