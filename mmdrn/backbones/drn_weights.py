"""Loading DRN checkpoints in the key layouts found in the wild.

:class:`~mmdrn.backbones.drn.DRN` uses fyu/drn's keys, so conversion maps
every known layout onto them. The layout is detected from the keys:

``'drn'``
    fyu/drn's ``drn.py`` (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``
    ... ``fc.*`` for DRN-B/C, ``layer0.0.weight``, ``layer0.1.*`` ... for DRN-D)
    and torchvision/timm ResNets for DRN-A. Used as is.
``'drnseg'``
    fyu/drn's ``segment.py`` ``DRNSeg``: ``base`` is
    ``nn.Sequential(*list(drn.children())[:-2])``, so ``base.N`` is the N-th
    child of the classification network (C: ``conv1``, ``bn1``, ``relu``,
    ``layer1`` ...; D: ``layer0``, ``layer1`` ...; A: ``conv1``, ``bn1``,
    ``relu``, ``maxpool``, ``layer1`` ...). ``seg`` (the 1x1 conv classifier
    over ``classes`` segmentation classes) becomes ``fc``, which has the same
    form; ``up`` (a fixed bilinear transposed convolution, not a learned
    weight) is dropped. To keep only the backbone, pass
    ``skip_classifier=True``.
``'pytorchcv'``
    pytorchcv/imgclsmob ``drnc*``/``drnd*``: ``features.init_block.*``,
    ``features.stageN.unitM.*`` (stage 4 holds levels 4 to 8), ``output.*``.
    pytorchcv's DRN-C-58 lacks the unused ``layer7.0.downsample`` projection of
    fyu/drn (see :mod:`.drn`); those keys may be absent.

Any of them may be nested under ``state_dict`` or ``model`` (training
checkpoints) and carry DataParallel's ``module.`` prefix. Keys that no rule
maps, and keys the model has but the checkpoint lacks, raise
:class:`~mmdrn.utils.CheckpointError` naming them. BatchNorm's
``num_batches_tracked`` (absent from the 2017 checkpoints) is filled with 0.
"""

import logging
import os
import re
import urllib.parse
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn

from .. import hub
from ..utils import CheckpointError, PathLike, load_file
from ..utils.validation import check_choice, format_names

__all__ = [
    'LAYOUTS',
    'unwrap_state_dict',
    'detect_layout',
    'convert_state_dict',
    'match_state_dict',
    'load_drn_weights',
    'load_timm_drn',
]

LAYOUTS = ['drn', 'drnseg', 'pytorchcv']
_logger = logging.getLogger(__name__)
StateDict = Dict[str, torch.Tensor]


def unwrap_state_dict(checkpoint: Mapping) -> StateDict:
    """Take the weights out of a checkpoint and drop DataParallel's prefix.

    Args:
        checkpoint (Mapping): A state dict, or a training checkpoint holding
            one under ``state_dict`` or ``model``.

    Returns:
        dict[str, Tensor]: The tensors, keys without ``module.``.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'a checkpoint must be a dict of tensors, got {type(checkpoint).__name__}'
        )
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    not_tensors = [k for k, v in checkpoint.items() if not torch.is_tensor(v)]
    if not_tensors:
        raise CheckpointError(
            f'expected a dict of tensors; these entries are not tensors: '
            f'{format_names(not_tensors)}'
        )
    return {
        (k[len('module.') :] if k.startswith('module.') else k): v
        for k, v in checkpoint.items()
    }


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Tell which of :data:`LAYOUTS` a (prefix-free) state dict uses.

    Args:
        state_dict (Mapping[str, Tensor]): Unwrapped weights.

    Returns:
        str: 'drn', 'drnseg' or 'pytorchcv'.
    """
    keys = list(state_dict)
    if any(k.startswith(('features.init_block.', 'features.stage')) for k in keys):
        return 'pytorchcv'
    if any(k.startswith('base.') for k in keys):
        return 'drnseg'
    if any(re.match(r'(conv1|layer0)\.', k) for k in keys):
        return 'drn'
    raise CheckpointError(
        f'cannot tell the checkpoint layout from its keys (expected one of '
        f'{LAYOUTS}: keys starting with conv1./layer0., base., or '
        f'features.init_block.); first keys: {keys[:5]}'
    )


def _child_names(arch: str, num_levels: int) -> List[str]:
    """Children of fyu/drn's classification network, in registration order."""
    levels = [f'layer{i + 1}' for i in range(num_levels)]
    if arch == 'D':
        return ['layer0'] + levels
    if arch == 'A':
        return ['conv1', 'bn1', 'relu', 'maxpool'] + levels
    return ['conv1', 'bn1', 'relu'] + levels


def _drnseg_key(key: str, arch: str, layers: Sequence[int]) -> Optional[str]:
    if key in ('seg.weight', 'seg.bias'):
        return 'fc.' + key.split('.')[1]
    match = re.fullmatch(r'base\.(\d+)\.(.+)', key)
    names = _child_names(arch, len(layers))
    if match is None or int(match.group(1)) >= len(names):
        return None
    return f'{names[int(match.group(1))]}.{match.group(2)}'


def _pytorchcv_units(arch: str, layers: Sequence[int]) -> Dict[Tuple[int, int], Tuple]:
    """(stage, unit) -> (level, index in level, plain conv level?)."""
    stages = [[0], [1], [2], [3, 4, 5, 6, 7]]  # pytorchcv stage 4 = levels 4..8
    table = {}
    for stage, levels in enumerate(stages, 1):
        unit = 0
        for level in levels:
            plain = arch == 'D' and level in (0, 1, 6, 7)
            for index in range(layers[level]):
                unit += 1
                table[stage, unit] = (level + 1, index, plain)
    return table


_PCV_BLOCK = re.compile(r'body\.conv(\d)\.(conv|bn)\.(.+)')
_PCV_PLAIN = re.compile(r'body\.(conv|bn)\.(.+)')
_PCV_IDENTITY = re.compile(r'identity_conv\.(conv|bn)\.(.+)')
_SEQ_INDEX = {'conv': 0, 'bn': 1}  # position in fyu/drn's (conv, norm[, act])


def _pytorchcv_key(key: str, arch: str, units: Mapping) -> Optional[str]:
    if key.startswith('output.'):
        return 'fc.' + key[len('output.') :]
    match = re.fullmatch(r'features\.init_block\.(conv|bn)\.(.+)', key)
    if match:
        part, rest = match.groups()
        if arch == 'D':
            return f'layer0.{_SEQ_INDEX[part]}.{rest}'
        return f'{part}1.{rest}'
    match = re.fullmatch(r'features\.stage(\d+)\.unit(\d+)\.(.+)', key)
    if match is None:
        return None
    unit = units.get((int(match.group(1)), int(match.group(2))))
    if unit is None:
        return None
    level, index, plain = unit
    tail = match.group(3)
    if plain:
        sub = _PCV_PLAIN.fullmatch(tail)
        if sub is None:
            return None
        part, rest = sub.groups()
        return f'layer{level}.{3 * index + _SEQ_INDEX[part]}.{rest}'
    sub = _PCV_BLOCK.fullmatch(tail)
    if sub:
        num, part, rest = sub.groups()
        name = 'conv' if part == 'conv' else 'bn'
        return f'layer{level}.{index}.{name}{num}.{rest}'
    sub = _PCV_IDENTITY.fullmatch(tail)
    if sub:
        part, rest = sub.groups()
        return f'layer{level}.{index}.downsample.{_SEQ_INDEX[part]}.{rest}'
    return None


def convert_state_dict(
    checkpoint: Mapping,
    arch: str,
    layers: Sequence[int],
    layout: Optional[str] = None,
) -> StateDict:
    """Convert a checkpoint of any known layout to the fyu/drn keys.

    Args:
        checkpoint (Mapping): State dict or training checkpoint.
        arch (str): Target architecture letter ('A', 'B', 'C', 'D').
        layers (Sequence[int]): Blocks per level of the target (``DRN.layers``).
        layout (str, optional): Force a layout instead of detecting it.
            Default: None.

    Returns:
        dict[str, Tensor]: Weights under the target's key names.

    Raises:
        CheckpointError: Keys that the layout's rules cannot map.
        ValueError: Unknown ``layout``, or a pytorchcv checkpoint for DRN-A/B.
    """
    state = unwrap_state_dict(checkpoint)
    if layout is None:
        layout = detect_layout(state)
    check_choice('layout', layout, LAYOUTS)
    if layout == 'drn':
        return state
    if layout == 'pytorchcv' and arch not in ('C', 'D'):
        raise ValueError(
            f'pytorchcv checkpoints exist for DRN-C and DRN-D only, got arch={arch!r}'
        )
    units = _pytorchcv_units(arch, layers) if layout == 'pytorchcv' else {}
    converted, unmapped = {}, []
    for key, value in state.items():
        if layout == 'drnseg' and key.startswith('up.'):
            continue  # fixed bilinear upsampling of DRNSeg, not part of a DRN
        if layout == 'drnseg':
            new_key = _drnseg_key(key, arch, layers)
        else:
            new_key = _pytorchcv_key(key, arch, units)
        if new_key is None:
            unmapped.append(key)
            continue
        if arch == 'A' and new_key == 'fc.weight' and value.ndim == 4:
            value = value.flatten(1)  # DRNSeg's 1x1 conv onto DRN-A's Linear
        converted[new_key] = value
    if unmapped:
        raise CheckpointError(
            f'{len(unmapped)} keys of this {layout!r} checkpoint do not belong to '
            f'a DRN-{arch} with levels {list(layers)}: {format_names(unmapped)}'
        )
    return converted


def match_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    skip_classifier: bool = False,
    fill_missing_classifier: bool = False,
    optional_keys: Iterable[str] = (),
    ignore_shapes: Iterable[str] = (),
) -> StateDict:
    """Check converted weights against a model's state dict; fill what may be.

    Args:
        state_dict (Mapping[str, Tensor]): Converted weights.
        reference (Mapping[str, Tensor]): ``model.state_dict()``.
        skip_classifier (bool): Ignore the checkpoint's ``fc.*`` and keep the
            model's. Default: False.
        fill_missing_classifier (bool): If the checkpoint has no ``fc.*`` at
            all, keep the model's instead of failing. Default: False.
        optional_keys (Iterable[str]): Model keys that may be absent (kept from
            the model), e.g. unused parameters. Default: ().
        ignore_shapes (Iterable[str]): Keys whose shapes are not compared
            (another step adapts them, e.g. timm's input-channel adaptation).
            Default: ().

    Returns:
        dict[str, Tensor]: Weights with exactly the reference's keys.

    Raises:
        CheckpointError: Keys left over, missing or of another shape, named.
    """
    state = dict(state_dict)
    if skip_classifier:
        state = {k: v for k, v in state.items() if not k.startswith('fc.')}
    keep_fc = skip_classifier or (
        fill_missing_classifier and not any(k.startswith('fc.') for k in state)
    )
    optional = set(optional_keys)
    missing, kept = [], []
    for key, value in reference.items():
        if key in state:
            continue
        if key.endswith('num_batches_tracked'):
            state[key] = torch.zeros_like(value)
        elif key in optional:
            state[key] = value
            kept.append(key)
        elif keep_fc and key.startswith('fc.'):
            state[key] = value
        else:
            missing.append(key)
    if kept:
        _logger.warning(
            f'the checkpoint lacks {len(kept)} keys of parameters the forward '
            f'pass never uses; they keep their initialisation: {format_names(kept)}'
        )
    if keep_fc and not skip_classifier and any(k.startswith('fc.') for k in reference):
        _logger.warning('the checkpoint has no classifier; fc keeps its initialisation')
    _check_keys(state, reference, missing, set(ignore_shapes))
    return state


def _check_keys(
    state: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    missing: List[str],
    unchecked: Iterable[str],
) -> None:
    """Raise one error naming the left-over, missing and reshaped keys."""
    unexpected = [k for k in state if k not in reference]
    reshaped = [
        f'{k} (checkpoint {list(v.shape)}, model {list(reference[k].shape)})'
        for k, v in state.items()
        if k in reference and k not in unchecked and v.shape != reference[k].shape
    ]
    if not (unexpected or missing or reshaped):
        return
    parts = [
        f'{len(keys)} {what}: {format_names(keys)}'
        for what, keys in (
            ('left over', unexpected),
            ('missing', missing),
            ('of another shape', reshaped),
        )
        if keys
    ]
    hint = ''
    if any(k.startswith('fc.') for k in unexpected + missing + reshaped):
        hint = ' (skip_classifier=True ignores the classifier)'
    raise CheckpointError(
        'checkpoint keys do not match the model after conversion; '
        + '; '.join(parts)
        + hint
    )


def _local_file(path_or_url: str) -> str:
    """The path itself, the verified file of ``drn://NAME``, or a URL's download."""
    if path_or_url.startswith(hub.SCHEME):
        return hub.fetch(path_or_url)[0]
    if '://' not in path_or_url:
        return path_or_url
    name = os.path.basename(urllib.parse.urlparse(path_or_url).path)
    cached = os.path.join(torch.hub.get_dir(), 'checkpoints', name)
    if not os.path.isfile(cached):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        torch.hub.download_url_to_file(path_or_url, cached)
    return cached


def load_drn_weights(
    model: nn.Module,
    checkpoint: Union[PathLike, Mapping],
    skip_classifier: bool = False,
    prefix: Optional[str] = None,
) -> StateDict:
    """Load a checkpoint of any known layout into a :class:`DRN`.

    Args:
        model (DRN): Target model (any output stride, ``in_chans`` must match).
        checkpoint (str | PathLike | Mapping): File (read with
            :func:`mmdrn.utils.load_file`), ``drn://NAME`` (published
            weights, downloaded and verified by :func:`mmdrn.hub.fetch`),
            URL (downloaded once into ``torch.hub``'s checkpoint cache, then
            read the same way) or an already loaded checkpoint.
        skip_classifier (bool): Keep the model's ``fc`` and ignore the
            checkpoint's (e.g. a 1000-class ImageNet ``fc`` into a 19-class
            model, or into a backbone without classifier). Default: False.
        prefix (str, optional): Load only keys starting with this prefix,
            stripped (e.g. ``'backbone.'`` of an MMSeg checkpoint).
            Default: None.

    Returns:
        dict[str, Tensor]: The state dict that was loaded.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = load_file(_local_file(os.fspath(checkpoint)))
    state = unwrap_state_dict(checkpoint)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise CheckpointError(f'no checkpoint key starts with prefix {prefix!r}')
    converted = convert_state_dict(state, model.arch, model.layers)
    matched = match_state_dict(
        converted,
        model.state_dict(),
        skip_classifier=skip_classifier,
        optional_keys=model.unused_keys(),
    )
    model.load_state_dict(matched)
    return matched


def load_timm_drn(checkpoint: Mapping, model: str) -> nn.Module:
    """A timm ``drn_*`` model holding a checkpoint's weights (any layout).

    The classifier is sized to the checkpoint's (removed if it has none);
    every other key must fit, as in :func:`load_drn_weights`.

    Args:
        checkpoint (Mapping): State dict or training checkpoint.
        model (str): mmdrn timm model name, e.g. ``'drn_c_26'``.

    Returns:
        DRN: ``timm.create_model(model)`` with the weights, in training mode.

    Raises:
        ValueError: ``model`` is not one of mmdrn's timm models.
        CheckpointError: Keys that do not fit the model, named.
    """
    check_choice('model', model, timm.list_models('drn_*'))
    net = timm.create_model(model)
    state = convert_state_dict(checkpoint, net.arch, net.layers)
    net.reset_classifier(state['fc.weight'].shape[0] if 'fc.weight' in state else 0)
    load_drn_weights(net, state)
    return net
