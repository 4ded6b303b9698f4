"""The -test-d8 DeepLabv3 twins sample the stride-16 function densely.

A DRN-D trained at output stride 16 and evaluated at 8 must compute the same
function on a grid twice as fine: with ``train_output_stride=16`` every 3x3
convolution keeps the sampling step (dilation x input stride, in input
pixels) it had in training, and each level's stride-8 output taken at every
other position equals its stride-16 output. The paper's stride-8 plan does
not: its level 8 runs at dilation 1 as at stride 16, half the trained step.
"""

from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from _config_utils import CONFIG_DIR, config_id, load, use_scope
from torch import nn

import mmdrn  # noqa: F401  (registers the DRN components)

TWINS = sorted((CONFIG_DIR / 'deeplabv3').glob('*_cityscapes-*.py'))
TWINS = [p for p in TWINS if '-test-d8_' in p.name]
SIZE = 64


def _backbone(cfg, **changes) -> nn.Module:
    from mmseg.registry import MODELS

    use_scope(cfg)
    backbone = dict(cfg.model.backbone)
    backbone.update(init_cfg=None, norm_cfg=dict(type='BN'), **changes)
    return MODELS.build(backbone).eval()


def _pair(test_path: Path):
    train_cfg = load(test_path.with_name(test_path.name.replace('-test-d8', '')))
    test_cfg = load(test_path)
    trained = _backbone(train_cfg)
    torch.manual_seed(0)
    for module in trained.modules():  # trained-looking BN statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    dense = _backbone(test_cfg)
    dense.load_state_dict(trained.state_dict())
    return trained, dense, test_cfg


def _steps(model: nn.Module) -> Dict[str, Tuple[int, int]]:
    """Per 3x3 conv: (dilation, input stride in pixels) from a forward pass."""
    seen = {}

    def record(name: str):
        def hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
            seen[name] = (module.dilation[0], SIZE // inputs[0].shape[-1])

        return hook

    hooks = [
        m.register_forward_hook(record(name))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    with torch.no_grad():
        model(torch.rand(1, 3, SIZE, SIZE))
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize('path', TWINS, ids=config_id)
def test_every_3x3_conv_keeps_its_trained_sampling_step(path: Path):
    trained, dense, _ = _pair(path)
    steps16, steps8 = _steps(trained), _steps(dense)
    assert steps16.keys() == steps8.keys()
    for name, (d16, s16) in steps16.items():
        d8, s8 = steps8[name]
        assert d8 * s8 == d16 * s16, name
    # the dilation table of levels 5-8 (3x3 convs of each level)
    table = {}
    for name, (d8, _) in steps8.items():
        table.setdefault(name.split('.')[0], set()).add(d8)
    assert {k: table[k] for k in ('layer5', 'layer6', 'layer7', 'layer8')} == {
        'layer5': {2},
        'layer6': {4},
        'layer7': {2},
        'layer8': {2},
    }
    # in training, levels 7 and 8 ran at dilation 1 on the stride-16 grid
    assert {d for n, (d, _) in steps16.items() if n.startswith('layer8')} == {1}


@pytest.mark.parametrize('path', TWINS[:1], ids=config_id)
def test_stride8_output_subsampled_is_the_stride16_output(path: Path):
    trained, dense, test_cfg = _pair(path)
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        out16, out8 = trained(x), dense(x)
    for level, (a, b) in enumerate(zip(out16, out8)):
        step = b.shape[-1] // a.shape[-1]
        assert b.shape[-2:] == (a.shape[-2] * step, a.shape[-1] * step), level
        # float32 rounding only (random deep nets reach 1e5 and more)
        assert _relative_error(b[..., ::step, ::step], a) < 1e-5, f'level {level + 1}'
    # The paper's stride-8 plan (level 8 at dilation 1) computes another
    # function from the same weights.
    paper = _backbone(test_cfg, train_output_stride=None)
    paper.load_state_dict(trained.state_dict())
    with torch.no_grad():
        last = paper(x)[-1]
    assert _relative_error(last[..., ::2, ::2], out16[-1]) > 1e-2


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest value."""
    return float((value - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize(
    'arch, depth', [('A', 18), ('A', 50), ('C', 26), ('D', 22)], ids=str
)
@pytest.mark.parametrize('trained, tested', [(16, 8), (32, 8), (32, 16)])
def test_train_output_stride_rule_for_every_arch(arch, depth, trained, tested):
    # The rule behind the twins, on the plain DRN: weights of an
    # output-stride-`trained` model evaluated at `tested` give, at every
    # level, the trained outputs on a finer grid.
    from mmdrn.backbones.drn import DRN

    torch.manual_seed(0)
    coarse = DRN(arch, depth, num_classes=0, output_stride=trained).eval()
    for module in coarse.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    fine = DRN(
        arch, depth, num_classes=0, output_stride=tested, train_output_stride=trained
    ).eval()
    fine.load_state_dict(coarse.state_dict())
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        a = coarse.forward_intermediates(x, intermediates_only=True)
        b = fine.forward_intermediates(x, intermediates_only=True)
    for level, (u, v) in enumerate(zip(a, b)):
        step = v.shape[-1] // u.shape[-1]
        assert _relative_error(v[..., ::step, ::step], u) < 1e-5, f'level {level + 1}'


def test_train_output_stride_must_not_be_below_the_output_stride():
    from mmdrn.backbones.drn import level_plan

    with pytest.raises(ValueError, match=r'train_output_stride .* \[32\], got 8'):
        level_plan('D', 16, train_output_stride=8)
    with pytest.raises(ValueError, match='train_output_stride'):
        level_plan('C', 8, train_output_stride=12)
    # None and the output stride itself are the paper's plan
    assert level_plan('C', 8, 8) == level_plan('C', 8) == level_plan('C', 8, None)
