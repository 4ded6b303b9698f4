"""The necks as OpenMMLab components: ``neck=dict(type='ContextNeck', ...)``
and ``neck=dict(type='ASPPNeck', ...)``.

Thin adapters over the plain-PyTorch necks :class:`mmdrn.necks.ContextModule`
and :class:`mmdrn.necks.ASPP`: they take MMSeg's argument names
(``norm_cfg``, ``act_cfg``, ``init_cfg``), turn the configs into layer
factories (:mod:`.layers`), add mmengine's ``init_weights`` and register the
class in the MMSegmentation and mmpretrain ``MODELS`` registries. The
architecture and its initialisation live in the plain modules only; these
subclasses have the same parameters and ``state_dict`` keys.
"""

import copy
from typing import Optional, Sequence

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

    See :class:`mmdrn.necks.ContextModule` for the
    architecture, the 10-layer widths and the identity initialisation.
    With ``init_cfg=None`` (default) ``init_weights()`` keeps that
    initialisation; an ``init_cfg`` replaces it.

    Args:
        in_channels (int): Channels of the selected backbone output.
        variant (str): ``'basic'`` or ``'large'``. Default: ``'basic'``.
        num_layers (int): 8 (receptive field 67) or 10 (259). Default: 8.
        num_classes (int, optional): Project the backbone output to this many
            class scores first (the paper's arrangement on class scores);
            None runs on the features. Default: None.
        in_index (int): Which backbone output to use. Default: -1.
        norm_cfg (dict, optional): Norm after each 3x3 conv; the paper uses
            none. Default: None.
        act_cfg (dict, optional): The truncation after each 3x3 conv.
            Default: ``dict(type='ReLU')``.
        init_noise (float): Std of the large variant's init noise relative
            to ``C / c_{i+1}``. Default: 1e-3.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Default: None.

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
        variant: str = 'basic',
        num_layers: int = 8,
        num_classes: Optional[int] = None,
        in_index: int = -1,
        norm_cfg: ConfigType = None,
        act_cfg: ConfigType = RELU,
        init_noise: float = 1e-3,
        init_cfg: InitConfigType = None,
    ) -> None:
        super().__init__(
            in_channels,
            variant=variant,
            num_layers=num_layers,
            num_classes=num_classes,
            in_index=in_index,
            norm_layer=norm_layer_factory(norm_cfg, optional=True),
            act_layer=act_layer_factory(act_cfg, optional=True),
            init_noise=init_noise,
        )
        self.init_cfg = copy.deepcopy(init_cfg)


@register_model()
class ASPPNeck(ASPP, BaseModule):
    """DeepLabv3 ASPP with image pooling as an MMSeg neck.

    See :class:`mmdrn.necks.ASPP` for the architecture.

    Args:
        in_channels (int): Channels of the selected backbone output.
        channels (int): Channels of every branch and of the output.
            Default: 256.
        dilations (Sequence[int]): Atrous rates, 1 = a 1x1 branch.
            Default: ``(1, 12, 24, 36)`` (output stride 8).
        image_pooling (bool): Add the image-level-features branch.
            Default: True.
        dropout_ratio (float): Channel dropout after the fusion; 0 for none.
            Default: 0.
        in_index (int): Which backbone output to use. Default: -1.
        norm_cfg (dict, optional): Norm in every branch and after the fusion.
            Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict, optional): Activation after every norm.
            Default: ``dict(type='ReLU')``.
        init_cfg (dict | list[dict], optional): mmengine init config.
            Default: None (PyTorch's default initialisation).

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
        channels: int = 256,
        dilations: Sequence[int] = (1, 12, 24, 36),
        image_pooling: bool = True,
        dropout_ratio: float = 0.0,
        in_index: int = -1,
        norm_cfg: ConfigType = BN,
        act_cfg: ConfigType = RELU,
        init_cfg: InitConfigType = None,
    ) -> None:
        super().__init__(
            in_channels,
            channels=channels,
            dilations=dilations,
            image_pooling=image_pooling,
            dropout_ratio=dropout_ratio,
            in_index=in_index,
            norm_layer=norm_layer_factory(norm_cfg, optional=True),
            act_layer=act_layer_factory(act_cfg, optional=True),
        )
        self.init_cfg = copy.deepcopy(init_cfg)
