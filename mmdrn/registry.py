"""Registration of mmdrn components in the OpenMMLab registries.

Components are plain PyTorch modules; this module is the one place that knows
about MMSegmentation's and mmpretrain's registries, so the same class can be
named in a config of either scope (``default_scope='mmseg'`` or
``'mmpretrain'``).
"""

from typing import Callable, Type

from mmpretrain.registry import DATASETS as PRETRAIN_DATASETS
from mmpretrain.registry import HOOKS as PRETRAIN_HOOKS
from mmpretrain.registry import METRICS as PRETRAIN_METRICS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.registry import TRANSFORMS as PRETRAIN_TRANSFORMS
from mmseg.registry import DATASETS as SEG_DATASETS
from mmseg.registry import HOOKS as SEG_HOOKS
from mmseg.registry import METRICS as SEG_METRICS
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

__all__ = [
    'register_model',
    'register_metric',
    'register_dataset',
    'register_hook',
    'register_transform',
]

_SCOPES = {
    'models': {'mmseg': SEG_MODELS, 'mmpretrain': PRETRAIN_MODELS},
    'metrics': {'mmseg': SEG_METRICS, 'mmpretrain': PRETRAIN_METRICS},
    'datasets': {'mmseg': SEG_DATASETS, 'mmpretrain': PRETRAIN_DATASETS},
    'hooks': {'mmseg': SEG_HOOKS, 'mmpretrain': PRETRAIN_HOOKS},
    'transforms': {'mmseg': SEG_TRANSFORMS, 'mmpretrain': PRETRAIN_TRANSFORMS},
}


def _register(kind: str, scopes: tuple) -> Callable[[Type], Type]:
    unknown = set(scopes) - set(_SCOPES[kind])
    if unknown:
        raise ValueError(
            f'scopes must be among {sorted(_SCOPES[kind])}, got {sorted(unknown)}'
        )

    def decorator(cls: Type) -> Type:
        for scope in scopes:
            _SCOPES[kind][scope].register_module(module=cls)
        return cls

    return decorator


def register_model(*scopes: str) -> Callable[[Type], Type]:
    """Register a backbone/neck/head in the given scopes (default: both)."""
    return _register('models', scopes or ('mmseg', 'mmpretrain'))


def register_metric(*scopes: str) -> Callable[[Type], Type]:
    """Register an evaluation metric in the given scopes (default: both)."""
    return _register('metrics', scopes or ('mmseg', 'mmpretrain'))


def register_dataset(*scopes: str) -> Callable[[Type], Type]:
    """Register a dataset in the given scopes (default: both)."""
    return _register('datasets', scopes or ('mmseg', 'mmpretrain'))


def register_hook(*scopes: str) -> Callable[[Type], Type]:
    """Register a training hook in the given scopes (default: both)."""
    return _register('hooks', scopes or ('mmseg', 'mmpretrain'))


def register_transform(*scopes: str) -> Callable[[Type], Type]:
    """Register a data transform in the given scopes (default: both)."""
    return _register('transforms', scopes or ('mmseg', 'mmpretrain'))
