"""mmdrn backbones: the DRN family.

:mod:`.drn` defines the network once (plain PyTorch) and registers the timm
models ``drn_a_18`` ... ``drn_d_107``; :mod:`.drn_weights` loads checkpoints of
every known layout. The OpenMMLab backbones ``DRN_A`` ... ``DRN_D`` are in
:mod:`mmdrn.openmmlab.backbones`.
"""

from .drn import DRN
from .drn_weights import convert_state_dict, load_drn_weights

__all__ = ['DRN', 'convert_state_dict', 'load_drn_weights']
