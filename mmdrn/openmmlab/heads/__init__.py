"""The registered heads: ``CAMHead`` (mmpretrain), ``CAMSegHead`` and
``ContextHead`` (MMSeg).

Each is a subclass of its codebase's head class, so each is defined only
when that codebase is installed; the maps and boxes themselves are plain
PyTorch in :mod:`mmdrn.heads`.
"""

from ..registry import SCOPES

__all__ = []

if 'mmpretrain' in SCOPES:
    from .cam_head import CAMHead

    __all__ += ['CAMHead']
if 'mmseg' in SCOPES:
    from .cam_seg_head import CAMSegHead
    from .context_head import ContextHead

    __all__ += ['CAMSegHead', 'ContextHead']
