"""Strict checkpoint loading: what does not fit is refused and named."""

import pytest
import torch
import torch.nn as nn
from mmseg.models import SegTTAModel
from mmseg.registry import MODELS

import mmdrn.openmmlab  # noqa: F401  (registers DRN_* for MMSeg)
from mmdrn.backbones import DRN
from mmdrn.openmmlab.checkpoint import (
    CheckpointMismatchError,
    check_fit,
    load_checkpoint_strict,
)


def _segmentor(arch='D', depth=22, classes=7):
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type=f'DRN_{arch}', depth=depth, out_indices=(7,)),
            decode_head=dict(
                type='FCNHead',
                in_channels=512,
                channels=512,
                num_convs=0,
                concat_input=False,
                num_classes=classes,
            ),
        )
    )


def _drnseg_keys(state):
    """fyu/drn's DRNSeg keys of a DRN-D (children: layer0 ... layer8)."""
    out = {}
    for key, value in state.items():
        if key.startswith('fc.'):
            out['seg.' + key[3:]] = value
            continue
        child, rest = key.split('.', 1)
        out[f'base.{int(child[len("layer") :])}.{rest}'] = value
    return out


@pytest.mark.parametrize('layout', ['drn', 'drnseg'])
def test_a_plain_drn_network_is_refused_with_the_conversion(layout):
    with torch.device('meta'):
        state = DRN('D', 22, num_classes=19).state_dict()
    if layout == 'drnseg':
        state = _drnseg_keys(state)
    with pytest.raises(CheckpointMismatchError) as info:
        check_fit(_segmentor(), state, 'net.pth')
    message = str(info.value)
    assert (
        f'a plain DRN network in {layout!r} layout, not an OpenMMLab model' in message
    )
    assert 'tools/model_converters/convert_checkpoint.py FILE OUT.pth' in message


def test_an_openmmlab_model_of_another_shape_gets_no_conversion_advice():
    with pytest.raises(CheckpointMismatchError) as info:
        check_fit(_segmentor(classes=19), _segmentor(classes=7).state_dict())
    assert 'convert_checkpoint' not in str(info.value)


def test_check_fit_accepts_a_fitting_checkpoint_through_wrappers():
    model = _segmentor()
    checkpoint = {
        'meta': {},
        'state_dict': {'module.' + k: v for k, v in model.state_dict().items()},
    }
    report = check_fit(SegTTAModel(module=model), checkpoint)
    assert report.fits and report.summary() == ''
    assert report.loaded == len(model.state_dict())


def test_check_fit_names_every_kind_of_mismatch():
    model = _segmentor(classes=19)
    state = _segmentor(classes=7).state_dict()
    del state['backbone.layer0.0.weight']
    state['extra.weight'] = torch.zeros(2)
    with pytest.raises(CheckpointMismatchError) as info:
        check_fit(model, state, 'x.pth')
    message = str(info.value)
    assert message.startswith('x.pth does not fit the model of the config:\n')
    assert (
        '1 model keys missing from the checkpoint (left at their initialisation): '
        'backbone.layer0.0.weight\n'
    ) in message
    assert (
        '2 of another shape (not loaded): decode_head.conv_seg.weight (checkpoint '
        '[7, 512, 1, 1], model [19, 512, 1, 1]), decode_head.conv_seg.bias '
        '(checkpoint [7], model [19])\n'
    ) in message
    assert (
        '1 checkpoint keys the model does not have (ignored): extra.weight' in message
    )
    assert '--allow-partial-load' in message
    report = check_fit(model, state, allow_partial=True)
    assert not report.fits
    assert report.loaded == len(model.state_dict()) - 3


def test_load_checkpoint_strict_refuses_or_loads_what_fits(tmp_path):
    source = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 3, 1))
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    target = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 4, 1))
    before = target[1].weight.detach().clone()
    with pytest.raises(CheckpointMismatchError, match=r"'.*ckpt.pth' does not fit"):
        load_checkpoint_strict(target, str(path))
    assert not torch.equal(target[0].weight, source[0].weight)  # nothing loaded
    report = load_checkpoint_strict(target, str(path), allow_partial=True)
    assert report.reshaped == [
        '1.weight (checkpoint [3, 2, 1, 1], model [4, 2, 1, 1])',
        '1.bias (checkpoint [3], model [4])',
    ]
    assert torch.equal(target[0].weight, source[0].weight)
    assert torch.equal(target[1].weight, before)
