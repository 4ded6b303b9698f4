"""Convert DRN checkpoints for timm, mmpretrain and MMSegmentation.

The source may be in any layout :mod:`mmdrn.backbones.drn_weights` reads.
The weights are converted to the fyu/drn keys and checked against the named
timm model (every key present, nothing left over), then renamed for the
target:

* ``'timm'``: the ``drn_*`` model's own state dict;
* ``'mmpretrain'``: an ``ImageClassifier`` with a DRN backbone and
  ``CAMHead`` (``backbone.*``, ``head.fc.*``), as in ``configs/drn_cls/``;
* ``'mmseg'``: an ``EncoderDecoder``. From a ``DRNSeg`` checkpoint this is
  the complete segmentor: the backbone (``backbone.*``) and ``seg``, the 1x1
  classifier, as the decode head's ``decode_head.conv_seg.*`` (an
  ``FCNHead`` with ``num_convs=0``, as in
  ``configs/drn/fcn_drn-*_fyu-cityscapes-*.py``). From an ImageNet
  checkpoint only the backbone (the 1000-class classifier is dropped), for
  ``load_from`` or ``init_cfg=dict(type='Pretrained', prefix='backbone.')``.

``DRNSeg`` upsamples its logits with ``up``, a transposed convolution (kernel
16, stride 8, padding 4, one group per class) that fyu/drn fills with a
fixed bilinear kernel and never trains. Output pixel ``o`` of it weighs the
input at source coordinate ``(o + 0.5) / 8 - 0.5`` with the bilinear
weights, which is exactly ``F.interpolate(mode='bilinear',
align_corners=False)``, MMSeg's resize, at a scale of 8. The two differ only
in the 4-pixel border, where the transposed convolution lacks the
neighbour outside the image and scales the logits by a positive factor
(1 - d, d the distance to the missing neighbour) that is the same for every
class: the argmax, hence the published predictions, are the same. The
conversion checks that ``up`` holds that kernel.
"""

import math
from typing import Any, Dict, List, Mapping, Tuple

import timm
import torch
from torch import nn

from .backbones.drn_weights import (
    StateDict,
    convert_state_dict,
    detect_layout,
    match_state_dict,
    unwrap_state_dict,
)
from .heads import image_classifier_keys
from .utils.validation import check_choice

__all__ = ['TARGETS', 'bilinear_up_kernel', 'convert', 'drn_models', 'load_timm_drn']

TARGETS = ['mmpretrain', 'mmseg', 'timm']


def drn_models() -> List[str]:
    """Names of mmdrn's timm models (``drn_a_18`` ... ``drn_d_107``)."""
    return timm.list_models('drn_*')


def bilinear_up_kernel(size: int = 16) -> torch.Tensor:
    """The bilinear kernel fyu/drn's ``fill_up_weights`` gives ``DRNSeg.up``.

    For a factor ``f = ceil(size / 2)`` and centre ``c = (2f - 1 - f % 2) /
    (2f)``: ``k[i, j] = (1 - |i / f - c|) (1 - |j / f - c|)``.

    Args:
        size (int): Kernel size (16 for DRNSeg's factor 8). Default: 16.

    Returns:
        Tensor: ``size x size`` float32 kernel.
    """
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2 * factor)
    ramp = 1 - (torch.arange(size, dtype=torch.float64) / factor - centre).abs()
    return torch.outer(ramp, ramp).float()


def _check_up(state: Mapping[str, torch.Tensor]) -> None:
    up = state.get('up.weight')
    if up is None:
        return
    kernel = bilinear_up_kernel(up.shape[-1])
    if up.ndim != 4 or up.shape[1] != 1 or not torch.allclose(up.float(), kernel):
        raise ValueError(
            "the DRNSeg checkpoint's up.weight is not fyu/drn's fixed bilinear "
            'kernel (fill_up_weights, kernel 16, one group per class); MMSeg '
            'upsamples bilinearly, which reproduces only that kernel'
        )


def _match(
    checkpoint: Mapping, model: str, require_classifier: bool
) -> Tuple[nn.Module, StateDict, str]:
    """Convert, size the classifier, check every key: (net, state, layout)."""
    check_choice('model', model, drn_models())
    source = unwrap_state_dict(checkpoint)
    layout = detect_layout(source)
    net = timm.create_model(model)
    state = convert_state_dict(source, net.arch, net.layers, layout=layout)
    num_classes = state['fc.weight'].shape[0] if 'fc.weight' in state else 0
    if num_classes == 0 and require_classifier:
        raise ValueError(
            'the checkpoint has no classifier (fc), which an ImageClassifier '
            'needs; use --target mmseg (backbone only) or timm'
        )
    if num_classes != net.num_classes:
        net.reset_classifier(num_classes)
    # every key of the model present and no other (filling only BatchNorm's
    # counters and DRN-C-58's unused projection, which some files lack)
    state = match_state_dict(state, net.state_dict(), optional_keys=net.unused_keys())
    return net, state, layout


def load_timm_drn(checkpoint: Mapping, model: str) -> nn.Module:
    """A timm ``drn_*`` model holding a checkpoint's weights (any layout).

    The classifier is sized to the checkpoint's; every key must fit.

    Args:
        checkpoint (Mapping): State dict or training checkpoint.
        model (str): mmdrn timm model name, e.g. ``'drn_c_26'``.

    Returns:
        nn.Module: The model, in training mode as built.
    """
    net, state, _ = _match(checkpoint, model, require_classifier=False)
    net.load_state_dict(state)
    return net


def convert(
    checkpoint: Mapping, model: str, target: str
) -> Tuple[StateDict, Dict[str, Any]]:
    """Convert a loaded checkpoint to the target's keys (see the module docstring).

    Args:
        checkpoint (Mapping): State dict or training checkpoint, any layout of
            :mod:`mmdrn.backbones.drn_weights`.
        model (str): mmdrn timm model name of the weights, e.g. ``'drn_c_26'``.
        target (str): ``'mmpretrain'``, ``'mmseg'`` or ``'timm'``.

    Returns:
        tuple[dict, dict]: The converted state dict, and facts about the
        conversion: ``source_layout``, ``num_classes`` (classifier outputs, 0
        for none) and ``classifier`` (where the classifier went: ``'fc'``,
        ``'head.fc'``, ``'decode_head.conv_seg'``, ``'dropped'`` or
        ``'none'``).

    Raises:
        ValueError: Unknown ``target`` or ``model``, a checkpoint without a
            classifier for the mmpretrain target, or a DRNSeg ``up`` that is
            not the bilinear kernel (mmseg target).
        CheckpointError: Keys that do not fit the model (named).
    """
    check_choice('target', target, TARGETS)
    _, state, layout = _match(checkpoint, model, target == 'mmpretrain')
    num_classes = state['fc.weight'].shape[0] if 'fc.weight' in state else 0
    facts = dict(source_layout=layout, num_classes=num_classes)
    if target == 'timm':
        return state, dict(facts, classifier='fc' if num_classes else 'none')
    if target == 'mmpretrain':
        return image_classifier_keys(state), dict(facts, classifier='head.fc')
    fc = {k[len('fc.') :]: state.pop(k) for k in list(state) if k.startswith('fc.')}
    converted = {f'backbone.{k}': v for k, v in state.items()}
    if layout != 'drnseg' or not fc:
        return converted, dict(facts, classifier='dropped' if fc else 'none')
    _check_up(unwrap_state_dict(checkpoint))
    weight = fc['weight']
    # DRN-A's classifier is a Linear; the head's is a 1x1 convolution
    converted['decode_head.conv_seg.weight'] = weight.reshape(*weight.shape[:2], 1, 1)
    converted['decode_head.conv_seg.bias'] = fc['bias']
    return converted, dict(facts, classifier='decode_head.conv_seg')
