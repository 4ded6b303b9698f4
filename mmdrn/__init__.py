"""mmdrn: Dilated Residual Networks for timm, MMSegmentation and mmpretrain.

``import mmdrn`` registers the ``drn_*`` timm models and needs only torch and
timm; it does the same whatever was imported before. The OpenMMLab layer
(config type names, hooks, the ``drn://`` scheme) is :mod:`mmdrn.openmmlab`,
which configs name in ``custom_imports=dict(imports=['mmdrn.openmmlab'])``.
"""

from . import backbones  # noqa: F401  (registers the drn_* timm models)
from .version import __version__

__all__ = ['__version__']
