"""Registration of mmdrn components in the OpenMMLab registries.

The components register into every installed codebase among MMSegmentation
(scope ``'mmseg'``) and mmpretrain (``'mmpretrain'``), so the same class can be
named in a config of either scope. One of the two must be installed;
:data:`SCOPES` lists those found.
"""

import importlib
from typing import Callable, Dict, Tuple, Type

__all__ = [
    'SCOPES',
    'register_dataset',
    'register_hook',
    'register_metric',
    'register_model',
    'register_transform',
]

KNOWN_SCOPES = ('mmseg', 'mmpretrain')
_KINDS = {
    'models': 'MODELS',
    'metrics': 'METRICS',
    'datasets': 'DATASETS',
    'hooks': 'HOOKS',
    'transforms': 'TRANSFORMS',
}


def _installed_registries() -> Dict[str, object]:
    """``{scope: <scope>.registry module}`` for each installed codebase."""
    found, failures = {}, []
    for scope in KNOWN_SCOPES:
        try:
            found[scope] = importlib.import_module(f'{scope}.registry')
        except ModuleNotFoundError as err:
            failures.append((scope, err))
    for scope, err in failures:
        # A codebase that is installed but does not import (e.g. MMSeg
        # without mmcv) is an error worth seeing, even when the other works.
        if err.name != scope and found:
            raise err
    if not found:
        reasons = '; '.join(f'import {scope}: {err}' for scope, err in failures)
        raise ImportError(
            'mmdrn.openmmlab registers its components into MMSegmentation or '
            f'mmpretrain, and neither can be imported ({reasons}). Install one '
            "of them with mmengine and mmcv ('pip install mmsegmentation' or "
            "'pip install mmpretrain', plus 'mim install mmcv'). For the timm "
            "models alone, 'import mmdrn' needs only torch and timm."
        )
    return found


_REGISTRIES = _installed_registries()
SCOPES: Tuple[str, ...] = tuple(_REGISTRIES)


def _register(kind: str, scopes: Tuple[str, ...]) -> Callable[[Type], Type]:
    unknown = set(scopes) - set(KNOWN_SCOPES)
    if unknown:
        raise ValueError(f'scopes must be among {KNOWN_SCOPES}, got {sorted(unknown)}')
    missing = [scope for scope in scopes if scope not in _REGISTRIES]
    if missing:
        raise ImportError(
            f'cannot register into {missing}: not installed (installed: {SCOPES})'
        )

    def decorator(cls: Type) -> Type:
        for scope in scopes or SCOPES:
            getattr(_REGISTRIES[scope], _KINDS[kind]).register_module(module=cls)
        return cls

    return decorator


def register_model(*scopes: str) -> Callable[[Type], Type]:
    """Register a backbone/neck/head in the given scopes (default: all installed)."""
    return _register('models', scopes)


def register_metric(*scopes: str) -> Callable[[Type], Type]:
    """Register an evaluation metric in the given scopes (default: all installed)."""
    return _register('metrics', scopes)


def register_dataset(*scopes: str) -> Callable[[Type], Type]:
    """Register a dataset in the given scopes (default: all installed)."""
    return _register('datasets', scopes)


def register_hook(*scopes: str) -> Callable[[Type], Type]:
    """Register a training hook in the given scopes (default: all installed)."""
    return _register('hooks', scopes)


def register_transform(*scopes: str) -> Callable[[Type], Type]:
    """Register a data transform in the given scopes (default: all installed)."""
    return _register('transforms', scopes)
