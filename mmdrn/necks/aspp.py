"""Atrous Spatial Pyramid Pooling with image-level features, in plain PyTorch.

L.-C. Chen, G. Papandreou, F. Schroff and H. Adam, "Rethinking Atrous
Convolution for Semantic Image Segmentation" (DeepLabv3), 2017
(https://arxiv.org/abs/1706.05587), Section 3.3.

Parallel branches on one feature map: a 1x1 convolution, 3x3 convolutions
with different atrous rates, and image-level features (global average pool,
1x1 convolution, upsampled back to the map's size), each with batch norm;
their concatenation is fused by another 1x1 convolution with batch norm.
DeepLabv3 uses rates (6, 12, 18) at output stride 16 and doubles them at
output stride 8; DRNs have output stride 8, hence the default
``dilations=(1, 12, 24, 36)``, where the rate 1 stands for the 1x1 branch.
"""

from collections import abc
from typing import Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..utils.validation import check_in_index, check_int, check_threshold, select_input
from .context_module import ActLayer, ContextConv, NormLayer

__all__ = ['ASPP', 'ASPPConv', 'ASPPPooling']


class ASPPConv(ContextConv):
    """Conv + norm + act; 1x1 for ``dilation=1``, else an atrous 3x3.

    Both keep the spatial size (the 3x3 is padded by its dilation).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        dilation (int): Atrous rate; 1 means a 1x1 convolution.
        norm_layer (Callable[[int], nn.Module], optional): Norm builder;
            the conv has a bias only without it.
        act_layer (Callable[[], nn.Module], optional): Activation builder.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilation: int,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        kernel_size = 1 if dilation == 1 else 3
        super().__init__(
            in_channels, out_channels, dilation, norm_layer, act_layer, kernel_size
        )


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv + norm + act,
    upsampled back to the input's size.

    **Batch size 1 in training.** The pooled map holds one value per image
    and channel, so a batch norm in training mode has no batch statistics
    for a single image (PyTorch raises "Expected more than 1 value per
    channel"). The paper trains with batches of many images and never meets
    this; a quick look with one image per process does. For such a batch this
    branch's ``BatchNorm`` / ``SyncBatchNorm`` (the latter outside a
    multi-process group, where it would see the other processes' images)
    normalises with its running statistics, as in eval mode, and leaves them
    unchanged; batches of two or more images train it as usual. A pure
    batch-1 training therefore keeps this norm at its initial statistics
    (mean 0, variance 1), i.e. it acts as its affine scale and shift. A batch
    norm without running statistics (``track_running_stats=False``) has
    nothing to fall back on and raises a ``ValueError``. Other norms (e.g.
    GroupNorm) behave as they do for any batch.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_layer (Callable[[int], nn.Module], optional): Norm builder.
        act_layer (Callable[[], nn.Module], optional): Activation builder.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: NormLayer,
        act_layer: ActLayer,
    ) -> None:
        conv_norm_act = ASPPConv(in_channels, out_channels, 1, norm_layer, act_layer)
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_norm_act)

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` to one vector per image and spread it back over ``x``'s size."""
        pool, conv, norm, act = self
        y = _pooled_norm(norm, conv(pool(x)))
        # Bilinear upsampling of a 1x1 map (as in the paper) is a broadcast.
        return F.interpolate(
            act(y), size=x.shape[-2:], mode='bilinear', align_corners=False
        )


def _pooled_norm(norm: nn.Module, y: Tensor) -> Tensor:
    """``norm(y)``, but a batch norm in training that sees one value per
    channel (and no other processes) uses its running statistics (see
    :class:`ASPPPooling`)."""
    synced = (
        isinstance(norm, nn.SyncBatchNorm)
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )
    if synced or not (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and norm.training
        and y.shape[0] * y.shape[2] * y.shape[3] == 1
    ):
        return norm(y)
    if norm.running_mean is None or norm.running_var is None:
        raise ValueError(
            'ASPP image pooling: a batch norm without running statistics '
            '(track_running_stats=False) cannot normalise a training batch of '
            'one image (one value per channel); use batches of 2+ images, '
            'another norm (e.g. GN) or image_pooling=False'
        )
    return F.batch_norm(
        y,
        norm.running_mean,
        norm.running_var,
        norm.weight,
        norm.bias,
        training=False,
        eps=norm.eps,
    )


class ASPP(nn.Module):
    """DeepLabv3's ASPP (with image pooling) as a segmentation neck.

    Paper: https://arxiv.org/abs/1706.05587. Runs on one backbone output
    (``in_index``) and returns the backbone's tuple with that entry replaced
    by the ASPP output (``channels`` channels, same height and width for any
    input size), so auxiliary heads can still read the other levels.

    Args:
        in_channels (int): Channels of the selected backbone output.
        channels (int): Channels of every branch and of the output.
            Default: 256.
        dilations (Sequence[int]): Atrous rates, one branch each; 1 is a 1x1
            branch. Default: ``(1, 12, 24, 36)`` (see the module docstring).
        image_pooling (bool): Add the image-level-features branch.
            Default: True.
        dropout_ratio (float): Channel dropout after the fusing 1x1 conv;
            0 for none. Default: 0.
        in_index (int): Which backbone output to use; negative counts from
            the end. Default: -1 (the last).
        norm_layer (Callable[[int], nn.Module], optional): Norm in every
            branch and after the fusion. Default: ``nn.BatchNorm2d``.
        act_layer (Callable[[], nn.Module], optional): Activation after every
            norm. Default: ``nn.ReLU``.

    Trains at any batch size, one image included: see :class:`ASPPPooling`
    for how the image-level branch's batch norm handles a single image.

    Example:
        >>> import torch
        >>> neck = ASPP(32, channels=16).eval()
        >>> feats = (torch.rand(1, 8, 26, 38), torch.rand(1, 32, 13, 19))
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 8, 26, 38), (1, 16, 13, 19)]
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 256,
        dilations: Sequence[int] = (1, 12, 24, 36),
        image_pooling: bool = True,
        dropout_ratio: float = 0.0,
        in_index: int = -1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        check_int('in_channels', in_channels)
        check_int('channels', channels)
        if (
            isinstance(dilations, (str, bytes))
            or not isinstance(dilations, abc.Sequence)
            or not dilations
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1
                for d in dilations
            )
        ):
            raise ValueError(
                'dilations must be a non-empty sequence of ints >= 1 '
                f'(1 = a 1x1 branch), got {dilations!r}'
            )
        check_threshold('dropout_ratio', dropout_ratio)
        self.in_channels = in_channels
        self.channels = channels
        self.dilations = tuple(dilations)
        self.image_pooling = bool(image_pooling)
        self.in_index = check_in_index(in_index)

        self.branches = nn.ModuleList(
            ASPPConv(in_channels, channels, d, norm_layer, act_layer)
            for d in self.dilations
        )
        if self.image_pooling:
            self.branches.append(
                ASPPPooling(in_channels, channels, norm_layer, act_layer)
            )
        self.project = ASPPConv(
            len(self.branches) * channels, channels, 1, norm_layer, act_layer
        )
        self.dropout = (
            nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        )

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Run ASPP on ``inputs[in_index]``.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs, ``(N, C_i, H_i, W_i)``.

        Returns:
            tuple[Tensor]: ``inputs`` with entry ``in_index`` replaced by the
            ASPP output ``(N, channels, H, W)``.
        """
        inputs, index = select_input(inputs, self.in_index, self.in_channels)
        x = inputs[index]
        out = torch.cat([branch(x) for branch in self.branches], dim=1)
        out = self.dropout(self.project(out))
        return inputs[:index] + (out,) + inputs[index + 1 :]
