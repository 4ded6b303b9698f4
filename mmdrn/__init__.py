"""mmdrn: Dilated Residual Networks for MMSegmentation, mmpretrain and timm.

``import mmdrn`` registers every component: the ``drn_*`` timm models, and
the backbones, necks, heads, metrics and datasets in the MMSegmentation and
mmpretrain registries.
"""
from . import backbones, datasets, evaluation, heads, necks  # noqa: F401
from .version import __version__

__all__ = ['__version__']
