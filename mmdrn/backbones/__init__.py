"""mmdrn backbones: the DRN family (timm models ``drn_*``)."""

from .drn import DRN
from .drn_weights import convert_state_dict, load_drn_weights

__all__ = ['DRN', 'convert_state_dict', 'load_drn_weights']
