"""The necks as OpenMMLab components: ``neck=dict(type='ContextNeck', ...)``
and ``neck=dict(type='ASPPNeck', ...)``.

Thin adapters over the plain-PyTorch :class:`mmdrn.necks.ContextModule` and
:class:`mmdrn.necks.ASPP`: they turn ``norm_cfg`` / ``act_cfg`` into layer
factories (:mod:`.layers`), add mmengine's ``init_cfg`` and register the class
in the MMSegmentation and mmpretrain ``MODELS`` registries. Parameters and
``state_dict`` keys are the plain modules'.
"""

import copy
from typing import Optional

from mmengine.model import BaseModule

from ..necks import ASPP, ContextModule
from .layers import BN, RELU, InitConfigType, act_layer_factory, norm_layer_factory
from .registry import register_model

__all__ = ['ASPPNeck', 'ContextNeck']

ConfigType = Optional[dict]


# The plain class comes first in the bases: its ``super().__init__()`` then
# reaches ``BaseModule.__init__`` (with ``init_cfg=None``), and the adapter
# sets ``init_cfg`` afterwards.
@register_model()
class ContextNeck(ContextModule, BaseModule):
    """Yu & Koltun context module as an MMSeg neck.

    With ``init_cfg=None`` (default) ``init_weights()`` keeps the module's
    identity initialisation; an ``init_cfg`` replaces it.

    Args:
        in_channels (int): Channels of the selected backbone output.
        norm_cfg (dict, optional): Norm after each 3x3 conv; the paper uses
            none. Default: None.
        act_cfg (dict, optional): The truncation after each 3x3 conv.
            Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Default: None.
        **kwargs: The other arguments of :class:`mmdrn.necks.ContextModule`
            (``variant``, ``num_layers``, ``num_classes``, ``in_index``,
            ``init_noise``).

    Example:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> neck = MODELS.build(dict(type='ContextNeck', in_channels=8,
        ...                          num_classes=4, num_layers=10))
        >>> [tuple(o.shape) for o in neck((torch.rand(1, 8, 16, 16),))]
        [(1, 4, 16, 16)]
    """

    def __init__(
        self,
        in_channels: int,
        *,
        norm_cfg: ConfigType = None,
        act_cfg: ConfigType = RELU,
        init_cfg: InitConfigType = None,
        **kwargs,
    ) -> None:
        super().__init__(
            in_channels,
            norm_layer=norm_layer_factory(norm_cfg, optional=True),
            act_layer=act_layer_factory(act_cfg, optional=True),
            **kwargs,
        )
        self.init_cfg = copy.deepcopy(init_cfg)


@register_model()
class ASPPNeck(ASPP, BaseModule):
    """DeepLabv3 ASPP with image pooling as an MMSeg neck.

    Args:
        in_channels (int): Channels of the selected backbone output.
        norm_cfg (dict, optional): Norm in every branch and after the fusion.
            Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict, optional): Activation after every norm.
            Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Default: None (PyTorch's default initialisation).
        **kwargs: The other arguments of :class:`mmdrn.necks.ASPP`
            (``channels``, ``dilations``, ``image_pooling``,
            ``dropout_ratio``, ``in_index``).

    Example:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> neck = MODELS.build(dict(type='ASPPNeck', in_channels=8,
        ...                          channels=4)).eval()
        >>> [tuple(o.shape) for o in neck((torch.rand(1, 8, 13, 7),))]
        [(1, 4, 13, 7)]
    """

    def __init__(
        self,
        in_channels: int,
        *,
        norm_cfg: ConfigType = BN,
        act_cfg: ConfigType = RELU,
        init_cfg: InitConfigType = None,
        **kwargs,
    ) -> None:
        super().__init__(
            in_channels,
            norm_layer=norm_layer_factory(norm_cfg, optional=True),
            act_layer=act_layer_factory(act_cfg, optional=True),
            **kwargs,
        )
        self.init_cfg = copy.deepcopy(init_cfg)
