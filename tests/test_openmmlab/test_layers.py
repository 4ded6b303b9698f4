"""Tests of the one norm/act builder shared by the OpenMMLab components."""

from pathlib import Path

import pytest
import torch
from mmseg.registry import MODELS
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registration)
from mmdrn.openmmlab.layers import (
    ACT_TYPES,
    NORM_TYPES,
    act_layer_factory,
    norm_layer_factory,
)

COMPONENTS = {
    'DRN_C': dict(type='DRN_C', depth=26),
    'ASPPNeck': dict(type='ASPPNeck', in_channels=4, channels=2),
    'ContextNeck': dict(type='ContextNeck', in_channels=4),
}
ALLOWED_NORMS = "'BN', 'SyncBN', 'GN', 'IN', 'BN2d', 'IN2d', 'MMSyncBN'"


@pytest.mark.parametrize('component', COMPONENTS)
def test_every_component_names_an_unknown_norm_and_the_allowed_ones(component):
    cfg = dict(COMPONENTS[component], norm_cfg=dict(type='Foo'))
    with pytest.raises(ValueError) as info:
        MODELS.build(cfg)
    assert str(info.value) == (
        f"unknown norm type 'Foo' in norm_cfg={{'type': 'Foo'}}; allowed: "
        f'{ALLOWED_NORMS}'
    )


@pytest.mark.parametrize('component', COMPONENTS)
def test_every_component_names_an_unknown_activation(component):
    cfg = dict(COMPONENTS[component], act_cfg=dict(type='Swishy'))
    with pytest.raises(ValueError) as info:
        MODELS.build(cfg)
    message = str(info.value)
    assert message.startswith(
        "unknown activation type 'Swishy' in act_cfg={'type': 'Swishy'}; allowed: "
    )
    assert all(repr(t) in message for t in ACT_TYPES)


def test_norm_factory_builds_each_allowed_2d_norm():
    cfgs = {
        'BN': {},
        'SyncBN': {},
        'GN': dict(num_groups=2),
        'IN': {},
        'BN2d': {},
        'IN2d': {},
    }
    for norm_type, options in cfgs.items():
        norm = norm_layer_factory(dict(type=norm_type, **options))(4)
        assert isinstance(norm, nn.Module) and norm_type in NORM_TYPES
    gn = norm_layer_factory(dict(type='GN', num_groups=2))(8)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 2
    assert norm_layer_factory(None, optional=True) is None
    with pytest.raises(TypeError, match="norm_cfg must be a dict with a 'type' key"):
        norm_layer_factory(None)


def test_norm_options_mmcv_rejects_name_the_config_and_channels():
    factory = norm_layer_factory(dict(type='GN'))
    with pytest.raises(
        ValueError,
        match=r"norm_cfg=\{'type': 'GN'\} cannot build a norm layer of 8 channels",
    ):
        factory(8)


def test_activations_are_in_place_unless_the_config_says_otherwise():
    assert act_layer_factory(dict(type='ReLU'))().inplace is True
    assert act_layer_factory(dict(type='ReLU'))(inplace=False).inplace is False
    assert act_layer_factory(dict(type='ReLU', inplace=False))().inplace is False
    leaky = act_layer_factory(dict(type='LeakyReLU', negative_slope=0.2))()
    assert leaky.negative_slope == 0.2 and leaky.inplace is True
    assert isinstance(act_layer_factory(dict(type='GELU'))(), nn.GELU)
    assert isinstance(act_layer_factory(dict(type=nn.Tanh))(), nn.Tanh)
    x = torch.tensor([-1.0, 2.0])
    assert torch.equal(act_layer_factory(dict(type='ReLU'))()(x.clone()), x.relu())


def test_the_message_quoted_in_the_reliability_guide_is_the_one_printed():
    guide = Path(__file__).resolve().parents[2] / 'docs' / 'reliability.md'
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(type='DRN_C', depth=26, norm_cfg=dict(type='Foo')))
    assert f'ValueError: {info.value}\n' in guide.read_text()
