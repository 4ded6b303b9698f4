"""The registered data components: ``DRNDemoDataset`` (MMSeg) and ``FixedCrop``.

``DRNDemoDataset`` subclasses MMSegmentation's ``BaseSegDataset`` and is
defined only when MMSegmentation is installed; ``FixedCrop`` (mmcv) is
registered into every installed codebase.
"""

from ..registry import SCOPES
from .transforms import POSITIONS, FixedCrop

__all__ = ['POSITIONS', 'FixedCrop']

if 'mmseg' in SCOPES:
    from .drn_demo import DRNDemoDataset

    __all__ += ['DRNDemoDataset']
