"""Dilated Residual Networks (DRN-A, DRN-B, DRN-C, DRN-D).

Paper: Fisher Yu, Vladlen Koltun, Thomas Funkhouser, "Dilated Residual
Networks", CVPR 2017, https://arxiv.org/abs/1705.09914. Official code:
https://github.com/fyu/drn (``drn.py``), whose parameter layout this module
keeps, so the official checkpoints load without renaming.

One :class:`DRN` class builds every variant from the ``_ARCHS`` table:

* **DRN-A** (18, 34, 50, 101): a ResNet in torchvision's key layout (``conv1``
  7x7 stride 2, ``bn1``, max pool, ``layer1`` .. ``layer4``, ``fc`` Linear) whose
  groups 4 and 5 (``layer3``/``layer4``) lose their stride and are dilated 2 and
  4. The paper's equations keep dilation 1 only for the first (formerly
  strided) layer of group 4, ``G^4_1``, dilate the rest of group 4 by 2,
  ``G^5_1`` by 2 and the rest of group 5 by 4. The official ``DRN_A`` instead
  builds the whole first *block* of ``layer3`` and of ``layer4`` with dilation
  1 and dilates blocks 2.. only. The two differ in ``layer4[0]`` (its 3x3
  convolution: 1 in the code, 2 in the paper) and, for the basic-block depths
  18/34, also in ``layer3[0].conv2``. We follow the code, so fyu/drn's
  ``drn_a_50`` (torchvision ResNet-50 weights) reproduces exactly.
* **DRN-B** (26, 42): the paper's intermediate degridding stage. Max pooling is
  replaced by a stride-1 7x7 stem and two residual levels (16 and 32 channels),
  and levels 7 (dilation 2) and 8 (dilation 1) are added *with* residual
  connections. fyu/drn never released B; its parameter count equals C's.
* **DRN-C** (26, 42, 58): as B, but levels 7 and 8 have no residual connection.
  As in the official code, the first block of level 7 keeps a 1x1 projection
  (``layer7.0.downsample``) whenever the channel count changes (C-58: 2048 to
  512). It is never used in the forward pass (no residual), but it is part of
  the official checkpoints and of the official parameter count (41.59M), so it
  is kept; its parameters receive no gradient.
* **DRN-D** (22, 24, 38, 40, 54, 56, 105, 107): fyu/drn's variant whose levels
  1, 2, 7 and 8 (and the stem, ``layer0``) are plain conv-norm-act layers.

B/C/D dilate levels 5 and 6 as fyu/drn's ``drn.py`` does (``_make_layer``
with ``new_level=False``, at revision d75db2e): every 3x3 convolution of level
5 at dilation 2 and of level 6 at 4, the first (formerly strided) one
included. The paper's equations for DRN-A would keep that first convolution
at 1 (level 5) and 2 (level 6); we follow the code, whose checkpoints were
trained that way.

Levels and their output strides (``output_stride=8``, the paper's setting)::

    level      1    2    3    4    5    6    7    8
    B/C/D      /1   /2   /4   /8   /8   /8   /8   /8    dilation 1 1 1 1 2 4 2 1
    A          /4   /8   /8   /8                        dilation 1 1 2 4

``output_stride`` 16 or 32 re-enables the original ResNet strides of the last
levels (B/C/D: level 5, and level 6 for 32; A: ``layer3``, and ``layer4`` for
32) and shrinks the dilations so that every 3x3 convolution keeps the sampling
step, in input pixels, it has at output stride 8 (dilation x stride of its
input). The strided convolution is the one that reads the level's input, so
the same weights compute the output-stride-8 features at every other position
of that convolution. Where the step would need a dilation below 1 it is 1::

    B/C/D, os=16: level 5 stride 2 (first 3x3 dilation 2, others 1),
                  level 6 dilation 2, levels 7 and 8 dilation 1
    B/C/D, os=32: level 5 stride 2 (first 3x3 dilation 2, others 1),
                  level 6 stride 2 (first 3x3 dilation 2, others 1),
                  levels 7 and 8 dilation 1
    A, os=16:     layer3 stride 2, dilation 1; layer4 block 1 dilation 1,
                  blocks 2.. dilation 2 (torchvision's dilated ResNet)
    A, os=32:     the plain ResNet (layer3 and layer4 stride 2, dilation 1)

Levels 7/8 at os=16/32 and A's first ``layer4`` block at os=16 are the places
where the step cannot be kept (it would need dilation 1/2).

Weights trained at output stride 16 and evaluated at 8 (DeepLabv3's protocol)
need the reverse rule: ``train_output_stride=16`` with ``output_stride=8``
removes the stride and multiplies every dilation of the os=16 plan by the
stride removed before that convolution, so the network computes the trained
function sampled densely at every level (its os=8 output, taken at every other
position, is the os=16 output). It equals the os=8 paper plan except where
the os=16 plan clamped::

    B/C/D, os=8 from 16:  level 5 (2, 2), level 6 4, level 7 2, level 8 2
                          (paper plan: level 8 at 1)
    B/C/D, os=8 from 32:  levels 5 2, 6 4, 7 4, 8 4 (paper: level 7 at 2, 8 at 1)
    A, os=8 from 16:      layer3 (1, 2, 2), layer4 (2, 2, 4)
                          (paper: layer3 (1, 1, 2), layer4 (1, 1, 4))

(``(a, b, c)``: the 3x3 reading the level input, the other 3x3s of the first
block, the later blocks.)

Beyond the official code: global pooling works at any input size (the
original's fixed 28x28 average pool only fits 224x224 inputs), ``in_chans``
other than 3, ``norm_layer``/``act_layer`` choices, gradient checkpointing and
the timm model API (``forward_features``, ``forward_head``,
``forward_intermediates``, ``features_only``, ``reset_classifier`` ...).

Pretrained weights (``pretrained=True``) come from :mod:`mmdrn.hub`;
``model.pretrained_cfg['tag']`` names the weights loaded.

Example:
    >>> import timm, torch
    >>> import mmdrn  # noqa: F401  (registers the drn_* models)
    >>> model = timm.create_model('drn_c_26').eval()
    >>> model.forward_features(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 512, 8, 8])
"""

from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier, create_conv2d, get_act_layer, get_norm_layer
from timm.models import (
    build_model_with_cfg,
    checkpoint,
    generate_default_cfgs,
    register_model,
)

from .. import hub
from ..utils import load_file
from ..utils.validation import (
    check_choice,
    check_int,
    check_level_indices,
    check_threshold,
)
from .drn_weights import convert_state_dict, match_state_dict, unwrap_state_dict

__all__ = ['DRN', 'BasicBlock', 'Bottleneck', 'ConvLevel', 'level_plan']

LayerFactory = Union[str, Callable[..., nn.Module]]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions, with or without a residual connection.

    Args:
        in_chs (int): Input channels.
        planes (int): Output channels.
        stride (int): Stride of the first convolution. Default: 1.
        dilation (tuple[int, int]): Dilations of the two convolutions.
            Default: (1, 1).
        residual (bool): Add the shortcut (DRN-C/D levels 7-8 do not).
            Default: True.
        downsample (nn.Module, optional): Shortcut projection (1x1 conv +
            norm). Default: None.
        norm_layer (Callable): Normalization layer factory.
            Default: ``nn.BatchNorm2d``.
        act_layer (Callable): Activation factory, called with ``inplace=True``.
            Default: ``nn.ReLU``.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        dilation: Tuple[int, int] = (1, 1),
        residual: bool = True,
        downsample: Optional[nn.Module] = None,
        norm_layer: Callable = nn.BatchNorm2d,
        act_layer: Callable = nn.ReLU,
    ) -> None:
        super().__init__()
        # timm's padding for a 3x3 is the dilation: sizes kept up to the stride
        self.conv1 = create_conv2d(
            in_chs, planes, 3, stride=stride, dilation=dilation[0]
        )
        self.bn1 = norm_layer(planes)
        self.act1 = act_layer(inplace=True)
        self.conv2 = create_conv2d(planes, planes, 3, dilation=dilation[1])
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.act2 = act_layer(inplace=True)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.residual:
            if self.downsample is not None:
                shortcut = self.downsample(shortcut)
            x = x + shortcut
        return self.act2(x)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 residual block with expansion 4.

    As in fyu/drn (and torchvision), the stride and the dilation are on the
    3x3 convolution (``conv2``). Arguments as for :class:`BasicBlock`; the
    output has ``4 * planes`` channels, ``conv2`` has dilation
    ``dilation[0]`` (the second entry is accepted for symmetry) and
    ``residual`` must be True (fyu/drn has no plain bottleneck).
    """

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        dilation: Tuple[int, int] = (1, 1),
        residual: bool = True,
        downsample: Optional[nn.Module] = None,
        norm_layer: Callable = nn.BatchNorm2d,
        act_layer: Callable = nn.ReLU,
    ) -> None:
        super().__init__()
        if not residual:
            raise ValueError('Bottleneck blocks are always residual in DRN')
        out_chs = planes * self.expansion
        self.conv1 = create_conv2d(in_chs, planes, 1)
        self.bn1 = norm_layer(planes)
        self.act1 = act_layer(inplace=True)
        self.conv2 = create_conv2d(
            planes, planes, 3, stride=stride, dilation=dilation[0]
        )
        self.bn2 = norm_layer(planes)
        self.act2 = act_layer(inplace=True)
        self.conv3 = create_conv2d(planes, out_chs, 1)
        self.bn3 = norm_layer(out_chs)
        self.downsample = downsample
        self.act3 = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act3(x + shortcut)


class ConvLevel(nn.Sequential):
    """Plain conv-norm-act layers of DRN-D (stem, levels 1, 2, 7, 8).

    The modules are a flat sequence (conv, norm, act, conv, norm, act, ...) so
    the keys are fyu/drn's ``layerN.0.weight``, ``layerN.1.*``, ``layerN.3.*``.

    Args:
        in_chs (int): Input channels.
        out_chs (int): Output channels of every layer.
        num_convs (int): Number of conv-norm-act layers.
        stride (int): Stride of the first convolution. Default: 1.
        dilation (tuple[int, int]): Dilation of the first convolution and of
            the others. Default: (1, 1).
        kernel_size (int): Kernel size. Default: 3.
        norm_layer (Callable): Normalization layer factory.
            Default: ``nn.BatchNorm2d``.
        act_layer (Callable): Activation factory. Default: ``nn.ReLU``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        num_convs: int,
        stride: int = 1,
        dilation: Tuple[int, int] = (1, 1),
        kernel_size: int = 3,
        norm_layer: Callable = nn.BatchNorm2d,
        act_layer: Callable = nn.ReLU,
    ) -> None:
        layers: List[nn.Module] = []
        for i in range(num_convs):
            first = i == 0
            layers += [
                create_conv2d(
                    in_chs if first else out_chs,
                    out_chs,
                    kernel_size,
                    stride=stride if first else 1,
                    dilation=dilation[0] if first else dilation[1],
                ),
                norm_layer(out_chs),
                act_layer(inplace=True),
            ]
        super().__init__(*layers)


class _Arch(NamedTuple):
    block: str  # 'basic' | 'bottleneck': the block of the residual levels
    layers: Tuple[int, ...]  # blocks (or conv layers) per level


_SHALLOW = (1, 1, 2, 2, 2, 2, 1, 1)
_SHALLOW_DEEP_TAIL = (1, 1, 2, 2, 2, 2, 2, 2)
_MEDIUM = (1, 1, 3, 4, 6, 3, 1, 1)
_MEDIUM_DEEP_TAIL = (1, 1, 3, 4, 6, 3, 2, 2)
_ARCHS: Dict[str, Dict[int, _Arch]] = {
    'A': {
        18: _Arch('basic', (2, 2, 2, 2)),
        34: _Arch('basic', (3, 4, 6, 3)),
        50: _Arch('bottleneck', (3, 4, 6, 3)),
        101: _Arch('bottleneck', (3, 4, 23, 3)),
    },
    'B': {26: _Arch('basic', _SHALLOW), 42: _Arch('basic', _MEDIUM)},
    'C': {
        26: _Arch('basic', _SHALLOW),
        42: _Arch('basic', _MEDIUM),
        58: _Arch('bottleneck', _MEDIUM),
    },
    'D': {
        22: _Arch('basic', _SHALLOW),
        24: _Arch('basic', _SHALLOW_DEEP_TAIL),
        38: _Arch('basic', _MEDIUM),
        40: _Arch('basic', _MEDIUM_DEEP_TAIL),
        54: _Arch('bottleneck', _MEDIUM),
        56: _Arch('bottleneck', _MEDIUM_DEEP_TAIL),
        105: _Arch('bottleneck', (1, 1, 3, 4, 23, 3, 1, 1)),
        107: _Arch('bottleneck', (1, 1, 3, 4, 23, 3, 2, 2)),
    },
}
OUTPUT_STRIDES = [8, 16, 32]
_POOL_TYPES = ['', 'avg', 'max', 'avgmax', 'catavgmax']

# Per level at output stride 8: (native ResNet stride, planes, dilation of the
# first block, dilation of the other blocks). A's stem reduces by 4, B/C/D's by 1.
_LEVELS_A = ((1, 64, 1, 1), (2, 128, 1, 1), (2, 256, 1, 2), (2, 512, 1, 4))
_LEVELS_BCD = (
    (1, 16, 1, 1),
    (2, 32, 1, 1),
    (2, 64, 1, 1),
    (2, 128, 1, 1),
    (2, 256, 2, 2),
    (2, 512, 4, 4),
    (1, 512, 2, 2),
    (1, 512, 1, 1),
)


class _LevelPlan(NamedTuple):
    stride: int
    dilation_in: int  # 3x3 conv reading the level input (the strided one)
    dilation_out: int  # other 3x3 convs of the first block
    dilation: int  # 3x3 convs of blocks 2..n
    reduction: int  # output stride of the level


def level_plan(
    arch: str, output_stride: int = 8, train_output_stride: Optional[int] = None
) -> List[_LevelPlan]:
    """Stride and dilations of every level for an output stride.

    Each 3x3 convolution keeps the sampling step (dilation x input stride) it
    has at output stride 8 (the paper's plans), or with a larger
    ``train_output_stride`` the step it had in training; the module docstring
    gives both rules and where they differ.

    Args:
        arch (str): 'A', 'B', 'C' or 'D'.
        output_stride (int): 8, 16 or 32. Default: 8.
        train_output_stride (int, optional): The output stride the weights
            were trained at: None or ``output_stride`` for the paper's plan,
            else 16 or 32 (at least ``output_stride``). Default: None.

    Returns:
        list[_LevelPlan]: One entry per level.
    """
    check_choice('output_stride', output_stride, OUTPUT_STRIDES)
    if train_output_stride is None or train_output_stride == output_stride:
        return _paper_plan(arch, output_stride)
    allowed = [s for s in OUTPUT_STRIDES if s > output_stride]
    if train_output_stride not in allowed:
        raise ValueError(
            f'train_output_stride must be None, {output_stride} (output_stride) '
            f'or one of {allowed}, got {train_output_stride!r}'
        )
    trained = _paper_plan(arch, train_output_stride)
    dense = _paper_plan(arch, output_stride)
    plans = []
    in_t = in_o = 4 if arch == 'A' else 1  # input reductions, train / test
    for t, o in zip(trained, dense):
        plans.append(
            _LevelPlan(
                stride=o.stride,
                dilation_in=t.dilation_in * in_t // in_o,
                dilation_out=t.dilation_out * t.reduction // o.reduction,
                dilation=t.dilation * t.reduction // o.reduction,
                reduction=o.reduction,
            )
        )
        in_t, in_o = t.reduction, o.reduction
    return plans


def _paper_plan(arch: str, output_stride: int) -> List[_LevelPlan]:
    levels = _LEVELS_A if arch == 'A' else _LEVELS_BCD
    plans = []
    in8 = inn = 4 if arch == 'A' else 1  # input reduction at os=8 and at os
    for native, _, first_dil, dil in levels:
        out8 = in8 * native if in8 * native <= 8 else in8
        stride = native if inn * native <= output_stride else 1
        outn = inn * stride
        plans.append(
            _LevelPlan(
                stride=stride,
                dilation_in=max(1, in8 * first_dil // inn),
                dilation_out=max(1, out8 * first_dil // outn),
                dilation=max(1, out8 * dil // outn),
                reduction=outn,
            )
        )
        in8, inn = out8, outn
    return plans


def _checkpoint(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gradient checkpoint of ``module(x)`` that updates norm statistics once.

    The backward pass runs ``module`` a second time; in training mode that
    would move BatchNorm's running statistics (and ``num_batches_tracked``)
    twice per step. The recomputation therefore runs with momentum 0 (the
    running statistics stay exactly as they are; the output still uses the
    batch statistics) and restores ``num_batches_tracked``.
    """
    norms = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    calls = []

    def run(inputs: torch.Tensor) -> torch.Tensor:
        calls.append(None)
        if len(calls) == 1 or not module.training:
            return module(inputs)
        saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
        for m in norms:
            m.momentum = 0.0
        try:
            return module(inputs)
        finally:
            for m, (momentum, count) in zip(norms, saved):
                m.momentum = momentum
                m.num_batches_tracked.copy_(count)

    return checkpoint(run, x)


def _check_input(x: torch.Tensor, in_chans: int) -> None:
    """Refuse inputs that are not float ``N x in_chans x H x W`` tensors.

    Images straight from a decoder (uint8, numpy arrays, PIL) are the usual
    mistake; the message says how to convert them.
    """
    expected = (
        f'a float tensor N x C x H x W with C = in_chans (in_channels) = {in_chans}'
    )
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f'DRN expects {expected}, got a {type(x).__name__}; convert images with '
            'timm.data transforms (timm.data.create_transform(**timm.data.'
            'resolve_model_data_config(model))) or torch.as_tensor(...)'
        )
    if not x.is_floating_point():
        raise TypeError(
            f'DRN expects {expected}, got dtype {x.dtype}; convert uint8 images '
            f"with x.float() / 255 and normalise with the model's mean/std "
            f"(model.pretrained_cfg['mean'], ['std']), or use timm.data transforms"
        )
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(
            'DRN expects images of shape N x C x H x W with C = in_chans '
            '(in_channels) = ' + str(in_chans) + ', got shape ' + str(list(x.shape))
        )


# a leaf for torch.fx: its shape test is not symbolically traceable
torch.fx.wrap('_check_input')


def _resolve_layer(
    name: str, value: LayerFactory, resolve: Callable[[str], Any]
) -> Callable[..., nn.Module]:
    """A layer factory from a callable or a timm layer name."""
    kind = 'norm' if name == 'norm_layer' else 'activation'
    factory = value
    if isinstance(value, str):
        try:
            factory = resolve(value)
        except KeyError:
            factory = None
    if not callable(factory):
        raise ValueError(
            f'{name} must be a layer class/factory or a timm {kind} layer name '
            f'(e.g. {"batchnorm2d" if kind == "norm" else "relu"!r}), got {value!r}'
        )
    return factory


def _make_level(
    kind: str,
    in_chs: int,
    planes: int,
    num: int,
    plan: _LevelPlan,
    layer_kw: Dict[str, Callable],
) -> Tuple[nn.Sequential, int]:
    """One level and its output channels; ``kind`` as in ``DRN._level_kind``."""
    if kind == 'conv':
        dilation = (plan.dilation_in, plan.dilation)
        return ConvLevel(in_chs, planes, num, plan.stride, dilation, **layer_kw), planes
    block = Bottleneck if kind == 'bottleneck' else BasicBlock
    out_chs = planes * block.expansion
    downsample = None
    # fyu/drn adds the projection whenever shapes change, even for the
    # non-residual blocks of DRN-C levels 7-8 (unused, but in checkpoints).
    if plan.stride != 1 or in_chs != out_chs:
        downsample = nn.Sequential(
            create_conv2d(in_chs, out_chs, 1, stride=plan.stride),
            layer_kw['norm_layer'](out_chs),
        )
    residual = kind != 'basic_plain'
    first = (plan.dilation_in, plan.dilation_out)
    blocks = [
        block(in_chs, planes, plan.stride, first, residual, downsample, **layer_kw)
    ]
    for _ in range(1, num):
        dilation = (plan.dilation, plan.dilation)
        blocks.append(block(out_chs, planes, 1, dilation, residual, **layer_kw))
    return nn.Sequential(*blocks), out_chs


class DRN(nn.Module):
    """Dilated Residual Network (Yu, Koltun, Funkhouser, CVPR 2017).

    Paper: https://arxiv.org/abs/1705.09914. Levels, strides and dilations are
    described in this module's docstring. The state dict uses fyu/drn's keys
    (torchvision's ResNet keys for DRN-A).

    Args:
        arch (str): 'A', 'B', 'C' or 'D'. Default: 'C'.
        depth (int): Depth; A: 18, 34, 50, 101; B: 26, 42; C: 26, 42, 58;
            D: 22, 24, 38, 40, 54, 56, 105, 107. Default: 26.
        num_classes (int): Classifier outputs; 0 removes the classifier.
            Default: 1000.
        in_chans (int): Input image channels. Default: 3.
        output_stride (int): 8 (the paper), 16 or 32, with the same weights.
            Default: 8.
        train_output_stride (int, optional): For evaluating weights trained
            at a larger output stride (e.g. 16) at ``output_stride`` (e.g. 8):
            dilates so the trained function is sampled densely
            (:func:`level_plan`). None: the paper's plan. Default: None.
        global_pool (str): timm pooling type: 'avg', 'max', 'avgmax',
            'catavgmax' or '' (no pooling; B/C/D then apply the 1x1 conv
            classifier at every position, DRN-A needs ``num_classes=0``).
            Default: 'avg'.
        drop_rate (float): Dropout before the classifier. Default: 0.
        norm_layer (str | Callable): Normalization layer factory called with
            the channel count (e.g. ``nn.BatchNorm2d``, ``nn.SyncBatchNorm``,
            ``functools.partial(nn.GroupNorm, 8)``) or a timm norm name.
            Default: ``nn.BatchNorm2d``.
        act_layer (str | Callable): Activation factory called with
            ``inplace=True``, or a timm activation name. Default: ``nn.ReLU``.

    Attributes:
        num_features (int): Channels of the final feature map.
        feature_info (list[dict]): Per level: ``num_chs``, ``reduction``,
            ``module``.
        level_names (tuple[str]): Module names of the levels, in order.
        stem_names (tuple[str]): Module names of the stem, in order.

    Example:
        >>> model = DRN('D', 22, num_classes=10).eval()
        >>> [f.shape[1:] for f in model.forward_intermediates(
        ...     torch.rand(1, 3, 32, 32), intermediates_only=True)][-1]
        torch.Size([512, 4, 4])
    """

    def __init__(
        self,
        arch: str = 'C',
        depth: int = 26,
        num_classes: int = 1000,
        in_chans: int = 3,
        output_stride: int = 8,
        train_output_stride: Optional[int] = None,
        global_pool: str = 'avg',
        drop_rate: float = 0.0,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        check_choice('arch', arch, sorted(_ARCHS))
        check_choice(f'depth of DRN-{arch}', depth, sorted(_ARCHS[arch]))
        self.in_chans = check_int('in_chans', in_chans)
        self.num_classes = check_int('num_classes', num_classes, minimum=0)
        self.drop_rate = check_threshold('drop_rate', drop_rate)
        layer_kw = dict(
            norm_layer=_resolve_layer('norm_layer', norm_layer, get_norm_layer),
            act_layer=_resolve_layer('act_layer', act_layer, get_act_layer),
        )
        self.arch = arch
        self.depth = depth
        self.layers = _ARCHS[arch][depth].layers
        self.output_stride = output_stride
        self.train_output_stride = train_output_stride
        self.grad_checkpointing = False
        self._make_stem(layer_kw)
        self._make_levels(
            level_plan(arch, output_stride, train_output_stride), layer_kw
        )
        self.global_pool, self.fc, self.flatten = self._make_head(
            num_classes, global_pool
        )
        self._init_weights()

    # construction helpers -------------------------------------------------
    def _make_stem(self, layer_kw: Dict[str, Callable]) -> None:
        # Absent parts stay None so forward_stem() needs no per-arch branches.
        self.layer0 = self.conv1 = self.bn1 = self.act1 = self.maxpool = None
        if self.arch == 'D':
            self.layer0 = ConvLevel(self.in_chans, 16, 1, kernel_size=7, **layer_kw)
            self.stem_names = ('layer0',)
            return
        stem_chs, stem_stride = (64, 2) if self.arch == 'A' else (16, 1)
        self.conv1 = create_conv2d(self.in_chans, stem_chs, 7, stride=stem_stride)
        self.bn1 = layer_kw['norm_layer'](stem_chs)
        self.act1 = layer_kw['act_layer'](inplace=True)
        self.stem_names = ('conv1', 'bn1', 'act1')
        if self.arch == 'A':
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.stem_names += ('maxpool',)

    def _make_levels(
        self, plans: List[_LevelPlan], layer_kw: Dict[str, Callable]
    ) -> None:
        """Levels 1..8 (A: 1..4), registered in execution order."""
        in_chs = 64 if self.arch == 'A' else 16
        levels = _LEVELS_A if self.arch == 'A' else _LEVELS_BCD
        self.feature_info = []
        for index, plan in enumerate(plans):
            name = f'layer{index + 1}'
            level, in_chs = _make_level(
                self._level_kind(index),
                in_chs,
                levels[index][1],
                self.layers[index],
                plan,
                layer_kw,
            )
            setattr(self, name, level)
            info = dict(num_chs=in_chs, reduction=plan.reduction, module=name)
            self.feature_info.append(info)
        for index in range(len(plans), 8):
            setattr(self, f'layer{index + 1}', None)
        self.level_names = tuple(f['module'] for f in self.feature_info)
        self.num_features = self.head_hidden_size = in_chs

    def _level_kind(self, index: int) -> str:
        """'conv' (plain layers), 'basic', 'basic_plain' or 'bottleneck'."""
        arch_block = _ARCHS[self.arch][self.depth].block
        if self.arch == 'A' or 2 <= index <= 5:
            return arch_block
        if self.arch == 'D':
            return 'conv'
        if index >= 6 and self.arch == 'C':
            return 'basic_plain'
        return 'basic'

    def _make_head(
        self, num_classes: int, global_pool: str
    ) -> Tuple[nn.Module, nn.Module, nn.Module]:
        check_choice('global_pool', global_pool, _POOL_TYPES)
        # B/C/D: the paper's 1x1 conv classifier, which also gives dense
        # class maps when pooling is disabled; A: torchvision's Linear.
        use_conv = self.arch != 'A'
        if not (use_conv or global_pool or num_classes == 0):
            raise ValueError(
                "DRN-A's Linear classifier needs pooling: global_pool='' "
                'requires num_classes=0'
            )
        pool, fc = create_classifier(
            self.num_features, num_classes, global_pool, use_conv=use_conv
        )
        if isinstance(fc, nn.Conv2d):
            nn.init.kaiming_normal_(fc.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(fc.bias)
        flatten = nn.Flatten(1) if use_conv and global_pool else nn.Identity()
        return pool, fc, flatten

    def _init_weights(self) -> None:
        # fyu/drn: normal(0, sqrt(2 / (k * k * out_channels))), i.e. He fan-out.
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and name != 'fc':
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    # timm model API ------------------------------------------------------
    @torch.jit.ignore
    def levels(self) -> List[nn.Module]:
        """The level modules, in execution order."""
        return [getattr(self, name) for name in self.level_names]

    @torch.jit.ignore
    def stem(self) -> List[nn.Module]:
        """The stem modules, in execution order."""
        return [getattr(self, name) for name in self.stem_names]

    @torch.jit.ignore
    def unused_keys(self) -> List[str]:
        """State dict keys of parameters the forward pass never uses.

        Only DRN-C-58 has some: the projection of ``layer7.0`` (see the module
        docstring). Checkpoints without them (pytorchcv) still load.
        """
        keys = []
        for name, m in self.named_modules():
            if (
                isinstance(m, BasicBlock)
                and not m.residual
                and m.downsample is not None
            ):
                keys += [f'{name}.downsample.{k}' for k in m.downsample.state_dict()]
        return keys

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Parameter groups for timm's layer-wise optimizers."""
        return dict(
            stem=r'^(conv1|bn1|layer0)\.',
            blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)',
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward, per block (per plain level).

        BatchNorm statistics still move once per step (see ``_checkpoint``),
        so training with and without it gives the same gradients and statistics.
        """
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The classifier (``fc``)."""
        return self.fc

    def reset_classifier(
        self, num_classes: int, global_pool: Optional[str] = None
    ) -> None:
        """Replace the classifier (and optionally the pooling).

        Args:
            num_classes (int): New number of classes; 0 removes it.
            global_pool (str, optional): New pooling type; None keeps it.
        """
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.num_classes = num_classes
        self.global_pool, self.fc, self.flatten = self._make_head(
            num_classes, global_pool
        )

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Run the stem (``layer0`` for D, ``conv1``/``bn1``/act[/max pool])."""
        _check_input(x, self.in_chans)
        if self.layer0 is not None:
            x = self.layer0(x)
        if self.conv1 is not None:
            x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        if self.act1 is not None:
            x = self.act1(x)
        if self.maxpool is not None:
            x = self.maxpool(x)
        return x

    @torch.jit.ignore
    def _run_level(self, level: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            return level(x)
        if isinstance(level, ConvLevel):
            # one segment: in-place activations must stay inside it
            return _checkpoint(level, x)
        for block in level:
            x = _checkpoint(block, x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final feature map, ``N x num_features x H/os x W/os``."""
        x = self.forward_stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for level in self.levels():
                x = self._run_level(level, x)
            return x
        # Written out for TorchScript. Levels 5-8 are None in DRN-A; levels
        # dropped by prune_intermediate_layers are identities.
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        if self.layer5 is not None:
            x = self.layer5(x)
        if self.layer6 is not None:
            x = self.layer6(x)
        if self.layer7 is not None:
            x = self.layer7(x)
        if self.layer8 is not None:
            x = self.layer8(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout and classify a feature map.

        Args:
            x (Tensor): Output of :meth:`forward_features`.
            pre_logits (bool): Return the pooled features, not the logits.
                Default: False.
        """
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        if pre_logits:
            return self.flatten(x)
        return self.flatten(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, Sequence[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Outputs of selected levels (timm's feature API).

        Args:
            x (Tensor): Input images.
            indices (int | Sequence[int], optional): Level indices to return
                (0-based, negative from the end), an int n for the last n
                levels, or None for all. Default: None.
            norm (bool): Unused (DRN has no final norm). Default: False.
            stop_early (bool): Stop after the last requested level.
                Default: False.
            output_fmt (str): Only 'NCHW'. Default: 'NCHW'.
            intermediates_only (bool): Return only the level outputs.
                Default: False.

        Returns:
            list[Tensor] | tuple[Tensor, list[Tensor]]: The level outputs, or
            the final feature map and the level outputs.
        """
        check_choice('output_fmt', output_fmt, ['NCHW'])
        take = check_level_indices('indices', indices, len(self.level_names))
        levels = self.levels()
        if stop_early or intermediates_only:
            levels = levels[: take[-1] + 1]
        intermediates = []
        x = self.forward_stem(x)
        for index, level in enumerate(levels):
            x = self._run_level(level, x)
            if index in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(
        self,
        indices: Union[int, Sequence[int]] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> List[int]:
        """Drop the levels after the last requested one (and the head).

        As in timm's ResNet, the dropped levels become ``nn.Identity``, so
        :meth:`forward` and :meth:`forward_features` still run and end at the
        last kept level; ``level_names`` and ``feature_info`` (hence the
        ``indices`` :meth:`forward_intermediates` accepts) list the kept
        levels only, as timm's ConvNeXt truncates its stages.

        Returns:
            list[int]: The absolute level indices that will be returned.
        """
        take = check_level_indices('indices', indices, len(self.level_names))
        for name in self.level_names[take[-1] + 1 :]:
            setattr(self, name, nn.Identity())
        self.level_names = self.level_names[: take[-1] + 1]
        self.feature_info = self.feature_info[: take[-1] + 1]
        if prune_head:
            self.reset_classifier(0, '')
        return list(take)


def checkpoint_filter_fn(
    state_dict: Dict[str, torch.Tensor], model: DRN
) -> Dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: convert any known layout to ours.

    Accepts every layout of :mod:`.drn_weights`. Keys left over, missing or
    of another shape after conversion raise an error naming them. A
    checkpoint without a classifier keeps the model's own (freshly
    initialised) ``fc``. timm itself adapts the first convolution to
    ``in_chans`` and drops the checkpoint's classifier when ``num_classes``
    differs from the pretrained config's, so those shapes are left to it.
    """
    converted = convert_state_dict(state_dict, model.arch, model.layers)
    first_conv = 'layer0.0.weight' if model.arch == 'D' else 'conv1.weight'
    return match_state_dict(
        converted,
        model.state_dict(),
        skip_classifier=model.num_classes == 0,
        fill_missing_classifier=True,
        optional_keys=model.unused_keys(),
        ignore_shapes=(first_conv, 'fc.weight', 'fc.bias'),
    )


def _read_weights(
    variant: str, overlay: Dict[str, Any], kwargs: Dict[str, Any]
) -> bool:
    """Put the pretrained weights into timm's ``overlay``; True if read here.

    Published weights are downloaded and verified by :mod:`mmdrn.hub` (timm's
    own download would check no SHA-1, and by default no hash at all), and
    ``kwargs['pretrained_cfg']`` becomes the tag actually loaded. A local
    file (the hub's, or ``pretrained_cfg_overlay=dict(file=...)``) is read by
    mmdrn's weights-only loader, whose errors explain empty, damaged or
    unsafe files, and handed to timm as a state dict.
    """
    tag = kwargs.get('pretrained_cfg')
    if not any(overlay.get(k) for k in ('file', 'url', 'state_dict')) and (
        tag is None or isinstance(tag, str)
    ):
        overlay['file'], source = hub.fetch(f'{variant}.{tag}' if tag else variant)
        kwargs['pretrained_cfg'] = source.tag
    if not overlay.get('file') or 'state_dict' in overlay:
        return False
    overlay['state_dict'] = unwrap_state_dict(load_file(overlay['file']))
    return True


def _create_drn(variant: str, pretrained: bool = False, **kwargs: Any) -> DRN:
    num_levels = 4 if kwargs['arch'] == 'A' else 8
    if kwargs.get('features_only') and kwargs.get('out_indices') is not None:
        kwargs['out_indices'] = check_level_indices(
            'out_indices', kwargs['out_indices'], num_levels
        )
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    read_here = pretrained and _read_weights(variant, overlay, kwargs)
    model = build_model_with_cfg(
        DRN,
        variant,
        pretrained,
        pretrained_cfg_overlay=overlay or None,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=tuple(range(num_levels))),
        **kwargs,
    )
    if read_here:  # keep the file name, not a second copy of the weights
        for module in (model, *model.modules()):  # features_only wrappers too
            getattr(module, 'pretrained_cfg', {}).pop('state_dict', None)
    return model


def _cfg(url: str = '', first_conv: str = 'conv1', **kwargs: Any) -> Dict[str, Any]:
    return {
        'url': url,
        'num_classes': 1000,
        'input_size': (3, 224, 224),
        'pool_size': (28, 28),
        'crop_pct': 0.875,
        'interpolation': 'bilinear',
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': first_conv,
        'classifier': 'fc',
        'license': 'bsd-3-clause',
        'paper_ids': 'arXiv:1705.09914',
        'paper_name': 'Dilated Residual Networks',
        'origin_url': 'https://github.com/fyu/drn',
        **kwargs,
    }


def _hub_cfg(source: hub.WeightSource) -> Dict[str, Any]:
    """The timm cfg of one published file (see :mod:`mmdrn.hub`)."""
    notes = None
    if source.top1_err is not None:
        notes = (
            f'ImageNet-1k val top-1 / top-5 error {source.top1_err}% / '
            f'{source.top5_err}% as published by {source.origin_url}',
        )
    return _cfg(
        source.url,
        'layer0.0' if source.model.startswith('drn_d') else 'conv1',
        license=source.license,
        origin_url=source.origin_url,
        description=source.description,
        notes=notes,
    )


# Tags in mmdrn.hub's order: the first tag of an architecture is its default.
default_cfgs = generate_default_cfgs(
    {
        **{name: _hub_cfg(source) for name, source in hub.WEIGHTS.items()},
        'drn_b_26': _cfg(),
        'drn_b_42': _cfg(),
        'drn_d_24': _cfg(first_conv='layer0.0'),
        'drn_d_40': _cfg(first_conv='layer0.0'),
        'drn_d_56': _cfg(first_conv='layer0.0'),
        'drn_d_107': _cfg(first_conv='layer0.0'),
    }
)


@register_model
def drn_a_18(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-A-18 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_a_18', pretrained, arch='A', depth=18, **kwargs)


@register_model
def drn_a_34(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-A-34 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_a_34', pretrained, arch='A', depth=34, **kwargs)


@register_model
def drn_a_50(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-A-50 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_a_50', pretrained, arch='A', depth=50, **kwargs)


@register_model
def drn_a_101(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-A-101 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_a_101', pretrained, arch='A', depth=101, **kwargs)


@register_model
def drn_b_26(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-B-26 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_b_26', pretrained, arch='B', depth=26, **kwargs)


@register_model
def drn_b_42(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-B-42 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_b_42', pretrained, arch='B', depth=42, **kwargs)


@register_model
def drn_c_26(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-C-26 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_c_26', pretrained, arch='C', depth=26, **kwargs)


@register_model
def drn_c_42(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-C-42 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_c_42', pretrained, arch='C', depth=42, **kwargs)


@register_model
def drn_c_58(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-C-58 (Yu et al., CVPR 2017)."""
    return _create_drn('drn_c_58', pretrained, arch='C', depth=58, **kwargs)


@register_model
def drn_d_22(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-22 (fyu/drn)."""
    return _create_drn('drn_d_22', pretrained, arch='D', depth=22, **kwargs)


@register_model
def drn_d_24(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-24 (fyu/drn)."""
    return _create_drn('drn_d_24', pretrained, arch='D', depth=24, **kwargs)


@register_model
def drn_d_38(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-38 (fyu/drn)."""
    return _create_drn('drn_d_38', pretrained, arch='D', depth=38, **kwargs)


@register_model
def drn_d_40(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-40 (fyu/drn)."""
    return _create_drn('drn_d_40', pretrained, arch='D', depth=40, **kwargs)


@register_model
def drn_d_54(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-54 (fyu/drn)."""
    return _create_drn('drn_d_54', pretrained, arch='D', depth=54, **kwargs)


@register_model
def drn_d_56(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-56 (fyu/drn)."""
    return _create_drn('drn_d_56', pretrained, arch='D', depth=56, **kwargs)


@register_model
def drn_d_105(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-105 (fyu/drn)."""
    return _create_drn('drn_d_105', pretrained, arch='D', depth=105, **kwargs)


@register_model
def drn_d_107(pretrained: bool = False, **kwargs: Any) -> DRN:
    """DRN-D-107 (fyu/drn)."""
    return _create_drn('drn_d_107', pretrained, arch='D', depth=107, **kwargs)
