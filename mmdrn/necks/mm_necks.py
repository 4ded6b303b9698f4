"""The necks as OpenMMLab components: ``neck=dict(type='ContextModule', ...)``
and ``neck=dict(type='ASPPNeck', ...)``.

Thin adapters over the plain-PyTorch necks in :mod:`.context_module` and
:mod:`.aspp`: they take MMSeg's argument names (``norm_cfg``, ``act_cfg``,
``init_cfg``), turn the configs into layer builders with mmcv, add mmengine's
``init_weights`` and register the class in the MMSegmentation and mmpretrain
``MODELS`` registries. The architecture and its initialisation live in the
plain modules only; these subclasses have the same parameters and
``state_dict`` keys.
"""

import copy
from functools import partial
from typing import Any, Callable, List, Optional, Sequence, Union

from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from ..registry import register_model
from . import aspp, context_module

__all__ = ['ASPPNeck', 'ContextModule']

ConfigType = Optional[dict]
InitConfigType = Union[dict, List[dict], None]
# Module-level defaults instead of dict literals in signatures; never mutated
# (mmcv builds from a copy).
_RELU = {'type': 'ReLU'}
_BN = {'type': 'BN', 'requires_grad': True}


_NORM_EXAMPLES = "'BN', 'SyncBN', 'GN' (with num_groups), 'LN', 'IN'"
_ACT_EXAMPLES = "'ReLU', 'LeakyReLU', 'PReLU', 'ReLU6', 'ELU', 'SiLU', 'GELU', 'HSwish'"


def _check_cfg(name: str, cfg: ConfigType, examples: str) -> ConfigType:
    if cfg is not None and (not isinstance(cfg, dict) or 'type' not in cfg):
        raise TypeError(
            f'{name} must be None or a dict with a type ({examples} ...), got {cfg!r}'
        )
    return cfg


def _build_layer(
    name: str, examples: str, build: Callable, cfg: dict, *args: Any
) -> Any:
    # mmcv reports an unknown type as a KeyError that does not name the
    # argument ("Cannot find None in registry"), bad options as the layer's
    # TypeError or a bare AssertionError; all are re-raised naming the
    # config argument.
    try:
        return build(cfg, *args)
    except KeyError as err:
        raise ValueError(
            f'{name}={cfg!r}: unknown type {cfg["type"]!r}; mmcv layers are e.g. '
            f'{examples}'
        ) from err
    except TypeError as err:
        raise TypeError(f'{name}={cfg!r}: {err}') from err
    except AssertionError as err:  # mmcv asserts on missing options
        raise ValueError(
            f'{name}={cfg!r}: mmcv rejected it, an option is missing or wrong '
            f'(e.g. GN needs num_groups) {err}'.rstrip()
        ) from err


def _build_norm(norm_cfg: dict, channels: int) -> nn.Module:
    return _build_layer(
        'norm_cfg', _NORM_EXAMPLES, build_norm_layer, norm_cfg, channels
    )[1]


def _build_act(act_cfg: dict) -> nn.Module:
    return _build_layer('act_cfg', _ACT_EXAMPLES, build_activation_layer, act_cfg)


def _norm_builder(norm_cfg: ConfigType) -> Optional[Callable[[int], nn.Module]]:
    _check_cfg('norm_cfg', norm_cfg, _NORM_EXAMPLES)
    return None if norm_cfg is None else partial(_build_norm, dict(norm_cfg))


def _act_builder(act_cfg: ConfigType) -> Optional[Callable[[], nn.Module]]:
    _check_cfg('act_cfg', act_cfg, _ACT_EXAMPLES)
    return None if act_cfg is None else partial(_build_act, dict(act_cfg))


# The plain class comes first in the bases: its ``super().__init__()`` then
# reaches ``BaseModule.__init__`` (with ``init_cfg=None``), and the adapter
# sets ``init_cfg`` afterwards.
@register_model()
class ContextModule(context_module.ContextModule, BaseModule):
    """Yu & Koltun context module as an MMSeg neck.

    See :class:`mmdrn.necks.context_module.ContextModule` for the
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
        >>> neck = MODELS.build(dict(type='ContextModule', in_channels=8,
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
        act_cfg: ConfigType = _RELU,
        init_noise: float = 1e-3,
        init_cfg: InitConfigType = None,
    ) -> None:
        super().__init__(
            in_channels,
            variant=variant,
            num_layers=num_layers,
            num_classes=num_classes,
            in_index=in_index,
            norm_layer=_norm_builder(norm_cfg),
            act_layer=_act_builder(act_cfg),
            init_noise=init_noise,
        )
        self.init_cfg = copy.deepcopy(init_cfg)


@register_model()
class ASPPNeck(aspp.ASPPNeck, BaseModule):
    """DeepLabv3 ASPP with image pooling as an MMSeg neck.

    See :class:`mmdrn.necks.aspp.ASPPNeck` for the architecture.

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
        norm_cfg: ConfigType = _BN,
        act_cfg: ConfigType = _RELU,
        init_cfg: InitConfigType = None,
    ) -> None:
        super().__init__(
            in_channels,
            channels=channels,
            dilations=dilations,
            image_pooling=image_pooling,
            dropout_ratio=dropout_ratio,
            in_index=in_index,
            norm_layer=_norm_builder(norm_cfg),
            act_layer=_act_builder(act_cfg),
        )
        self.init_cfg = copy.deepcopy(init_cfg)
