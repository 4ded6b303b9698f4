"""The registered data components: ``DRNDemoDataset`` (MMSeg), ``FixedCrop``,
and the checks of broken samples and labels (``CheckedDataset``,
``CheckSegLabels``).

``DRNDemoDataset`` subclasses MMSegmentation's ``BaseSegDataset`` and is
defined only when MMSegmentation is installed; ``FixedCrop`` (mmcv) is
registered into every installed codebase.
"""

from ..registry import SCOPES
from .checks import (
    BadSampleError,
    CheckedDataset,
    CheckSegLabels,
    add_data_checks,
    check_class_weights,
)
from .transforms import POSITIONS, FixedCrop

__all__ = [
    'POSITIONS',
    'FixedCrop',
    'BadSampleError',
    'CheckSegLabels',
    'CheckedDataset',
    'add_data_checks',
    'check_class_weights',
]

if 'mmseg' in SCOPES:
    from .drn_demo import DRNDemoDataset

    __all__ += ['DRNDemoDataset']
