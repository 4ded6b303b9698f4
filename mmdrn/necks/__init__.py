"""mmdrn necks: the Yu-Koltun context module and DeepLabv3's ASPP.

The classes exported here are the plain-PyTorch modules. Importing this
package also registers their OpenMMLab adapters (:mod:`.mm_necks`), which
configs name as ``dict(type='ContextModule', ...)`` and
``dict(type='ASPPNeck', ...)``.
"""

from . import mm_necks  # noqa: F401  (registration)
from .aspp import ASPPConv, ASPPNeck, ASPPPooling
from .context_module import ContextConv, ContextModule

__all__ = ['ASPPConv', 'ASPPNeck', 'ASPPPooling', 'ContextConv', 'ContextModule']
