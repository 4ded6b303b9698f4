"""mmdrn necks: the Yu-Koltun context module and DeepLabv3's ASPP.

Plain PyTorch modules. Their OpenMMLab adapters, named in configs as
``dict(type='ContextNeck', ...)`` and ``dict(type='ASPPNeck', ...)``, live in
:mod:`mmdrn.openmmlab.necks`.
"""

from .aspp import ASPP, ASPPConv, ASPPPooling
from .context_module import ContextConv, ContextModule

__all__ = ['ASPP', 'ASPPConv', 'ASPPPooling', 'ContextConv', 'ContextModule']
