"""Checkpoints and reference networks shared by the backbone and converter tests.

The fyu/drn layouts are written from our own state dicts, renamed as fyu/drn
names them; pytorchcv networks (random weights) are the independent
reference for DRN-C/D outputs, and :class:`FyuDRNSeg` rebuilds fyu/drn's
``DRNSeg`` in its own layout.
"""

import functools
import math

import torch
from pytorchcv.model_provider import get_model as pytorchcv_model
from torch import nn

from mmdrn.backbones.drn import DRN

X = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))

# Children of fyu/drn's classification networks (registration order), i.e.
# what DRNSeg's ``base = nn.Sequential(*list(model.children())[:-2])`` indexes.
FYU_CHILDREN = {
    'A': ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'],
    'C': ['conv1', 'bn1', 'relu'] + [f'layer{i}' for i in range(1, 9)],
    'D': ['layer0'] + [f'layer{i}' for i in range(1, 9)],
}


def meta_drn(arch: str, depth: int, **kwargs) -> DRN:
    """A DRN without storage, for checks that fail before any tensor is copied."""
    with torch.device('meta'):
        return DRN(arch, depth, **kwargs)


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics, so any mis-mapped tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)
    return model.eval()


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(
        actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item()
    )


@functools.cache
def pytorchcv_reference(name: str):
    """pytorchcv network (random weights) -> its features and logits on X.

    Its fixed 28x28 final pool only fits 224 inputs, so the map is taken before
    it and pooled globally (the same as that pool at 224)."""
    torch.manual_seed(1)
    ref = randomize_(pytorchcv_model(name, pretrained=False))
    with torch.no_grad():
        feats = ref.features[:-1](X)
        logits = ref.output(feats.mean((2, 3), keepdim=True)).flatten(1)
    # callers only read the state dict (conversion builds new dicts)
    return ref.state_dict(), feats, logits


def fyu_state(model: DRN, drop_num_batches: bool = True) -> dict:
    # the 2017 checkpoints predate BatchNorm's num_batches_tracked
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if not (drop_num_batches and k.endswith('num_batches_tracked'))
    }


def drnseg_state(model: DRN, num_classes: int) -> dict:
    """fyu/drn DRNSeg keys: base.N (child index), seg (1x1 conv), up."""
    children = FYU_CHILDREN['C' if model.arch == 'B' else model.arch]
    state = {}
    for key, value in fyu_state(model).items():
        head, rest = key.split('.', 1)
        if head != 'fc':
            state[f'base.{children.index(head)}.{rest}'] = value
    gen = torch.Generator().manual_seed(3)
    state['seg.weight'] = torch.randn(
        num_classes, model.num_features, 1, 1, generator=gen
    )
    state['seg.bias'] = torch.randn(num_classes, generator=gen)
    state['up.weight'] = torch.rand(num_classes, 1, 16, 16)
    return state


def fyu_up_kernel() -> torch.Tensor:
    """DRNSeg's ``up`` kernel (16 x 16), from fyu/drn's ``fill_up_weights`` loops."""
    f = math.ceil(16 / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    kernel = torch.empty(16, 16)
    for i in range(16):
        for j in range(16):
            kernel[i, j] = (1 - abs(i / f - c)) * (1 - abs(j / f - c))
    return kernel


class FyuDRNSeg(nn.Module):
    """fyu/drn segment.py's ``DRNSeg`` around an mmdrn DRN.

    ``base`` is ``nn.Sequential`` of the classification network's children
    without pooling and classifier (fyu/drn's indices: ``base.N``), ``seg`` a
    1x1 convolution and ``up`` the fixed bilinear transposed convolution
    (kernel 16, stride 8, padding 4, one group per class). Returns the logits
    at full resolution (fyu/drn's log-softmax of them has the same argmax).
    """

    def __init__(self, drn: nn.Module, classes: int) -> None:
        super().__init__()
        self.base = nn.Sequential(*drn.stem(), *drn.levels())
        self.seg = nn.Conv2d(drn.num_features, classes, 1)
        self.up = nn.ConvTranspose2d(
            classes, classes, 16, stride=8, padding=4, groups=classes, bias=False
        )
        with torch.no_grad():
            self.up.weight.copy_(fyu_up_kernel().expand(classes, 1, 16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))
