"""``drn://`` checkpoints: the published DRN weights by name, for mmengine.

After :func:`register_drn_scheme`, mmengine's ``CheckpointLoader`` (and so
``load_checkpoint``, ``load_from`` and ``init_cfg=dict(type='Pretrained')``)
reads ``drn://drn_c_26`` (an architecture's default weights) or
``drn://drn_c_26.fyu_in1k`` (one tag, see :mod:`mmdrn.hub`), as mmengine's
own ``torchvision://`` reads torchvision's files. For a DRN backbone::

    backbone=dict(
        type='DRN_C',
        depth=26,
        init_cfg=dict(type='Pretrained', checkpoint='drn://drn_c_26'),
    )
"""

from typing import Any, Dict

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .. import hub
from ..backbones.drn import DRN
from ..backbones.drn_weights import convert_state_dict, unwrap_state_dict
from ..utils import load_file

__all__ = ['load_from_drn', 'register_drn_scheme']


def load_from_drn(filename: str, map_location: Any = None) -> Dict[str, torch.Tensor]:
    """mmengine loader of ``drn://NAME``: verified weights in fyu/drn's keys.

    Args:
        filename (str): ``drn://`` and a name of :func:`mmdrn.hub.sources`.
        map_location: Passed to :func:`torch.load`. Default: None (CPU).

    Returns:
        dict[str, Tensor]: The weights (downloaded once and verified by
        :func:`mmdrn.hub.fetch`), in the keys of the ``DRN_*`` backbones plus
        the ImageNet classifier ``fc``.
    """
    path, source = hub.fetch(filename)
    state = unwrap_state_dict(load_file(path, map_location=map_location or 'cpu'))
    arch, depth = source.model.split('_')[1:]
    with torch.device('meta'):  # only its level plan is needed
        layers = DRN(arch.upper(), int(depth)).layers
    return convert_state_dict(state, arch.upper(), layers, layout=source.layout)


def register_drn_scheme() -> None:
    """Register ``drn://`` with mmengine's ``CheckpointLoader``. Idempotent."""
    CheckpointLoader.register_scheme(hub.SCHEME, load_from_drn, force=True)
