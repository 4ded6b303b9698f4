"""mmdrn backbones: the DRN family.

:mod:`.drn` defines the network once (plain PyTorch) and registers the timm
models ``drn_a_18`` ... ``drn_d_107``; :mod:`.drn_weights` loads checkpoints of
every known layout; :mod:`.mm_drn` registers ``DRN_A`` ... ``DRN_D`` for
MMSegmentation and mmpretrain configs.
"""

from .drn import DRN
from .drn_weights import convert_state_dict, load_drn_weights
from .mm_drn import DRN_A, DRN_B, DRN_C, DRN_D

__all__ = [
    'DRN',
    'DRN_A',
    'DRN_B',
    'DRN_C',
    'DRN_D',
    'convert_state_dict',
    'load_drn_weights',
]
