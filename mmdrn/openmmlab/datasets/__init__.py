"""The registered data components; ``DRNDemoDataset`` (a ``BaseSegDataset``)
only when MMSegmentation is installed."""

from ..registry import SCOPES
from .checks import (
    BadSampleError,
    CheckedDataset,
    CheckSegLabels,
    add_data_checks,
)
from .transforms import POSITIONS, FixedCrop

__all__ = [
    'POSITIONS',
    'FixedCrop',
    'BadSampleError',
    'CheckSegLabels',
    'CheckedDataset',
    'add_data_checks',
]

if 'mmseg' in SCOPES:
    from .drn_demo import DRNDemoDataset

    __all__ += ['DRNDemoDataset']
