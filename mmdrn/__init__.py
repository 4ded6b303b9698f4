"""mmdrn: Dilated Residual Networks for timm, MMSegmentation and mmpretrain.

``import mmdrn`` registers the ``drn_*`` timm models and needs only torch and
timm. The OpenMMLab layer (config type names, hooks, mmengine integration) is
:mod:`mmdrn.openmmlab`; ``import mmdrn`` loads it too when mmengine is
already imported (a config's ``custom_imports=dict(imports=['mmdrn'])``, the
tools) and MMSegmentation or mmpretrain is installed, so configs need nothing
else.
"""

import importlib.util
import sys

from . import backbones  # noqa: F401  (registers the drn_* timm models)
from .version import __version__

if 'mmengine' in sys.modules and any(
    importlib.util.find_spec(name) for name in ('mmseg', 'mmpretrain')
):
    from . import openmmlab  # noqa: F401

__all__ = ['__version__']
