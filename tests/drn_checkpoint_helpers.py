"""Checkpoints and reference networks shared by the backbone tests.

The fyu/drn layouts are written from our own state dicts, renamed as fyu/drn
names them; pytorchcv networks (random weights) are the independent
reference for DRN-C/D outputs.
"""

import functools

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
