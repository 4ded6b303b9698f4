"""Tests of the pure-PyTorch DRN and its timm entry points."""

import copy
import functools
import math
import re
import warnings

import numpy as np
import pytest
import timm
import torch
import torchvision
from timm.models import get_notrace_functions, get_notrace_modules
from torch import nn
from torchvision.models.feature_extraction import (
    create_feature_extractor,
    get_graph_node_names,
)

from mmdrn.backbones.drn import DRN, BasicBlock, ConvLevel
from mmdrn.utils.validation import check_level_indices

ENTRY_POINTS = (
    'drn_a_18 drn_a_34 drn_a_50 drn_a_101 drn_b_26 drn_b_42 drn_c_26 drn_c_42 '
    'drn_c_58 drn_d_22 drn_d_24 drn_d_38 drn_d_40 drn_d_54 drn_d_56 drn_d_105 '
    'drn_d_107'
).split()

# Official counts with the 1000-class classifier (fyu/drn README), in
# parameters; DRN-A has the parameters of the torchvision ResNet of its depth
# and DRN-B those of the DRN-C of its depth (the same layers, plus shortcuts).
PARAMS_M = {
    'drn_a_50': 25.56,
    'drn_c_26': 21.13,
    'drn_c_42': 31.23,
    'drn_c_58': 41.59,
    'drn_d_22': 16.39,
    'drn_d_24': 21.11,
    'drn_d_38': 26.50,
    'drn_d_40': 31.22,
    'drn_d_54': 35.81,
    'drn_d_56': 40.53,
    'drn_d_105': 54.80,
    'drn_d_107': 59.52,
}
SAME_AS = {
    'drn_a_18': lambda: torchvision.models.resnet18(),
    'drn_a_34': lambda: torchvision.models.resnet34(),
    'drn_a_50': lambda: torchvision.models.resnet50(),
    'drn_a_101': lambda: torchvision.models.resnet101(),
    'drn_b_26': lambda: DRN('C', 26),
    'drn_b_42': lambda: DRN('C', 42),
}

# Output stride of every level, written out from the paper / fyu/drn (os=8)
# and the documented rule for 16 and 32.
REDUCTIONS = {
    ('A', 8): (4, 8, 8, 8),
    ('A', 16): (4, 8, 16, 16),
    ('A', 32): (4, 8, 16, 32),
    ('B', 8): (1, 2, 4, 8, 8, 8, 8, 8),
    ('B', 16): (1, 2, 4, 8, 16, 16, 16, 16),
    ('B', 32): (1, 2, 4, 8, 16, 32, 32, 32),
}
REDUCTIONS.update({(a, s): REDUCTIONS['B', s] for a in 'CD' for s in (8, 16, 32)})
CHANNELS = {
    ('A', 18): (64, 128, 256, 512),
    ('A', 50): (256, 512, 1024, 2048),
    ('B', 26): (16, 32, 64, 128, 256, 512, 512, 512),
    ('C', 26): (16, 32, 64, 128, 256, 512, 512, 512),
    ('C', 58): (16, 32, 256, 512, 1024, 2048, 512, 512),
    ('D', 22): (16, 32, 64, 128, 256, 512, 512, 512),
    ('D', 54): (16, 32, 256, 512, 1024, 2048, 512, 512),
}


def _on_meta(test):
    """Run a structure-only test on the meta device (no memory, no init)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        with torch.device('meta'):
            return test(*args, **kwargs)

    return wrapper


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', ENTRY_POINTS)
def test_entry_point_params_and_cfg(name):
    with torch.device('meta'):  # shapes only: no memory, no init cost
        model = timm.create_model(name)
        reference = SAME_AS[name]() if name in SAME_AS else None
    assert isinstance(model, DRN)
    count = _num_params(model)
    if name in PARAMS_M:
        assert round(count / 1e6, 2) == PARAMS_M[name]
    if reference is not None:
        assert count == _num_params(reference)
    cfg = model.pretrained_cfg
    state = model.state_dict()
    assert cfg['first_conv'] + '.weight' in state
    assert cfg['classifier'] == 'fc' and 'fc.weight' in state
    assert cfg['input_size'] == (3, 224, 224) and cfg['pool_size'] == (28, 28)
    assert cfg['crop_pct'] == 0.875 and cfg['interpolation'] == 'bilinear'
    assert cfg['mean'] == (0.485, 0.456, 0.406)
    assert cfg['std'] == (0.229, 0.224, 0.225)
    if name.startswith(('drn_c', 'drn_d_22', 'drn_d_38', 'drn_d_54', 'drn_d_105')):
        # default: osmr's GitHub release; fyu's official file as second tag
        assert cfg['tag'] == 'osmr_in1k'
        assert cfg['url'].startswith(
            'https://github.com/osmr/imgclsmob/releases/download/'
        )
        fyu = timm.models.get_pretrained_cfg(f'{name}.fyu_in1k')
        assert fyu.url.startswith('http://dl.yf.io/drn/') and name in fyu.url


def test_all_entry_points_registered():
    assert set(timm.list_models('drn_*')) == set(ENTRY_POINTS)
    assert (
        timm.create_model('drn_a_50')
        .pretrained_cfg['url']
        .endswith('resnet50-19c8e357.pth')
    )


def test_pool_size_matches_224_input():
    model = timm.create_model('drn_d_22').eval()
    with torch.no_grad():
        out = model.forward_features(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 512, *model.pretrained_cfg['pool_size'])


@pytest.mark.parametrize('output_stride', [8, 16, 32])
@pytest.mark.parametrize('arch, depth', [('A', 18), ('B', 26), ('C', 26), ('D', 22)])
def test_level_shapes_and_strides(arch, depth, output_stride):
    model = DRN(arch, depth, output_stride=output_stride).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        final, levels = model.forward_intermediates(x)
    expected = REDUCTIONS[arch, output_stride]
    assert [f.shape[1] for f in levels] == list(CHANNELS[arch, depth])
    assert [64 // f.shape[-1] for f in levels] == list(expected)
    assert [f.shape[-2] for f in levels] == [f.shape[-1] for f in levels]
    assert model.feature_info == [
        dict(num_chs=c, reduction=r, module=f'layer{i + 1}')
        for i, (c, r) in enumerate(zip(CHANNELS[arch, depth], expected))
    ]
    assert torch.equal(final, levels[-1])
    assert model.forward_features(x).shape == (
        2,
        model.num_features,
        64 // expected[-1],
        64 // expected[-1],
    )


@pytest.mark.parametrize('arch, depth', [('A', 50), ('C', 58), ('D', 54)])
def test_bottleneck_level_shapes(arch, depth):
    model = DRN(arch, depth).eval()
    with torch.no_grad():
        levels = model.forward_intermediates(
            torch.rand(1, 3, 32, 32), intermediates_only=True
        )
    assert [f.shape[1] for f in levels] == list(CHANNELS[arch, depth])
    assert [32 // f.shape[-1] for f in levels] == list(REDUCTIONS[arch, 8])


def _dil(conv: nn.Conv2d) -> tuple:
    assert conv.padding[0] == conv.dilation[0] * (conv.kernel_size[0] // 2)
    return conv.stride[0], conv.dilation[0]


@_on_meta
def test_dilations_follow_fyu_drn_at_output_stride_8():
    c = DRN('C', 42)
    for name, dilation in zip(
        ('layer3', 'layer4', 'layer5', 'layer6', 'layer7', 'layer8'), (1, 1, 2, 4, 2, 1)
    ):
        level = getattr(c, name)
        for i, block in enumerate(level):
            stride = 2 if name in ('layer3', 'layer4') and i == 0 else 1
            assert _dil(block.conv1) == (stride, dilation)
            assert _dil(block.conv2) == (1, dilation)
    assert [b.residual for b in c.layer7] + [b.residual for b in c.layer8] == [
        False,
        False,
    ]
    assert all(b.residual for b in DRN('B', 26).layer7)
    d = DRN('D', 40)
    convs7 = [m for m in d.layer7 if isinstance(m, nn.Conv2d)]
    assert [_dil(m) for m in convs7] == [(1, 2), (1, 2)]
    assert [_dil(m) for m in d.layer2 if isinstance(m, nn.Conv2d)] == [(2, 1)]
    # DRN-A follows fyu/drn's DRN_A: the first block of layer3/4 is not dilated
    a = DRN('A', 50)
    assert [_dil(b.conv2) for b in a.layer3] == [(1, 1)] + [(1, 2)] * 5
    assert [_dil(b.conv2) for b in a.layer4] == [(1, 1)] + [(1, 4)] * 2
    assert _dil(a.conv1) == (2, 1) and isinstance(a.maxpool, nn.MaxPool2d)


@_on_meta
def test_dilations_at_output_stride_16_and_32():
    c16 = DRN('C', 26, output_stride=16)
    assert _dil(c16.layer5[0].conv1) == (2, 2)
    assert _dil(c16.layer5[0].conv2) == (1, 1)
    assert _dil(c16.layer5[1].conv1) == (1, 1)
    assert c16.layer5[0].downsample[0].stride == (2, 2)
    assert {_dil(b.conv1)[1] for b in c16.layer6} == {2}
    assert {_dil(b.conv1)[1] for b in c16.layer7 + c16.layer8} == {1}
    c32 = DRN('C', 26, output_stride=32)
    assert _dil(c32.layer6[0].conv1) == (2, 2)
    assert _dil(c32.layer6[1].conv2) == (1, 1)
    d16 = DRN('D', 24, output_stride=16)
    assert [_dil(m) for m in d16.layer7 if isinstance(m, nn.Conv2d)] == [(1, 1)] * 2
    a16 = DRN('A', 50, output_stride=16)
    assert [_dil(b.conv2) for b in a16.layer3] == [(2, 1)] + [(1, 1)] * 5
    assert [_dil(b.conv2) for b in a16.layer4] == [(1, 1)] + [(1, 2)] * 2


def test_strided_conv_samples_the_output_stride_8_features():
    """At os=16 the re-enabled strided conv computes the os=8 result at every
    other position, with the same weights."""
    os8 = DRN('C', 26).eval()
    os16 = DRN('C', 26, output_stride=16).eval()
    os16.load_state_dict(os8.state_dict())
    outs = {}
    for key, model in (('8', os8), ('16', os16)):
        model.layer5[0].conv1.register_forward_hook(
            lambda m, i, o, key=key: outs.__setitem__(key, o)
        )
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert outs['16'].shape[-1] == outs['8'].shape[-1] // 2
    torch.testing.assert_close(outs['16'], outs['8'][..., ::2, ::2])


def _bn_stats_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics, so a mis-wired layer changes outputs."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model


@pytest.mark.parametrize(
    'output_stride, dilate',
    [(32, [False, False, False]), (16, [False, False, True]), (8, [False, True, True])],
)
def test_drn_a_50_equals_dilated_torchvision_resnet(output_stride, dilate):
    """DRN-A-50 is torchvision's ResNet-50 with its dilation option; at os=8
    fyu/drn's DRN_A also leaves layer4's first block undilated."""
    ref = torchvision.models.resnet50(replace_stride_with_dilation=dilate)
    if output_stride == 8:
        ref.layer4[0].conv2.dilation = ref.layer4[0].conv2.padding = (1, 1)
    ref = _bn_stats_(ref).eval()
    model = DRN('A', 50, output_stride=output_stride).eval()
    model.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)


def test_same_weights_for_every_output_stride():
    weights = DRN('D', 22).state_dict()
    for output_stride in (16, 32):
        model = DRN('D', 22, output_stride=output_stride)
        model.load_state_dict(weights)  # strict: same keys and shapes
        assert model.forward_features(torch.rand(1, 3, 64, 64)).shape[-1] == (
            64 // output_stride
        )


def test_drn_b_and_c_share_weights_but_not_residuals():
    b, c = DRN('B', 26).eval(), DRN('C', 26).eval()
    b.load_state_dict(c.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        fb = b.forward_intermediates(x, intermediates_only=True)
        fc = c.forward_intermediates(x, intermediates_only=True)
    for i in range(6):
        torch.testing.assert_close(fb[i], fc[i])
    assert not torch.allclose(fb[6], fc[6])


def test_backward_reaches_every_used_parameter():
    for name in ('drn_a_18', 'drn_c_26', 'drn_d_22', 'drn_c_58'):
        model = timm.create_model(name, num_classes=7).train()
        out = model(torch.rand(2, 3, 32, 32))
        assert out.shape == (2, 7) and not out.isnan().any()
        out.mean().backward()
        no_grad = {n for n, p in model.named_parameters() if p.grad is None}
        # only fyu/drn's unused projection of DRN-C-58's layer7 (kept for the
        # official checkpoint and parameter count) gets no gradient
        assert no_grad == {
            k
            for k in model.unused_keys()
            if 'running' not in k and 'num_batches' not in k
        }
        assert bool(no_grad) == (name == 'drn_c_58')


@_on_meta
def test_unused_keys_are_the_c58_layer7_projection():
    assert DRN('C', 58).unused_keys() == [
        'layer7.0.downsample.0.weight',
        'layer7.0.downsample.1.weight',
        'layer7.0.downsample.1.bias',
        'layer7.0.downsample.1.running_mean',
        'layer7.0.downsample.1.running_var',
        'layer7.0.downsample.1.num_batches_tracked',
    ]
    assert DRN('C', 26).unused_keys() == [] and DRN('D', 54).unused_keys() == []


@pytest.mark.parametrize('name', ['drn_a_18', 'drn_c_26', 'drn_d_22'])
def test_torchscript_and_fx_match_eager(name):
    model = timm.create_model(name).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit deprecation
        expected = model(x)
        scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(x), expected)
        kwargs = dict(
            leaf_modules=list(get_notrace_modules()),
            autowrap_functions=list(get_notrace_functions()),
        )
        _, eval_nodes = get_graph_node_names(model, tracer_kwargs=kwargs)
        fx_model = create_feature_extractor(
            model, return_nodes=[eval_nodes[-1]], tracer_kwargs=kwargs
        )
        assert torch.equal(next(iter(fx_model(x).values())), expected)


def test_features_only_is_honest():
    model = timm.create_model(
        'drn_c_26', features_only=True, output_stride=16, out_indices=(1, 4, 7)
    ).eval()
    assert model.feature_info.channels() == [32, 256, 512]
    assert model.feature_info.reduction() == [2, 16, 16]
    with torch.no_grad():
        feats = model(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (32, 32, 32),
        (256, 4, 4),
        (512, 4, 4),
    ]
    all_levels = timm.create_model('drn_a_50', features_only=True)
    assert all_levels.feature_info.reduction() == [4, 8, 8, 8]


def test_features_only_equals_forward_intermediates():
    torch.manual_seed(0)
    model = timm.create_model('drn_d_22').eval()
    features = timm.create_model('drn_d_22', features_only=True).eval()
    result = features.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == [
        'fc.weight',
        'fc.bias',
    ]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(
            features(x), model.forward_intermediates(x, intermediates_only=True)
        ):
            assert torch.equal(a, b)


def test_features_only_getter_uses_forward_intermediates():
    torch.manual_seed(0)
    model = timm.create_model('drn_c_26').eval()
    getter = timm.create_model(
        'drn_c_26', features_only=True, feature_cls='getter', out_indices=(2, 5)
    ).eval()
    result = getter.model.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == []  # pruned levels and head are the unexpected
    # levels after the last requested one are pruned away
    assert getter.model.level_names[-1] == 'layer6'
    assert isinstance(getter.model.layer7, nn.Identity)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_intermediates(
            x, indices=[2, 5], intermediates_only=True
        )
        for got, want in zip(getter(x), expected):
            assert torch.equal(got, want)


def test_forward_intermediates_indices():
    model = DRN('C', 26).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        every = model.forward_intermediates(x, intermediates_only=True)
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        picked = model.forward_intermediates(
            x, indices=[0, -1], intermediates_only=True
        )
        final, early = model.forward_intermediates(x, indices=[2], stop_early=True)
    assert len(every) == 8
    assert [torch.equal(a, b) for a, b in zip(last2, every[-2:])] == [True, True]
    assert torch.equal(picked[0], every[0]) and torch.equal(picked[1], every[7])
    assert torch.equal(final, every[2]) and torch.equal(early[0], every[2])
    for bad in ([8], [0, -9], 0, 9):
        with pytest.raises(ValueError, match='indices'):
            model.forward_intermediates(x, indices=bad)
    with pytest.raises(ValueError, match=r"output_fmt must be one of \['NCHW'\]"):
        model.forward_intermediates(x, output_fmt='NHWC')


def _keys_under(model: nn.Module, prefix: str) -> list:
    return [k for k in model.state_dict() if k.startswith(prefix + '.')]


def test_prune_intermediate_layers():
    model = DRN('C', 26).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_intermediates(x, intermediates_only=True)[:3]
        assert model.prune_intermediate_layers([0, 2]) == [0, 2]
        assert model.level_names == ('layer1', 'layer2', 'layer3')
        assert isinstance(model.layer4, nn.Identity) and isinstance(
            model.fc, nn.Identity
        )
        assert _keys_under(model, 'layer3') and not _keys_under(model, 'layer4')
        got = model.forward_intermediates(x, indices=[0, 2], intermediates_only=True)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[2])
    with pytest.raises(ValueError, match=r'indices must be .*in \[0, 1, 2\]'):
        model.forward_intermediates(x, indices=[3])


@pytest.mark.parametrize('arch, depth', [('A', 18), ('C', 26), ('D', 22)])
def test_forward_runs_after_pruning_to_each_depth(arch, depth):
    """As after timm's own prune_intermediate_layers (ResNet, ConvNeXt):
    forward and forward_features end at the last kept level (the head is
    pruned, so forward returns that map), forward_intermediates lists the
    kept levels; the same with gradient checkpointing."""
    torch.manual_seed(0)
    full = DRN(arch, depth).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        levels = full.forward_intermediates(x, intermediates_only=True)
    for last in range(len(levels)):
        model = copy.deepcopy(full)
        assert model.prune_intermediate_layers((last,)) == [last]
        assert len(model.feature_info) == last + 1
        with torch.no_grad():
            final, kept = model.forward_intermediates(x)
            assert torch.equal(model(x), levels[last])
            assert torch.equal(model.forward_features(x), levels[last])
        assert torch.equal(final, levels[last]) and len(kept) == last + 1
        model.set_grad_checkpointing(True)
        assert torch.equal(model.forward_features(x), levels[last])


@pytest.mark.parametrize('indices', [None, 1, 3, 5, [0, 2], [-1], (1, -2), [-5, -4, 4]])
def test_level_indices_are_read_as_timm_reads_them(indices):
    # timm's ResNet has 5 feature levels (the stem, layer1..4) of reduction
    # 2, 4, 8, 16, 32; it reads indices with timm's feature_take_indices
    resnet = timm.create_model('resnet18').eval()
    with torch.no_grad():
        feats = resnet.forward_intermediates(
            torch.rand(1, 3, 64, 64), indices=indices, intermediates_only=True
        )
    taken = [round(math.log2(64 / f.shape[-1])) - 1 for f in feats]
    assert list(check_level_indices('indices', indices, 5)) == taken


def test_head_api():
    model = DRN('C', 26, num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 4, 4)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
        logits = model(x)
        # the 1x1 conv classifier commutes with average pooling
        dense = model.fc(feats)
        torch.testing.assert_close(logits, dense.mean((2, 3)))
        assert model.get_classifier() is model.fc
        model.reset_classifier(5, '')
        assert model(x).shape == (2, 5, 4, 4)  # dense class maps (CAM)
        model.reset_classifier(0)
        assert model(x).shape == (2, 512, 4, 4)
        model.reset_classifier(0, 'avg')
        assert model(x).shape == (2, 512)
        model.reset_classifier(3, 'catavgmax')
        assert model.fc.in_channels == 1024 and model(x).shape == (2, 3)
    a = DRN('A', 18, num_classes=4)
    assert isinstance(a.fc, nn.Linear) and a(x).shape == (2, 4)
    with pytest.raises(ValueError, match="global_pool='' requires num_classes=0"):
        a.reset_classifier(4, '')
    assert DRN('A', 18, num_classes=0, global_pool='')(x).shape == (2, 512, 4, 4)


def test_global_pool_works_at_any_size():
    model = DRN('D', 22, num_classes=3).eval()
    with torch.no_grad():
        for size in (17, 40, 57):
            assert model(torch.rand(1, 3, size, size)).shape == (1, 3)


def test_drop_rate_only_in_training():
    model = DRN('C', 26, num_classes=3, drop_rate=0.5)
    x = torch.rand(1, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        feats = model.forward_features(x)
        kept = model.forward_head(feats, pre_logits=True)
        model.train()
        dropped = model.forward_head(feats, pre_logits=True)
    assert torch.all((dropped == 0) | torch.isclose(dropped, 2 * kept))
    assert (dropped[kept > 0] == 0).any() and (dropped != 0).any()


@pytest.mark.parametrize('in_chans', [1, 4])
def test_in_chans(in_chans):
    for arch, depth, first in (('C', 26, 'conv1'), ('D', 22, 'layer0.0')):
        model = DRN(arch, depth, in_chans=in_chans)
        assert model.get_submodule(first).weight.shape[1] == in_chans
        assert model(torch.rand(1, in_chans, 16, 16)).shape == (1, 1000)


def test_norm_and_act_layers():
    gn = DRN('C', 26, norm_layer=functools.partial(nn.GroupNorm, 8))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.modules())
    assert (
        isinstance(gn.layer3[0].bn1, nn.GroupNorm) and gn.layer3[0].bn1.num_groups == 8
    )
    sync = DRN('D', 22, norm_layer=nn.SyncBatchNorm)
    assert isinstance(sync.layer0[1], nn.SyncBatchNorm)
    assert sync.eval()(torch.rand(1, 3, 16, 16)).shape == (1, 1000)
    gelu = DRN('A', 18, act_layer='gelu', norm_layer='batchnorm2d')
    assert not any(isinstance(m, nn.ReLU) for m in gelu.modules())
    assert gelu(torch.rand(1, 3, 16, 16)).shape == (1, 1000)
    assert gn(torch.rand(2, 3, 16, 16)).shape == (2, 1000)


@pytest.mark.parametrize('arch, depth', [('D', 22), ('C', 26)])
def test_grad_checkpointing_gives_the_same_gradients_and_statistics(arch, depth):
    torch.manual_seed(0)
    ref = DRN(arch, depth, num_classes=4).train()
    ckpt = DRN(arch, depth, num_classes=4).train()
    ckpt.load_state_dict(ref.state_dict())
    ckpt.set_grad_checkpointing(True)
    x = torch.rand(2, 3, 16, 16)
    ref(x).pow(2).sum().backward()
    out = ckpt(x)
    # the forward pass ran levels under torch.utils.checkpoint
    assert out.grad_fn is not None
    out.pow(2).sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    # BatchNorm statistics move once per step, not again in the recomputation
    for (name, a), b in zip(ref.named_buffers(), ckpt.buffers()):
        torch.testing.assert_close(b, a, msg=name)
    assert ckpt.layer3[0].bn1.num_batches_tracked == 1


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(arch='E'), r"arch must be one of \['A', 'B', 'C', 'D'\], got 'E'"),
        (
            dict(arch='C', depth=22),
            r'depth of DRN-C must be one of \[26, 42, 58\], got 22',
        ),
        (
            dict(arch='A', depth=26),
            r'depth of DRN-A must be one of \[18, 34, 50, 101\]',
        ),
        (dict(output_stride=4), r'output_stride must be one of \[8, 16, 32\], got 4'),
        (dict(in_chans=0), 'in_chans must be an int >= 1, got 0'),
        (dict(num_classes=-1), 'num_classes must be an int >= 0, got -1'),
        (dict(global_pool='mean'), r"global_pool must be one of \['', 'avg'"),
    ],
)
def test_bad_arguments_name_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DRN(**kwargs)


@_on_meta
@pytest.mark.parametrize('shape', [(1, 4, 16, 16), (3, 16, 16), (1, 3, 16, 16, 2)])
def test_wrong_input_shape_is_named(shape):
    model = DRN('D', 22, in_chans=3)
    with pytest.raises(
        ValueError,
        match=r'C = in_chans \(in_channels\) = 3, got shape '
        + re.escape(str(list(shape))),
    ):
        model(torch.rand(shape))


def test_more_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r'drop_rate must be in \[0, 1\), got 1.0'):
        DRN(drop_rate=1.0)
    with pytest.raises(
        ValueError, match="norm_layer must be .* timm norm layer name .* got 'bn'"
    ):
        DRN(norm_layer='bn')
    with pytest.raises(ValueError, match="act_layer must be .* got ''"):
        DRN(act_layer='')
    allowed = (
        r'out_indices must be an int in 1..8 \(the last n levels\) or a non-empty '
        r'list/tuple of increasing level indices in \[0, 1, 2, 3, 4, 5, 6, 7\]'
    )
    for bad, error in (
        (0, ValueError),
        (9, ValueError),
        ((), ValueError),
        ((0, 8), ValueError),
        ((3, 1), ValueError),
        ((2, 2), ValueError),
        ([1.5], TypeError),
        (True, TypeError),
        ('3', TypeError),
    ):
        with pytest.raises(error, match=allowed):
            timm.create_model('drn_c_26', features_only=True, out_indices=bad)
    negative = timm.create_model('drn_a_18', features_only=True, out_indices=(-1,))
    assert negative.feature_info.module_name() == ['layer4']


@_on_meta
def test_out_indices_int_takes_the_last_levels_as_timm_does():
    # timm's own models read an int n as the last n levels
    resnet = timm.create_model('resnet18', features_only=True, out_indices=3)
    assert resnet.feature_info.module_name() == ['layer2', 'layer3', 'layer4']
    drn = timm.create_model('drn_c_26', features_only=True, out_indices=3)
    assert drn.feature_info.out_indices == (5, 6, 7)
    assert drn.feature_info.module_name() == ['layer6', 'layer7', 'layer8']
    assert DRN('C', 26).prune_intermediate_layers(3) == [5, 6, 7]


def test_uint8_input_says_how_to_convert():
    model = timm.create_model('drn_d_22', num_classes=0).eval()
    image = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(
        TypeError,
        match=r'a float tensor N x C x H x W .* got dtype torch.uint8; convert '
        r'uint8 images with x.float\(\) / 255 and normalise',
    ):
        model(image)
    assert model(image.float() / 255).shape == (1, 512)


@pytest.mark.parametrize(
    'images, kind',
    [(np.zeros((1, 3, 16, 16), np.float32), 'ndarray'), ([[0.0]], 'list')],
)
def test_non_tensor_input_names_the_expected_input(images, kind):
    model = timm.create_model('drn_d_22', num_classes=0).eval()
    with pytest.raises(
        TypeError,
        match=rf'DRN expects a float tensor N x C x H x W with C = in_chans '
        rf'\(in_channels\) = 3, got a {kind}; convert images with timm.data',
    ):
        model(images)


def test_missing_local_weights_file_is_named(tmp_path):
    missing = tmp_path / 'nowhere' / 'drn_c_26.pth'
    with pytest.raises(FileNotFoundError, match=re.escape(repr(str(missing)))):
        timm.create_model(
            'drn_c_26', pretrained=True, pretrained_cfg_overlay=dict(file=str(missing))
        )


def test_level_modules_are_in_execution_order():
    d = DRN('D', 22)
    assert [n for n, _ in d.named_children()][:9] == ['layer0'] + [
        f'layer{i}' for i in range(1, 9)
    ]
    assert isinstance(d.layer1, ConvLevel) and isinstance(d.layer3[0], BasicBlock)
    a = DRN('A', 18)
    assert [n for n, _ in a.named_children()][:8] == [
        'conv1',
        'bn1',
        'act1',
        'maxpool',
        'layer1',
        'layer2',
        'layer3',
        'layer4',
    ]
    assert a.layer5 is None and a.level_names == (
        'layer1',
        'layer2',
        'layer3',
        'layer4',
    )
