"""Utilities shared by mmdrn's components and tools (plain PyTorch)."""

from .checkpoint import CheckpointError, load_file

__all__ = ['CheckpointError', 'load_file']
