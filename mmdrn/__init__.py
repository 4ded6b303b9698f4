"""mmdrn: Dilated Residual Networks for MMSegmentation, mmpretrain and timm.

``import mmdrn`` registers every component: the ``drn_*`` timm models, and
the backbones, necks, heads, metrics and datasets in the MMSegmentation and
mmpretrain registries. It also lets mmengine resume from its own checkpoints
on torch >= 2.6 without turning ``weights_only`` loading off (see
:mod:`mmdrn.utils.mmengine_compat`).
"""

from .utils import allow_mmengine_checkpoints
from .version import __version__

allow_mmengine_checkpoints()

from . import backbones, datasets, evaluation, heads, necks  # noqa: E402,F401

__all__ = ['__version__']
