"""mmdrn necks: the Yu-Koltun context module and DeepLabv3's ASPP.

The classes here are plain PyTorch modules.
"""

from .context_module import ContextConv, ContextModule

__all__ = ['ContextConv', 'ContextModule']
