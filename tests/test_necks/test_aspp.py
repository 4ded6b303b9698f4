"""Tests of the plain-PyTorch ASPP neck (DeepLabv3)."""

import pytest
import torch
from torch import nn

from mmdrn.necks.aspp import ASPP, ASPPConv, ASPPPooling


def _positive_eval_neck(**kwargs) -> ASPP:
    """Eval mode (so batch-norm statistics couple no positions) with strictly
    positive conv weights: with a positive input no ReLU is ever off, so an
    input position has a non-zero gradient iff it reaches the output."""
    neck = ASPP(2, channels=3, **kwargs).eval()
    with torch.no_grad():
        for module in neck.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.uniform_(0.1, 1.0)
    return neck


def _input_gradient(neck: ASPP, height: int, width: int, at: tuple) -> torch.Tensor:
    """|d out[0, 0, at] / d input| summed over channels, shape (H, W)."""
    x = (torch.rand(1, 2, height, width) + 0.1).requires_grad_()
    (out,) = neck((x,))
    out[(0, 0) + at].backward()
    return x.grad.abs().sum(dim=(0, 1))


@pytest.mark.parametrize('size', [(1, 1), (3, 3), (7, 9), (13, 5), (25, 37)])
@pytest.mark.parametrize('train', [True, False])
def test_output_size_equals_input_size(size, train):
    neck = ASPP(6, channels=4).train(train)
    x = torch.rand(2, 6, *size)
    (out,) = neck((x,))
    assert out.shape == (2, 4, *size)


@pytest.mark.parametrize(
    'dilations, offsets',
    [
        ((1, 12, 24, 36), {0, 12, 24, 36}),
        ((1, 6, 12, 18), {0, 6, 12, 18}),
        ((2, 5), {0, 2, 5}),
    ],
)
def test_rates_in_use_measured_by_gradient(dilations, offsets):
    # One row, no image pooling: the columns reaching the centre output are
    # exactly the centre +- each rate (the 1x1 branch only the centre).
    neck = _positive_eval_neck(dilations=dilations, image_pooling=False)
    grad = _input_gradient(neck, 1, 101, (0, 50))[0]
    hit = {abs(int(c) - 50) for c in grad.nonzero().flatten()}
    assert hit == offsets
    assert len(grad.nonzero()) == 2 * len(offsets - {0}) + 1


def test_branch_kernels_and_dilations():
    neck = ASPP(8, channels=4)
    convs = [branch[0] for branch in neck.branches[:4]]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    assert [c.dilation[0] for c in convs[1:]] == [12, 24, 36]
    assert [c.padding[0] for c in convs[1:]] == [12, 24, 36]


def test_image_pooling_makes_far_positions_interact():
    # 81 x 81 map, output at the corner (0, 0): inputs more than the largest
    # rate (36) away in either direction only reach it through image pooling.
    size = 81
    without = _input_gradient(
        _positive_eval_neck(image_pooling=False), size, size, (0, 0)
    )
    with_pool = _input_gradient(_positive_eval_neck(), size, size, (0, 0))
    far = torch.zeros(size, size, dtype=torch.bool)
    far[37:, :] = True
    far[:, 37:] = True
    assert not without[far].any()
    # Each 3x3 branch of rate r sees (0, 0), (0, r), (r, 0), (r, r) from the
    # corner; its other taps fall in the zero padding.
    hit = {tuple(p) for p in without.nonzero().tolist()}
    expected = {(0, 0)} | {q for r in (12, 24, 36) for q in ((0, r), (r, 0), (r, r))}
    assert hit == expected
    assert (with_pool > 0).all()


def test_image_pooling_on_by_default_and_optional():
    default = ASPP(8, channels=4)
    assert len(default.branches) == 5
    assert isinstance(default.branches[-1], ASPPPooling)
    assert default.project[0].in_channels == 5 * 4
    off = ASPP(8, channels=4, image_pooling=False)
    assert len(off.branches) == 4
    assert not any(isinstance(b, ASPPPooling) for b in off.branches)
    assert off.project[0].in_channels == 4 * 4


def test_pooling_branch_is_constant_over_space_and_matches_the_mean():
    branch = ASPPPooling(3, 2, None, None)
    x = torch.rand(2, 3, 7, 5)
    out = branch(x)
    assert out.shape == (2, 2, 7, 5)
    expected = branch[1](x.mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(out, expected.expand_as(out))


def test_norm_and_activation_in_every_branch_and_projection():
    neck = ASPP(8, channels=4)
    units = list(neck.branches) + [neck.project]
    for unit in units:
        assert any(isinstance(m, nn.BatchNorm2d) for m in unit)
        assert any(isinstance(m, nn.ReLU) for m in unit)
        conv = next(m for m in unit if isinstance(m, nn.Conv2d))
        assert conv.bias is None


def test_without_norm_convs_have_bias():
    unit = ASPPConv(3, 4, 6, None, nn.ReLU)
    assert unit[0].bias is not None
    assert isinstance(unit[1], nn.Identity)


def test_dropout_optional():
    assert isinstance(ASPP(8, channels=4).dropout, nn.Identity)
    neck = ASPP(8, channels=4, dropout_ratio=0.3)
    assert isinstance(neck.dropout, nn.Dropout2d) and neck.dropout.p == 0.3


def test_returns_tuple_with_selected_level_replaced():
    neck = ASPP(4, channels=3, in_index=0).eval()
    feats = (torch.rand(1, 4, 9, 9), torch.rand(1, 5, 5, 5))
    out = neck(feats)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].shape == (1, 3, 9, 9)
    assert out[1] is feats[1]


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (dict(dilations=()), ValueError, r'dilations must be a non-empty sequence'),
        (dict(dilations=(0, 12)), ValueError, r'ints >= 1 .*got \(0, 12\)'),
        (dict(dilations=(1, 1.5)), ValueError, r'ints >= 1 .*got \(1, 1.5\)'),
        (dict(dilations=12), ValueError, r'ints >= 1 .*got 12'),
        (dict(channels=0), ValueError, r'channels must be an int >= 1, got 0'),
        (dict(in_channels=-3), ValueError, r'in_channels must be an int >= 1, got -3'),
        (
            dict(dropout_ratio=1.0),
            ValueError,
            r'dropout_ratio must be in \[0, 1\), got 1.0',
        ),
        (dict(in_index=None), TypeError, r'in_index must be an int'),
        (
            dict(dropout_ratio='0.1'),
            TypeError,
            r"dropout_ratio must be a float in \[0, 1\), got '0.1' of type str",
        ),
        (
            dict(dropout_ratio=float('nan')),
            ValueError,
            r'dropout_ratio must be in \[0, 1\), got nan',
        ),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    kwargs = {'in_channels': 4, **kwargs}
    with pytest.raises(error, match=match):
        ASPP(**kwargs)


def test_in_index_out_of_range_raises_at_forward():
    neck = ASPP(4, channels=3, in_index=-3)
    feats = (torch.rand(2, 4, 8, 8), torch.rand(2, 4, 4, 4))
    with pytest.raises(
        ValueError, match=r'in_index=-3 is out of range .*allowed: -2 to 1'
    ):
        neck(feats)


def _branch_in_eval(branch: ASPPPooling, x: torch.Tensor) -> torch.Tensor:
    branch.eval()
    try:
        return branch(x)
    finally:
        branch.train()


def test_image_pooling_trains_on_one_image_with_running_statistics():
    torch.manual_seed(0)
    neck = ASPP(4, channels=3, dilations=(1, 2)).train()
    pooling = neck.branches[-1]
    norm = pooling[2]
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    before = (norm.running_mean.clone(), norm.running_var.clone())
    x = torch.rand(1, 4, 5, 7)
    (out,) = neck((x,))
    assert out.shape == (1, 3, 5, 7)
    # the single image is normalised with the running statistics, which stay
    torch.testing.assert_close(pooling(x), _branch_in_eval(pooling, x))
    assert torch.equal(norm.running_mean, before[0])
    assert torch.equal(norm.running_var, before[1])
    assert int(norm.num_batches_tracked) == 0
    # the other branches' norms train on the image's pixels as usual
    assert int(neck.branches[0][1].num_batches_tracked) == 1
    out.sum().backward()
    assert norm.weight.grad is not None and pooling[1].weight.grad is not None


def test_image_pooling_uses_batch_statistics_from_two_images():
    torch.manual_seed(0)
    pooling = ASPP(4, channels=3, dilations=(1,)).train().branches[-1]
    x = torch.rand(2, 4, 5, 7)
    trained = pooling(x)
    assert int(pooling[2].num_batches_tracked) == 1
    # batch statistics over the two images: each channel has mean 0 over them
    pre_act = pooling[2](pooling[1](pooling[0](x)))
    beta = pooling[2].bias.detach().view(3, 1, 1)
    torch.testing.assert_close(pre_act.mean(dim=0), beta, atol=1e-5, rtol=0)
    assert not torch.allclose(trained, _branch_in_eval(pooling, x))


def test_image_pooling_without_running_statistics_names_the_way_out():
    def norm(channels):
        return nn.BatchNorm2d(channels, track_running_stats=False)

    neck = ASPP(4, channels=3, dilations=(1,), norm_layer=norm).train()
    with pytest.raises(ValueError, match=r'one image .*image_pooling=False'):
        neck((torch.rand(1, 4, 5, 5),))
    assert neck((torch.rand(2, 4, 5, 5),))[0].shape == (2, 3, 5, 5)


def test_image_pooling_with_group_norm_needs_no_fallback():
    def norm(channels):
        return nn.GroupNorm(1, channels)

    neck = ASPP(4, channels=4, dilations=(1,), norm_layer=norm).train()
    assert neck((torch.rand(1, 4, 5, 5),))[0].shape == (1, 4, 5, 5)
