"""Tests of the MMSegmentation / mmpretrain DRN backbones."""

import pytest
import torch
from drn_checkpoint_helpers import (
    X,
    assert_close,
    drnseg_state,
    fyu_state,
    pytorchcv_reference,
    randomize_,
)
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch import nn

from mmdrn.backbones.drn import DRN
from mmdrn.openmmlab.backbones import DRN_A, DRN_C, DRN_D
from mmdrn.utils import CheckpointError


@pytest.mark.parametrize('registry', [SEG_MODELS, PRETRAIN_MODELS])
@pytest.mark.parametrize(
    'type_, depth, channels, reductions',
    [
        ('DRN_A', 18, (64, 128, 256, 512), (4, 8, 8, 8)),
        ('DRN_B', 26, (16, 32, 64, 128, 256, 512, 512, 512), (1, 2, 4, 8, 8, 8, 8, 8)),
        ('DRN_C', 26, (16, 32, 64, 128, 256, 512, 512, 512), (1, 2, 4, 8, 8, 8, 8, 8)),
        ('DRN_D', 22, (16, 32, 64, 128, 256, 512, 512, 512), (1, 2, 4, 8, 8, 8, 8, 8)),
    ],
)
def test_builds_from_both_scopes_and_returns_every_level(
    registry, type_, depth, channels, reductions
):
    backbone = registry.build(dict(type=type_, depth=depth)).eval()
    assert isinstance(backbone, DRN) and backbone.arch == type_[-1]
    with torch.no_grad():
        outs = backbone(torch.rand(1, 3, 32, 32))
    assert isinstance(outs, tuple)
    assert [o.shape[1] for o in outs] == list(channels)
    assert [32 // o.shape[-1] for o in outs] == list(reductions)


def test_out_indices_output_stride_and_in_channels():
    backbone = SEG_MODELS.build(
        dict(
            type='DRN_C',
            depth=26,
            out_indices=(3, 5, 7),
            output_stride=16,
            in_channels=4,
        )
    ).eval()
    with torch.no_grad():
        outs = backbone(torch.rand(2, 4, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (2, 128, 8, 8),
        (2, 512, 4, 4),
        (2, 512, 4, 4),
    ]


def test_same_keys_as_the_core_without_classifier():
    backbone = DRN_D(depth=22)
    core = DRN('D', 22)
    assert list(backbone.state_dict()) == [
        k for k in core.state_dict() if not k.startswith('fc.')
    ]
    assert isinstance(backbone.fc, nn.Identity)


def test_norm_cfg_and_act_cfg():
    sync = DRN_C(depth=26, norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(sync.bn1, nn.SyncBatchNorm)
    assert isinstance(sync.layer5[0].downsample[1], nn.SyncBatchNorm)
    gn = DRN_D(depth=22, norm_cfg=dict(type='GN', num_groups=8))
    assert isinstance(gn.layer0[1], nn.GroupNorm) and gn.layer0[1].num_groups == 8
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.modules())
    frozen_bn = DRN_C(depth=26, norm_cfg=dict(type='BN', requires_grad=False))
    assert not frozen_bn.bn1.weight.requires_grad
    assert frozen_bn.conv1.weight.requires_grad
    leaky = DRN_C(depth=26, act_cfg=dict(type='LeakyReLU', negative_slope=0.2))
    acts = [m for m in leaky.modules() if isinstance(m, nn.LeakyReLU)]
    assert acts and all(m.negative_slope == 0.2 and m.inplace for m in acts)
    assert not any(isinstance(m, nn.ReLU) for m in leaky.modules())
    gelu = DRN_A(depth=18, act_cfg=dict(type='GELU'))
    assert isinstance(gelu.act1, nn.GELU)
    for model in (gn, leaky, gelu):
        assert model.eval()(torch.rand(1, 3, 16, 16))[-1].shape[1] == 512


def test_norm_eval_keeps_statistics():
    backbone = DRN_C(depth=26, norm_eval=True).train()
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert backbone.training and backbone.layer3[0].conv1.training
    before = [m.running_mean.clone() for m in bns]
    backbone(torch.rand(2, 3, 16, 16))
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, bns))
    moving = DRN_C(depth=26).train()
    moving(torch.rand(2, 3, 16, 16))
    assert not torch.equal(moving.bn1.running_mean, torch.zeros(16))


def test_frozen_stages():
    backbone = DRN_D(depth=22, frozen_stages=2).train()
    frozen = ['layer0', 'layer1', 'layer2']
    for name, param in backbone.named_parameters():
        assert param.requires_grad == (name.split('.')[0] not in frozen), name
    for name in frozen:
        assert not getattr(backbone, name).training
    assert backbone.layer3.training
    backbone(torch.rand(2, 3, 16, 16))[-1].sum().backward()
    assert backbone.layer0[0].weight.grad is None
    assert backbone.layer3[0].conv1.weight.grad is not None
    stem_only = DRN_C(depth=26, frozen_stages=0).train()
    assert not stem_only.conv1.weight.requires_grad and not stem_only.bn1.training
    assert stem_only.layer1[0].conv1.weight.requires_grad


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = DRN_C(depth=26).train()
    ckpt = DRN_C(depth=26, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16)
    sum(o.pow(2).mean() for o in plain(x)).backward()
    sum(o.pow(2).mean() for o in ckpt(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    for (name, a), b in zip(plain.named_buffers(), ckpt.buffers()):
        torch.testing.assert_close(b, a, msg=name)


def _pretrained(tmp_path, state, name='ckpt.pth', **extra):
    path = tmp_path / name
    torch.save(state, path)
    return dict(type='Pretrained', checkpoint=str(path), **extra)


@pytest.mark.parametrize(
    'name, type_, depth', [('drnc26', 'DRN_C', 26), ('drnd22', 'DRN_D', 22)]
)
def test_init_cfg_loads_pytorchcv_checkpoints(tmp_path, name, type_, depth):
    state, feats, _ = pytorchcv_reference(name)
    backbone = SEG_MODELS.build(
        dict(type=type_, depth=depth, init_cfg=_pretrained(tmp_path, state))
    )
    backbone.init_weights()
    with torch.no_grad():
        assert_close(backbone.eval()(X)[-1], feats)


@pytest.mark.parametrize('layout', ['fyu', 'module', 'drnseg'])
def test_init_cfg_loads_fyu_layouts(tmp_path, layout):
    source = randomize_(DRN('D', 22, num_classes=19))
    if layout == 'fyu':
        state = fyu_state(source)
    elif layout == 'module':
        state = {'state_dict': {f'module.{k}': v for k, v in fyu_state(source).items()}}
    else:
        state = drnseg_state(source, 19)
    backbone = PRETRAIN_MODELS.build(
        dict(type='DRN_D', depth=22, init_cfg=_pretrained(tmp_path, state))
    )
    backbone.init_weights()
    with torch.no_grad():
        expected = source.forward_intermediates(X, intermediates_only=True)
        for got, want in zip(backbone.eval()(X), expected):
            assert torch.equal(got, want)


def test_init_cfg_with_prefix_and_other_initializers(tmp_path):
    source = randomize_(DRN('C', 26))
    mmseg_ckpt = {
        'meta': {'epoch': 1},
        'state_dict': {f'backbone.{k}': v for k, v in source.state_dict().items()},
    }
    init_cfg = [
        dict(type='Constant', val=0.0, layer='Conv2d'),
        _pretrained(tmp_path, mmseg_ckpt, prefix='backbone.'),
    ]
    backbone = DRN_C(depth=26, init_cfg=init_cfg)
    backbone.init_weights()
    # Pretrained wins over the other initializers, as in mmengine
    assert torch.equal(backbone.layer8[0].conv2.weight, source.layer8[0].conv2.weight)
    assert backbone.init_cfg == init_cfg


@pytest.mark.filterwarnings('ignore::UserWarning:mmseg')
def test_init_cfg_inside_segmentor_and_classifier(tmp_path):
    source = randomize_(DRN('C', 26))
    init_cfg = _pretrained(tmp_path, fyu_state(source))
    segmentor = SEG_MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(type='DRN_C', depth=26, init_cfg=init_cfg),
            decode_head=dict(
                type='FCNHead',
                in_channels=512,
                in_index=-1,
                channels=8,
                num_convs=1,
                num_classes=3,
                norm_cfg=dict(type='BN'),
            ),
        )
    )
    segmentor.init_weights()
    assert torch.equal(segmentor.backbone.conv1.weight, source.conv1.weight)
    segmentor.eval()
    with torch.no_grad():
        assert segmentor(torch.rand(1, 3, 32, 32), mode='tensor').shape == (1, 3, 4, 4)
    classifier = PRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='DRN_C', depth=26, init_cfg=init_cfg),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels=512),
        )
    )
    classifier.init_weights()
    assert torch.equal(
        classifier.backbone.layer4[1].bn2.bias, source.layer4[1].bn2.bias
    )
    with torch.no_grad():
        assert classifier.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_init_cfg_errors_name_keys(tmp_path):
    state = fyu_state(DRN('C', 26))
    state['layer9.0.weight'] = torch.zeros(1)
    backbone = DRN_C(depth=26, init_cfg=_pretrained(tmp_path, state))
    with pytest.raises(CheckpointError, match=r'1 left over: layer9\.0\.weight'):
        backbone.init_weights()
    twice = DRN_C(
        depth=26,
        init_cfg=[
            dict(type='Pretrained', checkpoint='a'),
            dict(type='Pretrained', checkpoint='b'),
        ],
    )
    with pytest.raises(ValueError, match='one Pretrained entry, got 2'):
        twice.init_weights()


@pytest.mark.parametrize(
    'cfg, error, match',
    [
        (dict(norm_cfg=None), TypeError, "norm_cfg must be a dict with a 'type' key"),
        (
            dict(norm_cfg=dict(type='bn')),
            ValueError,
            "unknown norm type 'bn' in norm_cfg=.*; allowed: 'BN', 'SyncBN', 'GN'",
        ),
        (
            dict(norm_cfg=dict(type='GN', num_groups=32)),
            ValueError,
            'cannot build a norm layer of 16 channels',
        ),
        (dict(act_cfg=dict(kind='ReLU')), TypeError, 'act_cfg must be a dict'),
        (
            dict(act_cfg=dict(type='Foo')),
            ValueError,
            "unknown activation type 'Foo' in act_cfg=.*; allowed: 'ReLU'",
        ),
        (dict(out_indices=1.5), TypeError, r'out_indices must be an int in 1\.\.8'),
    ],
)
def test_bad_layer_configs_name_the_argument(cfg, error, match):
    with pytest.raises(error, match=match):
        SEG_MODELS.build(dict(type='DRN_C', depth=26, **cfg))


def test_wrong_input_shape_is_named():
    backbone = DRN_C(depth=26, in_channels=4)
    with pytest.raises(
        ValueError, match=r'in_chans \(in_channels\) = 4, got shape \[1, 3, 8, 8\]'
    ):
        backbone(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(type='DRN_C', depth=22), r'depth of DRN-C must be one of \[26, 42, 58\]'),
        (dict(type='DRN_B', depth=58), r'depth of DRN-B must be one of \[26, 42\]'),
        (
            dict(type='DRN_C', depth=26, out_indices=(8,)),
            r'out_indices must be an int in 1..8 \(the last n levels\) or a '
            r'non-empty list/tuple of increasing level indices in \[0, 1, 2, 3, 4, '
            r'5, 6, 7\] \(negative counts from the end\), got \(8,\)',
        ),
        (dict(type='DRN_A', depth=50, out_indices=(4,)), r'in \[0, 1, 2, 3\]'),
        (dict(type='DRN_D', depth=22, out_indices=(5, 2)), 'increasing'),
        (dict(type='DRN_D', depth=22, out_indices=()), 'got \\(\\)'),
        (dict(type='DRN_C', depth=26, output_stride=4), r'\[8, 16, 32\], got 4'),
        (
            dict(type='DRN_C', depth=26, in_channels=0),
            'in_channels must be an int >= 1, got 0',
        ),
        (
            dict(type='DRN_C', depth=26, frozen_stages=9),
            r'frozen_stages must be .* -1\.\.8',
        ),
    ],
)
def test_bad_arguments_name_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SEG_MODELS.build(kwargs)
