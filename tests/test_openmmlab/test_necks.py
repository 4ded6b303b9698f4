"""Tests of the registered necks: built from MMSeg config dicts, alone and in
an ``EncoderDecoder`` on CPU."""

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registers the necks)
from mmdrn.necks import ASPP, ContextModule

# A tiny dilated ResNet-18 (output stride 8) so the models run in a blink.
TINY_BACKBONE = dict(
    type='ResNetV1c',
    depth=18,
    stem_channels=8,
    base_channels=4,
    num_stages=4,
    out_indices=(0, 1, 2, 3),
    strides=(1, 2, 1, 1),
    dilations=(1, 1, 2, 4),
    norm_cfg=dict(type='BN', requires_grad=True),
)
TINY_OUT_CHANNELS = 32  # base_channels * 8 (BasicBlock)


def _encoder_decoder(neck: dict, head_channels: int, num_classes: int = 3) -> nn.Module:
    # The data preprocessor is looked up in the default scope, as in a run.
    with DefaultScope.overwrite_default_scope('mmseg'):
        return _build_encoder_decoder(neck, head_channels, num_classes)


def _build_encoder_decoder(
    neck: dict, head_channels: int, num_classes: int
) -> nn.Module:
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            train_cfg=dict(),
            test_cfg=ConfigDict(mode='whole'),  # as a config file gives it
            data_preprocessor=dict(type='SegDataPreProcessor', size=(32, 32)),
            backbone=TINY_BACKBONE,
            neck=neck,
            decode_head=dict(
                type='FCNHead',
                in_channels=head_channels,
                channels=head_channels,
                num_convs=0,
                concat_input=False,
                in_index=-1,
                num_classes=num_classes,
                dropout_ratio=0.0,
                norm_cfg=dict(type='BN', requires_grad=True),
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
            ),
        )
    )


def _train_step_losses(model: nn.Module, num_classes: int = 3) -> dict:
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 32, 32)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        label = torch.randint(0, num_classes, (1, 32, 32))
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(
            dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32))
        )
        samples.append(sample)
    model.train()
    return model(inputs, samples, mode='loss')


def test_both_necks_are_registered_in_mmseg_and_mmpretrain():
    for name in ('ContextNeck', 'ASPPNeck'):
        assert MODELS.get(name) is PRETRAIN_MODELS.get(name)
    assert issubclass(MODELS.get('ContextNeck'), ContextModule)
    assert issubclass(MODELS.get('ASPPNeck'), ASPP)


def test_context_module_from_config_is_identity_after_init_weights():
    neck = MODELS.build(dict(type='ContextNeck', in_channels=4, num_layers=10))
    neck.init_weights()
    x = torch.rand(1, 4, 9, 9)
    assert torch.equal(neck((x,))[0], x)
    assert neck.receptive_field == 259


def test_context_module_config_args_reach_the_layers():
    neck = MODELS.build(
        dict(
            type='ContextNeck',
            in_channels=4,
            variant='large',
            norm_cfg=dict(type='GN', num_groups=2),
            act_cfg=dict(type='LeakyReLU', negative_slope=0.1),
        )
    )
    assert sum(isinstance(m, nn.GroupNorm) for m in neck.modules()) == 7
    assert sum(isinstance(m, nn.LeakyReLU) for m in neck.modules()) == 7
    assert [c.out_channels for c in neck.convs()] == [8, 8, 16, 32, 64, 128, 128, 4]
    linear = MODELS.build(dict(type='ContextNeck', in_channels=4, act_cfg=None))
    assert not any(isinstance(m, nn.ReLU) for m in linear.modules())


def test_context_module_init_cfg_replaces_identity():
    neck = MODELS.build(
        dict(
            type='ContextNeck',
            in_channels=4,
            init_cfg=dict(type='Normal', layer='Conv2d', std=0.5),
        )
    )
    neck.init_weights()
    assert neck.convs()[0].weight.std() > 0.2


def test_context_module_bad_config_raises_value_error():
    with pytest.raises(
        ValueError, match=r"variant must be one of \('basic', 'large'\)"
    ):
        MODELS.build(dict(type='ContextNeck', in_channels=4, variant='small'))
    with pytest.raises(ValueError, match=r'num_layers must be one of \(8, 10\)'):
        MODELS.build(dict(type='ContextNeck', in_channels=4, num_layers=7))


@pytest.mark.parametrize('neck', ['ContextNeck', 'ASPPNeck'])
@pytest.mark.parametrize(
    'cfg, error, match',
    [
        (
            dict(norm_cfg=dict(type='Foo')),
            ValueError,
            r"^unknown norm type 'Foo' in norm_cfg=\{'type': 'Foo'\}; allowed: "
            r"'BN', 'SyncBN', 'GN', 'IN', 'BN2d', 'IN2d', 'MMSyncBN'$",
        ),
        (
            dict(norm_cfg='BN'),
            TypeError,
            r"norm_cfg must be a dict with a 'type' key .*got 'BN'",
        ),
        (
            dict(norm_cfg=dict(type='GN')),
            ValueError,
            r"norm_cfg=\{'type': 'GN'\} cannot build a norm layer of .*"
            r'GN needs num_groups',
        ),
        (
            dict(act_cfg=dict(type='Foo')),
            ValueError,
            r"^unknown activation type 'Foo' in act_cfg=\{'type': 'Foo'\}; allowed: "
            r"'ReLU', 'LeakyReLU',",
        ),
        (
            dict(act_cfg=dict(type='ReLU', slope=2)),
            ValueError,
            r"act_cfg=\{'type': 'ReLU', 'slope': 2\} cannot build an activation.*slope",
        ),
        (dict(act_cfg=['ReLU']), TypeError, r"act_cfg must be a dict with a 'type'"),
    ],
)
def test_bad_norm_and_act_configs_name_the_argument(neck, cfg, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type=neck, in_channels=4, **cfg))


def test_aspp_from_config_odd_size_and_norm():
    neck = MODELS.build(dict(type='ASPPNeck', in_channels=6, channels=4))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in neck.modules()) == 6
    (out,) = neck((torch.rand(2, 6, 11, 7),))
    assert out.shape == (2, 4, 11, 7)
    gn = MODELS.build(
        dict(
            type='ASPPNeck',
            in_channels=6,
            channels=4,
            dilations=(1, 6),
            image_pooling=False,
            norm_cfg=dict(type='GN', num_groups=2),
        )
    )
    assert sum(isinstance(m, nn.GroupNorm) for m in gn.modules()) == 3
    assert [b[0].dilation[0] for b in gn.branches] == [1, 6]


def test_aspp_bad_dilations_from_config_raise_value_error():
    with pytest.raises(ValueError, match=r'dilations must be a non-empty sequence'):
        MODELS.build(dict(type='ASPPNeck', in_channels=4, dilations=[]))


def test_encoder_decoder_with_context_module_on_class_scores():
    num_classes = 3
    model = _encoder_decoder(
        dict(
            type='ContextNeck',
            in_channels=TINY_OUT_CHANNELS,
            num_classes=num_classes,
            variant='large',
            num_layers=10,
        ),
        head_channels=num_classes,
        num_classes=num_classes,
    )
    model.init_weights()
    model.eval()
    with torch.no_grad():
        # The runner's init_weights() keeps the module's (noisy) identity.
        scores = torch.rand(1, num_classes, 6, 6)
        torch.testing.assert_close(model.neck.layers(scores), scores, rtol=0, atol=0.05)
        logits = model(torch.rand(1, 3, 32, 32), mode='tensor')
    assert logits.shape == (1, num_classes, 4, 4)
    losses = _train_step_losses(model, num_classes)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.neck.project.weight.grad.abs().sum() > 0


def test_encoder_decoder_with_aspp_neck():
    model = _encoder_decoder(
        dict(type='ASPPNeck', in_channels=TINY_OUT_CHANNELS, channels=8),
        head_channels=8,
    )
    model.init_weights()
    model.eval()
    with torch.no_grad():
        preds = model.predict(torch.rand(1, 3, 32, 32))
    assert preds[0].seg_logits.data.shape == (3, 32, 32)
    losses = _train_step_losses(model)
    assert torch.isfinite(losses['decode.loss_ce'])


def test_encoder_decoder_with_aspp_image_pooling_trains_on_one_image():
    """A quick look with one image per process: BN in every branch trains."""
    model = _encoder_decoder(
        dict(type='ASPPNeck', in_channels=TINY_OUT_CHANNELS, channels=8),
        head_channels=8,
    )
    model.init_weights()
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 32)))
    sample.set_metainfo(
        dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32))
    )
    model.train()
    losses = model(torch.rand(1, 3, 32, 32), [sample], mode='loss')
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    pooling = model.neck.branches[-1]
    assert pooling[1].weight.grad.abs().sum() > 0
    assert int(pooling[2].num_batches_tracked) == 0  # running statistics kept
