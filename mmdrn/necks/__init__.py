"""mmdrn necks: the Yu-Koltun context module and DeepLabv3's ASPP.

The classes here are plain PyTorch modules.
"""

from .aspp import ASPPConv, ASPPNeck, ASPPPooling
from .context_module import ContextConv, ContextModule

__all__ = ['ASPPConv', 'ASPPNeck', 'ASPPPooling', 'ContextConv', 'ContextModule']
