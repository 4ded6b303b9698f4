"""The one builder of norm and activation layers from OpenMMLab configs.

Backbones, necks and heads take ``norm_cfg`` / ``act_cfg`` dicts, as in
MMSegmentation and mmpretrain, and hand the plain modules the layer factories
of :func:`norm_layer_factory` and :func:`act_layer_factory`, so every
component checks a config the same way, before any layer is built.
Activations that accept ``inplace`` are built in place unless the config says
otherwise (the layers follow a conv or a norm, whose outputs are not needed
again).
"""

import inspect
from functools import partial
from typing import Any, Callable, List, Optional, Union

from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import nn

__all__ = [
    'ACT_TYPES',
    'BN',
    'NORM_TYPES',
    'RELU',
    'InitConfigType',
    'act_layer_factory',
    'norm_layer_factory',
]

InitConfigType = Union[dict, List[dict], None]
# Defaults of norm_cfg / act_cfg arguments; never mutated (factories copy).
BN = {'type': 'BN', 'requires_grad': True}
RELU = {'type': 'ReLU'}

# Norms of mmcv that normalise N x C x H x W maps per channel or group.
NORM_TYPES = ('BN', 'SyncBN', 'GN', 'IN', 'BN2d', 'IN2d', 'MMSyncBN')
# Activations mmcv registers.
ACT_TYPES = (
    'ReLU',
    'LeakyReLU',
    'PReLU',
    'RReLU',
    'ReLU6',
    'ELU',
    'SiLU',
    'GELU',
    'Sigmoid',
    'Tanh',
    'HSigmoid',
    'HSwish',
    'Swish',
    'Clamp',
)
# Those without an ``inplace`` argument.
_NO_INPLACE = ('PReLU', 'GELU', 'Sigmoid', 'Tanh', 'HSigmoid', 'Swish', 'Clamp')
# What mmcv raises for options a layer does not accept.
_BUILD_ERRORS = (KeyError, TypeError, ValueError, AssertionError)


def _check(name: str, kind: str, cfg: Any, allowed: tuple) -> dict:
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(
            f"{name} must be a dict with a 'type' key (e.g. dict(type="
            f'{allowed[0]!r})), got {cfg!r}'
        )
    layer_type = cfg['type']
    if not (inspect.isclass(layer_type) and issubclass(layer_type, nn.Module)) and (
        layer_type not in allowed
    ):
        raise ValueError(
            f'unknown {kind} type {layer_type!r} in {name}={cfg!r}; allowed: '
            + ', '.join(repr(t) for t in allowed)
        )
    return dict(cfg)


def _build(
    name: str, cfg: dict, what: str, build: Callable, *args: Any, **extra: Any
) -> Any:
    try:
        return build(dict(cfg, **extra), *args)
    except _BUILD_ERRORS as err:
        reason = f'{type(err).__name__}: {err}'.rstrip(': ')
        raise ValueError(
            f'{name}={cfg!r} cannot build {what}, an option is missing or wrong '
            f'(e.g. GN needs num_groups): {reason}'
        ) from err


def _norm(cfg: dict, channels: int) -> nn.Module:
    what = f'a norm layer of {channels} channels'
    return _build('norm_cfg', cfg, what, build_norm_layer, channels)[1]


def _act(cfg: dict, inplace: bool = True) -> nn.Module:
    takes_inplace = cfg['type'] not in _NO_INPLACE and not inspect.isclass(cfg['type'])
    extra = {'inplace': inplace} if takes_inplace and 'inplace' not in cfg else {}
    return _build('act_cfg', cfg, 'an activation', build_activation_layer, **extra)


def norm_layer_factory(
    norm_cfg: Optional[dict], optional: bool = False
) -> Optional[Callable[[int], nn.Module]]:
    """A ``norm_layer(channels)`` factory for a ``norm_cfg``.

    Args:
        norm_cfg (dict, optional): mmcv norm config, e.g.
            ``dict(type='BN', requires_grad=True)``; ``type`` is one of
            :data:`NORM_TYPES` (or an ``nn.Module`` class).
        optional (bool): Whether None (no norm, returns None) is allowed.
            Default: False.

    Returns:
        Callable[[int], nn.Module] | None: Builds the norm for a channel count.

    Raises:
        TypeError: ``norm_cfg`` is not a dict with a type.
        ValueError: The type is unknown (the message lists the allowed ones).
            The factory raises one naming the config and mmcv's reason for
            options mmcv rejects (e.g. ``GN`` without ``num_groups``).

    Example:
        >>> norm = norm_layer_factory(dict(type='GN', num_groups=2))
        >>> norm(8)
        GroupNorm(2, 8, eps=1e-05, affine=True, bias=True)
    """
    if norm_cfg is None and optional:
        return None
    return partial(_norm, _check('norm_cfg', 'norm', norm_cfg, NORM_TYPES))


def act_layer_factory(
    act_cfg: Optional[dict], optional: bool = False
) -> Optional[Callable[..., nn.Module]]:
    """An ``act_layer(inplace=True)`` factory for an ``act_cfg``.

    Args:
        act_cfg (dict, optional): mmcv activation config, e.g.
            ``dict(type='ReLU')``; ``type`` is one of :data:`ACT_TYPES` (or an
            ``nn.Module`` class).
        optional (bool): Whether None (no activation, returns None) is
            allowed. Default: False.

    Returns:
        Callable[..., nn.Module] | None: Builds the activation; its
        ``inplace`` argument (default True) applies unless the config sets
        ``inplace`` itself.

    Raises:
        TypeError: ``act_cfg`` is not a dict with a type.
        ValueError: The type is unknown (the message lists the allowed ones).
            The factory raises one naming the config and mmcv's reason for
            options mmcv rejects.
    """
    if act_cfg is None and optional:
        return None
    return partial(_act, _check('act_cfg', 'activation', act_cfg, ACT_TYPES))
