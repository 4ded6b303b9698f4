"""Tests of batch-norm folding (mmdrn.inference.fold_bn)."""

import pytest
import timm
import torch
from mmseg.registry import MODELS
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registers the drn_* models and DRN_C)
from mmdrn.inference import find_conv_bn_pairs, fold_batchnorm


def _randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every norm."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return model.eval()


def _num_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize('bias', [False, True])
@pytest.mark.parametrize('affine', [True, False])
def test_single_pair_is_exact_in_fp32(bias, affine):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=2, dilation=2, bias=bias),
        nn.BatchNorm2d(8, affine=affine),
        nn.ReLU(),
    )
    _randomize_norms(model)
    x = torch.randn(2, 3, 12, 12)
    folded = fold_batchnorm(model)
    assert isinstance(folded[1], nn.Identity)
    assert folded[0].bias is not None
    with torch.no_grad():
        diff = (folded(x) - model(x)).abs().max().item()
    assert diff <= 1e-5


def test_grouped_conv_is_folded_per_output_channel():
    torch.manual_seed(0)
    model = _randomize_norms(
        nn.Sequential(nn.Conv2d(8, 8, 3, groups=4, bias=False), nn.BatchNorm2d(8))
    )
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        assert (fold_batchnorm(model)(x) - model(x)).abs().max() <= 1e-5


@pytest.mark.parametrize('name', ['drn_c_26', 'drn_d_22', 'drn_a_18'])
def test_whole_drn_is_folded_and_agrees(name):
    torch.manual_seed(0)
    model = _randomize_norms(timm.create_model(name, num_classes=0, global_pool=''))
    folded = fold_batchnorm(model)
    # every norm of the network follows a convolution
    assert len(folded.folded_bn_pairs) == _num_norms(model)
    assert _num_norms(folded) == 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected, actual = model(x), folded(x)
    # fp32 rounding only: relative to the size of the features
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= 1e-5 * scale


def test_unused_projection_of_drn_c_58_is_left_alone():
    model = _randomize_norms(timm.create_model('drn_c_58', num_classes=0))
    pairs = dict(find_conv_bn_pairs(model))
    # layer7.0.downsample exists (official checkpoints) but forward never runs it
    assert 'layer7.0.downsample.0' not in pairs
    assert 'layer7.0.conv1' in pairs
    assert len(pairs) == _num_norms(model) - 1


def test_original_is_kept_unless_inplace():
    model = _randomize_norms(
        nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    )
    weight = model[0].weight.detach().clone()
    fold_batchnorm(model)
    assert isinstance(model[1], nn.BatchNorm2d)
    assert torch.equal(model[0].weight, weight)
    same = fold_batchnorm(model, inplace=True)
    assert same is model
    assert isinstance(model[1], nn.Identity)
    assert not torch.equal(model[0].weight, weight)


class _PreAct(nn.Module):
    """bn -> conv: the norm reads the input, not a convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv1(torch.relu(self.bn1(x)))


class _TwoReaders(nn.Module):
    """The raw convolution output is also used after the norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv1(x)
        return self.bn1(y) + y


class _SharedConv(nn.Module):
    """One convolution called twice, only one call followed by the norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


class _NormWithExtra(nn.BatchNorm2d):
    """A norm subclass whose forward does more than normalise."""

    def forward(self, x):
        return torch.relu(super().forward(x))


@pytest.mark.parametrize(
    'model',
    [
        _PreAct(),
        _TwoReaders(),
        _SharedConv(),
        nn.Sequential(nn.Conv2d(4, 4, 1), _NormWithExtra(4)),
        nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)),
        nn.Sequential(nn.ConvTranspose2d(4, 4, 2), nn.BatchNorm2d(4)),
    ],
    ids=[
        'pre-activation',
        'two-readers',
        'shared-conv',
        'norm-subclass',
        'batch-stats',
        'transposed',
    ],
)
def test_unsafe_pairs_are_not_folded(model):
    model = _randomize_norms(model)
    assert find_conv_bn_pairs(model) == []
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(fold_batchnorm(model)(x), model(x))


class _Untraceable(nn.Module):
    """forward branches on a tensor value, so fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))

    def forward(self, x):
        x = self.a(x)
        if x.sum() > 0:
            x = self.b(x)
        return x


def test_untraceable_parent_is_searched_child_by_child():
    model = _randomize_norms(_Untraceable())
    assert find_conv_bn_pairs(model) == [('a.0', 'a.1'), ('b.0', 'b.1')]
    x = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        assert (fold_batchnorm(model)(x) - model(x)).abs().max() <= 1e-5


def test_mm_backbone_and_encoder_decoder_are_folded():
    from mmengine.model import revert_sync_batchnorm

    backbone = dict(
        type='DRN_C', depth=26, norm_cfg=dict(type='SyncBN', requires_grad=True)
    )
    seg = revert_sync_batchnorm(
        MODELS.build(
            dict(
                type='EncoderDecoder',
                backbone=backbone,
                decode_head=dict(
                    type='FCNHead',
                    in_channels=512,
                    channels=16,
                    num_convs=1,
                    concat_input=False,
                    num_classes=5,
                    norm_cfg=dict(type='BN'),
                ),
            )
        )
    )
    _randomize_norms(seg)
    # the segmentor's forward branches on `mode` (not traceable): the
    # backbone and the head are searched separately; the head's ConvModule
    # norm is folded too
    pairs = dict(find_conv_bn_pairs(seg))
    assert len(pairs) == _num_norms(seg)
    assert pairs['decode_head.convs.0.conv'] == 'decode_head.convs.0.bn'
    folded = fold_batchnorm(seg)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected, actual = seg(x), folded(x)
        scale = expected.abs().max().item()
        assert (actual - expected).abs().max().item() <= 1e-5 * scale
        for a, b in zip(seg.backbone(x), folded.backbone(x)):
            assert (a - b).abs().max().item() <= 1e-5 * a.abs().max().item()


def test_rejects_non_modules():
    with pytest.raises(TypeError, match='model must be an nn.Module, got dict'):
        fold_batchnorm({'conv': 1})
    with pytest.raises(TypeError, match='model must be an nn.Module, got str'):
        find_conv_bn_pairs('drn_c_26')
