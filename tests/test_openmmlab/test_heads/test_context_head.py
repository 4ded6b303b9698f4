"""ContextHead: the front-end classifier followed by the context module."""

import pytest
import torch

from mmdrn.openmmlab.heads import ContextHead


@pytest.mark.parametrize('variant, num_layers', [('basic', 8), ('large', 10)])
def test_fresh_head_is_the_classifier_then_relu(variant, num_layers):
    torch.manual_seed(0)
    head = ContextHead(
        in_channels=16,
        num_classes=5,
        variant=variant,
        num_layers=num_layers,
        init_noise=0.0,
        dropout_ratio=0.0,
    ).eval()
    torch.nn.init.normal_(head.conv_seg.bias, std=0.5)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        out = head((torch.randn(2, 8, 18, 18), x))
        scores = head.conv_seg(x)
    assert out.shape == (2, 5, 9, 9)
    assert (scores < 0).any()
    torch.testing.assert_close(out, scores.relu(), rtol=1e-5, atol=1e-6)


def test_module_trains_on_class_scores():
    head = ContextHead(in_channels=16, num_classes=5, num_layers=8)
    assert head.context.base_channels == 5
    assert head.context.receptive_field == 67
    out = head((torch.randn(1, 16, 6, 6),))
    out.sum().backward()
    assert head.context.convs()[0].weight.grad is not None
    assert head.conv_seg.weight.grad is not None


def test_channels_other_than_in_channels_are_refused():
    with pytest.raises(ValueError, match=r'channels must equal in_channels \(16\)'):
        ContextHead(in_channels=16, channels=32, num_classes=5)
    assert ContextHead(in_channels=16, channels=16, num_classes=5).channels == 16


def test_bad_module_arguments_name_the_argument():
    with pytest.raises(ValueError, match='variant'):
        ContextHead(in_channels=16, num_classes=5, variant='huge')
    with pytest.raises(ValueError, match='num_layers'):
        ContextHead(in_channels=16, num_classes=5, num_layers=9)
