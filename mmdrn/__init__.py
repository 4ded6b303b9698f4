"""mmdrn: Dilated Residual Networks for MMSegmentation, mmpretrain and timm.

``import mmdrn`` registers every component: the ``drn_*`` timm models, and
the backbones, necks, heads, metrics, datasets, transforms, hooks and
optimizer wrappers in the MMSegmentation and mmpretrain registries.

It also makes mmengine's checkpoint handling safe on torch >= 2.6:
mmengine's own checkpoints load with ``weights_only`` still on (a narrow
allow-list, :mod:`mmdrn.utils.mmengine_compat`), every local checkpoint mmengine
reads goes through :func:`mmdrn.utils.load_file` (clear errors, never runs
pickled code), and checkpoints are written atomically
(:mod:`mmdrn.engine.atomic_io`), so the last one always loads.
"""

from .utils import allow_mmengine_checkpoints, register_mmengine_loader
from .version import __version__

allow_mmengine_checkpoints()
register_mmengine_loader()

from . import backbones, datasets, engine, evaluation, heads, necks  # noqa: E402,F401

engine.enable_atomic_checkpoints()
__import__('mmdrn.openmmlab.pretrained', fromlist=['*']).register_drn_scheme()

__all__ = ['__version__']
