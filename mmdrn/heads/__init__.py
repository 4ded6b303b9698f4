"""mmdrn heads: dense class activation maps and the DRN box rule.

Plain PyTorch (also used for timm models). The registered heads ``CAMHead``
(mmpretrain) and ``CAMSegHead`` (MMSegmentation) are in
:mod:`mmdrn.openmmlab.heads`.
"""

from .cam import *  # noqa: F403
from .cam import __all__  # noqa: F401
