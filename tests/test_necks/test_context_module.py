"""Tests of the plain-PyTorch context module (Yu & Koltun, ICLR 2016)."""

import pytest
import torch
from torch import nn

from mmdrn.necks.context_module import ContextModule

# Paper, Table 1 (8 layers) and the official Cityscapes module (10 layers).
RF_8 = (3, 5, 9, 17, 33, 65, 67, 67)
RF_10 = (3, 5, 9, 17, 33, 65, 129, 257, 259, 259)
LARGE_8 = (2, 2, 4, 8, 16, 32, 32, 1)
LARGE_10 = (2, 2, 4, 8, 16, 32, 32, 32, 32, 1)


def _make_positive_(module: nn.Module) -> nn.Module:
    """Strictly positive weights: with a positive input no ReLU is ever off,
    so an input position has a non-zero gradient iff it is in the receptive
    field (the identity init would hide everything but the centre)."""
    with torch.no_grad():
        for param in module.parameters():
            param.uniform_(0.1, 1.0)
    return module


def _support(fn, channels: int, height: int, width: int) -> tuple:
    """Rows and columns of the input that reach the centre output of ``fn``:
    returns (extent of rows, number of rows, extent of cols, number of cols)."""
    x = (torch.rand(1, channels, height, width) + 0.1).requires_grad_()
    out = fn(x)
    assert out.shape[-2:] == x.shape[-2:]
    out[0, 0, height // 2, width // 2].backward()
    hit = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = hit.any(dim=1).nonzero().flatten()
    cols = hit.any(dim=0).nonzero().flatten()
    return (
        int(rows.max() - rows.min() + 1),
        len(rows),
        int(cols.max() - cols.min() + 1),
        len(cols),
    )


@pytest.mark.parametrize(
    'num_layers, expected, size', [(8, RF_8, 81), (10, RF_10, 271)]
)
def test_receptive_field_measured_by_gradient(num_layers, expected, size):
    neck = _make_positive_(ContextModule(1, num_layers=num_layers))
    # Whole module on a square map: a full square, without holes (the
    # dilations give complete coverage).
    rows, n_rows, cols, n_cols = _support(lambda x: neck((x,))[0], 1, size, size)
    assert (rows, n_rows, cols, n_cols) == (expected[-1],) * 4
    assert neck.receptive_field == expected[-1]
    # Layer by layer, on one row (cheap; the 3x3 kernels are symmetric).
    measured = []
    for k in range(1, num_layers + 1):
        _, _, cols, n_cols = _support(neck.layers[:k], 1, 1, size)
        assert n_cols == cols
        measured.append(cols)
    assert tuple(measured) == expected


def test_whole_neck_receptive_field_large_variant():
    neck = _make_positive_(ContextModule(1, variant='large'))
    rows, n_rows, cols, n_cols = _support(lambda x: neck((x,))[0], 1, 75, 75)
    assert (rows, n_rows, cols, n_cols) == (67, 67, 67, 67)


@pytest.mark.parametrize(
    'num_layers, dilations',
    [(8, (1, 1, 2, 4, 8, 16, 1, 1)), (10, (1, 1, 2, 4, 8, 16, 32, 64, 1, 1))],
)
def test_dilations_kernels_and_truncation(num_layers, dilations):
    neck = ContextModule(4, num_layers=num_layers)
    convs = neck.convs()
    assert tuple(c.dilation[0] for c in convs) == dilations
    assert tuple(c.padding[0] for c in convs[:-1]) == dilations[:-1]
    assert tuple(c.kernel_size for c in convs) == ((3, 3),) * (num_layers - 1) + (
        (1, 1),
    )
    relus = [m for m in neck.layers.modules() if isinstance(m, nn.ReLU)]
    # A ReLU after every 3x3 layer, none after the closing 1x1.
    assert len(relus) == num_layers - 1
    assert isinstance(neck.layers[-1], nn.Conv2d)


@pytest.mark.parametrize('num_layers', [8, 10])
def test_basic_is_an_exact_identity_at_init(num_layers):
    neck = ContextModule(3, num_layers=num_layers)
    x = torch.rand(2, 3, 17, 23)
    (out,) = neck((x,))
    assert torch.equal(out, x)


def test_basic_truncates_negative_inputs_at_init():
    neck = ContextModule(3)
    x = torch.randn(1, 3, 9, 9)
    (out,) = neck((x,))
    assert (x < 0).any()
    assert torch.equal(out, x.clamp(min=0))


@pytest.mark.parametrize('num_layers, multipliers', [(8, LARGE_8), (10, LARGE_10)])
def test_large_widths(num_layers, multipliers):
    c = 3
    neck = ContextModule(c, variant='large', num_layers=num_layers)
    convs = neck.convs()
    assert tuple(conv.out_channels for conv in convs) == tuple(
        m * c for m in multipliers
    )
    assert tuple(conv.in_channels for conv in convs) == (c,) + tuple(
        m * c for m in multipliers[:-1]
    )
    assert neck.widths == tuple(m * c for m in multipliers)


def test_basic_widths():
    neck = ContextModule(5, num_layers=10)
    assert {(c.in_channels, c.out_channels) for c in neck.convs()} == {(5, 5)}


@pytest.mark.parametrize('num_layers', [8, 10])
def test_large_scaled_identity_weights(num_layers):
    # Written as a Kronecker block instead of the paper's floor rule:
    # centre tap = C / c_out * kron(I_C, ones(c_out / C, c_in / C)).
    c = 2
    neck = ContextModule(c, variant='large', num_layers=num_layers, init_noise=0.0)
    for conv in neck.convs():
        c_out, c_in, kh, kw = conv.weight.shape
        block = torch.ones(c_out // c, c_in // c)
        expected = torch.kron(torch.eye(c), block) * c / c_out
        assert torch.equal(conv.weight[:, :, kh // 2, kw // 2], expected)
        off_centre = conv.weight.clone()
        off_centre[:, :, kh // 2, kw // 2] = 0
        assert not off_centre.any()
        assert not conv.bias.any()


@pytest.mark.parametrize('num_layers', [8, 10])
def test_large_without_noise_is_an_identity(num_layers):
    neck = ContextModule(3, variant='large', num_layers=num_layers, init_noise=0.0)
    x = torch.rand(1, 3, 12, 12)
    (out,) = neck((x,))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_large_is_near_identity_within_its_noise():
    torch.manual_seed(0)
    c = 2
    neck = ContextModule(c, variant='large', init_noise=1e-3)
    x = torch.rand(1, c, 16, 16)
    (out,) = neck((x,))
    err = (out - x).abs().max().item()
    assert 0 < err < 0.02
    # Noise std per layer is init_noise * C / c_out: check it on the widest
    # layer's off-centre taps (64 x 64 x 8 samples).
    conv = neck.convs()[5]
    assert conv.out_channels == 32 * c
    off_centre = conv.weight.flatten(2)[:, :, [0, 1, 2, 3, 5, 6, 7, 8]]
    sigma = 1e-3 * c / conv.out_channels
    assert abs(off_centre.std().item() / sigma - 1) < 0.1
    assert abs(off_centre.mean().item()) < 0.1 * sigma


def test_reset_parameters_restores_identity():
    neck = ContextModule(2)
    with torch.no_grad():
        for p in neck.parameters():
            p.uniform_(-1, 1)
    neck.reset_parameters()
    x = torch.rand(1, 2, 8, 8)
    assert torch.equal(neck((x,))[0], x)


def test_class_score_arrangement():
    neck = ContextModule(16, variant='large', num_classes=5)
    assert isinstance(neck.project, nn.Conv2d)
    assert (neck.project.in_channels, neck.project.out_channels) == (16, 5)
    assert neck.widths == tuple(m * 5 for m in LARGE_8)
    x = torch.rand(2, 16, 10, 10)
    (out,) = neck((x,))
    assert out.shape == (2, 5, 10, 10)


def test_class_score_arrangement_basic_passes_scores_through():
    neck = ContextModule(16, num_classes=5)
    x = torch.randn(1, 16, 10, 10)
    with torch.no_grad():
        scores = neck.project(x)
        (out,) = neck((x,))
    assert torch.equal(out, scores.clamp(min=0))


def test_returns_tuple_with_selected_level_replaced():
    neck = ContextModule(4, in_index=1)
    feats = [torch.rand(1, 2, 16, 16), torch.randn(1, 4, 8, 8), torch.rand(1, 6, 4, 4)]
    out = neck(feats)
    assert isinstance(out, tuple) and len(out) == 3
    assert out[0] is feats[0] and out[2] is feats[2]
    assert torch.equal(out[1], feats[1].clamp(min=0))


def test_default_in_index_is_last():
    neck = ContextModule(6)
    feats = (torch.rand(1, 4, 8, 8), torch.rand(1, 6, 4, 4))
    out = neck(feats)
    assert out[0] is feats[0] and out[1].shape == (1, 6, 4, 4)


def test_norm_layer_in_eval_keeps_near_identity():
    neck = ContextModule(3, norm_layer=nn.BatchNorm2d).eval()
    bns = [m for m in neck.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 7
    assert all(conv.bias is None for conv in neck.convs()[:-1])
    x = torch.rand(1, 3, 8, 8)
    # A fresh BatchNorm in eval divides by sqrt(1 + eps) per layer.
    expected = x / (1 + bns[0].eps) ** (7 / 2)
    torch.testing.assert_close(neck((x,))[0], expected)


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (
            dict(variant='huge'),
            ValueError,
            r"variant must be one of \('basic', 'large'\), got 'huge'",
        ),
        (dict(num_layers=9), ValueError, r'num_layers must be one of \(8, 10\), got 9'),
        (dict(in_channels=0), ValueError, r'in_channels must be an int >= 1, got 0'),
        (dict(in_channels=2.0), TypeError, r'in_channels must be an int >= 1, got 2.0'),
        (dict(num_classes=0), ValueError, r'num_classes must be an int >= 1, got 0'),
        (dict(in_index='last'), TypeError, r"in_index must be an int .*got 'last'"),
        (
            dict(init_noise=-1.0),
            ValueError,
            r'init_noise must be a finite float in \[0, inf\), got -1.0',
        ),
        (
            dict(init_noise=float('inf')),
            ValueError,
            r'init_noise must be a finite float in \[0, inf\), got inf',
        ),
        (
            dict(init_noise='0.1'),
            TypeError,
            r"init_noise must be a float in \[0, inf\), got '0.1' of type str",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    kwargs = {'in_channels': 4, **kwargs}
    with pytest.raises(error, match=match):
        ContextModule(**kwargs)


def test_in_index_out_of_range_raises_at_forward():
    neck = ContextModule(4, in_index=2)
    feats = (torch.rand(1, 4, 8, 8), torch.rand(1, 4, 4, 4))
    with pytest.raises(
        ValueError, match=r'in_index=2 is out of range .*allowed: -2 to 1'
    ):
        neck(feats)


def test_wrong_input_channels_or_type_raise():
    neck = ContextModule(4)
    with pytest.raises(ValueError, match=r'in_channels=4.*got \(1, 3, 8, 8\)'):
        neck((torch.rand(1, 3, 8, 8),))
    with pytest.raises(TypeError, match=r'tuple or list of tensors'):
        neck(torch.rand(1, 4, 8, 8))
    with pytest.raises(TypeError, match=r'list of tensors; inputs\[1\] is a list'):
        neck((torch.rand(1, 4, 8, 8), [[0.0]]))
