"""The context module of Yu & Koltun, in plain PyTorch.

F. Yu and V. Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016 (https://arxiv.org/abs/1511.07122).

A cascade of 3x3 convolutions whose dilation doubles from layer to layer, so
the receptive field grows exponentially while the resolution and the number
of weights per layer stay fixed; each 3x3 layer is followed by a ReLU
("truncation"), and a final 1x1 convolution maps back to ``C`` channels.

``num_layers=8`` is the module of the paper::

    layer            1  2  3   4   5   6   7   8
    kernel           3  3  3   3   3   3   3   1
    dilation         1  1  2   4   8  16   1   1
    receptive field  3  5  9  17  33  65  67  67
    basic width      C  C  C   C   C   C   C   C
    large width     2C 2C 4C  8C 16C 32C 32C   C

``num_layers=10`` is the Cityscapes module of the official release
(``dilation10_cityscapes``): the dilations continue with 32 and 64 before the
closing 3x3 and 1x1 layers, for receptive fields 3, 5, 9, 17, 33, 65, 129,
257, 259, 259. That release only has the basic widths; for the large variant
we keep the paper's cap of 32C for the two extra layers (widths 2C, 2C, 4C,
8C, 16C, 32C, 32C, 32C, 32C, C). Continuing to double instead (64C, 128C)
would multiply the weights of those two 3x3 layers by 4 and 16 (for
C = 19 Cityscapes classes a 2432-channel 3x3 layer alone has 53M weights)
without changing the receptive field, which is set by the dilations alone.

Identity initialisation (Section 3 of the paper). With ``a`` an input and
``b`` an output channel of a layer going from ``c_i`` to ``c_{i+1}``
channels, and ``t`` the kernel tap (``t = 0`` the centre):

* basic: ``k_b(t, a) = 1[t = 0] * 1[a = b]``; zero bias. Every layer copies
  its input, so at initialisation a non-negative input comes out unchanged
  (the ReLUs do nothing to it).
* large: ``k_b(t, a) = C / c_{i+1}`` if ``t = 0`` and
  ``floor(a C / c_i) = floor(b C / c_{i+1})``, else ``eps`` with
  ``eps ~ N(0, sigma^2)``; zero bias. The paper only asks for
  ``sigma << C / c_{i+1}``; we use ``sigma = init_noise * C / c_{i+1}``
  (``init_noise=1e-3`` by default). Without the noise this is again an exact
  identity: channel ``g`` of the input is spread over the ``c / C`` channels
  of group ``g`` of a ``c``-wide layer, each holding ``x_g * C / c``, and the
  closing 1x1 layer sums the group back to ``x_g``. The same formula with
  ``c_i = c_{i+1} = C`` is the basic rule, which is how it is implemented.
"""

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..utils.validation import (
    check_choice,
    check_float,
    check_in_index,
    check_int,
    select_input,
)

__all__ = ['ContextConv', 'ContextModule', 'scaled_identity_']

NormLayer = Optional[Callable[[int], nn.Module]]
ActLayer = Optional[Callable[[], nn.Module]]

# Dilations of the 3x3 layers; every module ends with one 1x1 layer.
_DILATIONS = {
    8: (1, 1, 2, 4, 8, 16, 1),
    10: (1, 1, 2, 4, 8, 16, 32, 64, 1),
}
# Widths of the 3x3 layers in multiples of C; the 1x1 layer always has C.
_WIDTHS = {
    'basic': {8: (1,) * 7, 10: (1,) * 9},
    'large': {
        8: (2, 2, 4, 8, 16, 32, 32),
        10: (2, 2, 4, 8, 16, 32, 32, 32, 32),
    },
}


@torch.no_grad()
def scaled_identity_(
    conv: nn.Conv2d, base_channels: int, noise_std: float = 0.0
) -> None:
    """Fill ``conv`` with the paper's (scaled) identity of the module
    docstring, in place; the bias is zeroed.

    Args:
        conv (nn.Conv2d): A stride-1 convolution with an odd kernel.
        base_channels (int): ``C``, the width the module maps back to.
        noise_std (float): Noise std relative to ``C / c_out``. Default: 0.
    """
    c_out, c_in, kh, kw = conv.weight.shape
    scale = base_channels / c_out
    group_in = torch.arange(c_in) * base_channels // c_in
    group_out = torch.arange(c_out) * base_channels // c_out
    same_group = group_out[:, None] == group_in[None, :]
    if noise_std > 0:
        conv.weight.normal_(0.0, noise_std * scale)
    else:
        conv.weight.zero_()
    conv.weight[:, :, kh // 2, kw // 2] += same_group.to(conv.weight.dtype) * scale
    if conv.bias is not None:
        conv.bias.zero_()


class ContextConv(nn.Sequential):
    """Convolution (+ norm) + activation that keeps the spatial size.

    The context module's 3x3 layers; ASPP's branches reuse it.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        dilation (int): Dilation of the kernel (padded to keep the size).
        norm_layer (Callable[[int], nn.Module], optional): Builds a norm
            layer for ``out_channels``; the conv has a bias only without it.
            Default: None.
        act_layer (Callable[[], nn.Module], optional): Builds the activation
            (the paper's truncation is a ReLU); None for none. Default:
            ``nn.ReLU``.
        kernel_size (int): An odd kernel size. Default: 3.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int,
        norm_layer: NormLayer = None,
        act_layer: ActLayer = nn.ReLU,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                bias=norm_layer is None,
            ),
            norm_layer(out_channels) if norm_layer is not None else nn.Identity(),
            act_layer() if act_layer is not None else nn.Identity(),
        )


class ContextModule(nn.Module):
    """Context module (Yu & Koltun, ICLR 2016) as a segmentation neck.

    Layer table, the 10-layer widths and the exact initialisation are in this
    module's docstring. The module runs on one backbone output (``in_index``)
    and returns the backbone's tuple with that entry replaced by the module's
    output, so auxiliary heads can still read the other levels.

    Two arrangements:

    * ``num_classes=None`` (default): on backbone features, ``C =
      in_channels``; the output has ``in_channels`` channels.
    * ``num_classes=K``: the paper's own arrangement on class scores. A 1x1
      convolution first projects the backbone output to ``K`` class scores
      (the front-end's classifier), then the module runs with ``C = K``; the
      output has ``K`` channels. For the paper's segmenter in MMSeg, use
      the registered ``ContextHead`` (:mod:`mmdrn.openmmlab.heads`).

    Args:
        in_channels (int): Channels of the selected backbone output.
        variant (str): ``'basic'`` (C channels everywhere) or ``'large'``
            (2C ... 32C, see the table). Default: ``'basic'``.
        num_layers (int): 8 (the paper's module, receptive field 67) or 10
            (the official Cityscapes module, receptive field 259).
            Default: 8.
        num_classes (int, optional): If given, project to this many class
            scores before the module (arrangement on class scores).
            Default: None.
        in_index (int): Which backbone output to use; negative counts from
            the end. Default: -1 (the last).
        norm_layer (Callable[[int], nn.Module], optional): Norm after each
            3x3 conv. The paper uses none; with a norm the identity holds only
            as far as the norm is itself an identity (e.g. a fresh BatchNorm
            in eval mode, up to its ``eps``). Default: None.
        act_layer (Callable[[], nn.Module], optional): Activation after each
            3x3 conv (the truncation). Default: ``nn.ReLU``.
        init_noise (float): Std of the large variant's init noise relative to
            ``C / c_{i+1}``; 0 gives an exact scaled identity. The basic
            variant is always initialised noise-free. Default: 1e-3.

    Example:
        >>> import torch
        >>> neck = ContextModule(8, variant='large', num_layers=10)
        >>> feats = (torch.rand(1, 4, 32, 32), torch.rand(1, 8, 16, 16))
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 4, 32, 32), (1, 8, 16, 16)]
        >>> neck.widths, neck.receptive_field
        ((16, 16, 32, 64, 128, 256, 256, 256, 256, 8), 259)
    """

    VARIANTS = ('basic', 'large')
    NUM_LAYERS = tuple(_DILATIONS)

    def __init__(
        self,
        in_channels: int,
        variant: str = 'basic',
        num_layers: int = 8,
        num_classes: Optional[int] = None,
        in_index: int = -1,
        norm_layer: NormLayer = None,
        act_layer: ActLayer = nn.ReLU,
        init_noise: float = 1e-3,
    ) -> None:
        super().__init__()
        check_int('in_channels', in_channels)
        self.variant = check_choice('variant', variant, self.VARIANTS)
        self.num_layers = check_choice('num_layers', num_layers, self.NUM_LAYERS)
        if num_classes is not None:
            check_int('num_classes', num_classes)
        noise = check_float('init_noise', init_noise, '[0, inf)')
        if not (noise >= 0 and math.isfinite(noise)):
            # inf noise would fill the large variant with inf/NaN weights
            raise ValueError(
                f'init_noise must be a finite float in [0, inf), got {noise!r}'
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.in_index = check_in_index(in_index)
        self.init_noise = noise

        base = in_channels if num_classes is None else num_classes
        self.base_channels = base
        self.dilations = _DILATIONS[num_layers] + (1,)
        self.widths = tuple(m * base for m in _WIDTHS[variant][num_layers]) + (base,)

        # Projection to class scores: the front-end classifier of the paper.
        self.project = (
            nn.Identity()
            if num_classes is None
            else nn.Conv2d(in_channels, num_classes, 1)
        )
        layers = []
        width = base
        for out_width, dilation in zip(self.widths[:-1], self.dilations[:-1]):
            layers.append(
                ContextConv(width, out_width, dilation, norm_layer, act_layer)
            )
            width = out_width
        # The last layer is a plain 1x1 conv: no truncation (paper, Table 1).
        layers.append(nn.Conv2d(width, base, 1))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    @property
    def receptive_field(self) -> int:
        """int: Side of the square receptive field of one output position."""
        return 1 + sum(
            (conv.kernel_size[0] - 1) * conv.dilation[0] for conv in self.convs()
        )

    def convs(self) -> Tuple[nn.Conv2d, ...]:
        """The module's convolutions in order (without the projection)."""
        return tuple(m for m in self.layers.modules() if isinstance(m, nn.Conv2d))

    def reset_parameters(self) -> None:
        """(Re)apply the identity initialisation to every layer."""
        noise = self.init_noise if self.variant == 'large' else 0.0
        for module in self.layers.modules():
            if isinstance(module, nn.Conv2d):
                scaled_identity_(module, self.base_channels, noise)
            elif hasattr(module, 'reset_parameters'):
                module.reset_parameters()  # norm layers: weight 1, bias 0

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Run the module on ``inputs[in_index]``.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs, ``(N, C_i, H_i, W_i)``.

        Returns:
            tuple[Tensor]: ``inputs`` with entry ``in_index`` replaced by the
            module's output, ``(N, C, H, W)`` with ``C`` = ``num_classes`` or
            ``in_channels``.
        """
        inputs, index = select_input(inputs, self.in_index, self.in_channels)
        out = self.layers(self.project(inputs[index]))
        return inputs[:index] + (out,) + inputs[index + 1 :]
