"""DRN backbones for MMSegmentation and mmpretrain configs.

``backbone=dict(type='DRN_C', depth=26)`` (also ``DRN_A``, ``DRN_B``,
``DRN_D``) in a config of either scope. These classes are thin adapters over
:class:`mmdrn.backbones.DRN`: they translate OpenMMLab's argument names
(``in_channels``, ``norm_cfg``, ``act_cfg``, ``with_cp`` ...), add mmengine's
``init_weights``, ``norm_eval`` and ``frozen_stages``, return the levels as a
tuple, and register the class. They have no classifier; their parameters and
``state_dict`` keys are the core DRN's (fyu/drn's), without ``fc``.
"""

import copy
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..backbones.drn import DRN
from ..backbones.drn_weights import load_drn_weights
from ..utils.validation import check_int, check_level_indices
from .layers import BN, RELU, InitConfigType, act_layer_factory, norm_layer_factory
from .registry import register_model

__all__ = ['DRN_A', 'DRN_B', 'DRN_C', 'DRN_D']


# The core class comes first in the bases: its ``super().__init__()`` then
# reaches ``BaseModule.__init__`` (with ``init_cfg=None``), and the adapter
# sets ``init_cfg`` afterwards.
class _DRNBackbone(DRN, BaseModule):
    """Common adapter of the four DRN families; see :class:`DRN_C`."""

    arch = ''

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        out_indices: Union[int, Sequence[int], None] = None,
        output_stride: int = 8,
        train_output_stride: Optional[int] = None,
        norm_cfg: dict = BN,
        act_cfg: dict = RELU,
        norm_eval: bool = False,
        frozen_stages: int = -1,
        with_cp: bool = False,
        init_cfg: InitConfigType = None,
    ) -> None:
        check_int('in_channels', in_channels)
        super().__init__(
            arch=self.arch,
            depth=depth,
            num_classes=0,
            in_chans=in_channels,
            output_stride=output_stride,
            train_output_stride=train_output_stride,
            global_pool='',
            norm_layer=norm_layer_factory(norm_cfg),
            act_layer=act_layer_factory(act_cfg),
        )
        self.init_cfg = copy.deepcopy(init_cfg)
        num_levels = len(self.level_names)
        out_indices = check_level_indices('out_indices', out_indices, num_levels)
        if (
            isinstance(frozen_stages, bool)
            or not isinstance(frozen_stages, int)
            or not -1 <= frozen_stages <= num_levels
        ):
            raise ValueError(
                f'frozen_stages must be an int in -1..{num_levels} (-1: none, 0: '
                f'the stem, k: the stem and levels 1..k), got {frozen_stages!r}'
            )
        self.out_indices = out_indices
        self.norm_eval = norm_eval
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = self.stem() + self.levels()[: self.frozen_stages]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> '_DRNBackbone':
        """Set the mode, keeping frozen stages and (``norm_eval``) norms in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def init_weights(self) -> None:
        """Apply ``init_cfg``; ``type='Pretrained'`` goes through the converter.

        A ``Pretrained`` checkpoint (optional ``prefix``) is read by
        :func:`~mmdrn.backbones.drn_weights.load_drn_weights`, any layout. Its
        classifier (``fc``, DRNSeg's ``seg``) is dropped, since the backbone
        has none; every other key must match.
        """
        cfgs = self.init_cfg
        if isinstance(cfgs, dict):
            cfgs = [cfgs]
        cfgs = list(cfgs or [])
        pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
        if not pretrained:
            super().init_weights()
            return
        if len(pretrained) > 1:
            raise ValueError(
                f'init_cfg may hold one Pretrained entry, got {len(pretrained)}'
            )
        original = self.init_cfg
        self.init_cfg = [c for c in cfgs if c.get('type') != 'Pretrained'] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        load_drn_weights(
            self,
            pretrained[0]['checkpoint'],
            skip_classifier=True,
            prefix=pretrained[0].get('prefix'),
        )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Outputs of the levels in ``out_indices``, in level order."""
        return tuple(
            self.forward_intermediates(
                x, indices=list(self.out_indices), intermediates_only=True
            )
        )


_ARGS_DOC = """
    Args:
        depth (int): {depths}.
        in_channels (int): Input image channels. Default: 3.
        out_indices (int | Sequence[int], optional): Increasing indices of
            the levels to return (negative counts from the end), or an int n
            for the last n levels, as in timm; None returns all {levels} (the
            last one is the final feature map). Default: None.
        output_stride (int): 8 (the paper), 16 or 32, with the same weights.
            Default: 8.
        train_output_stride (int, optional): Output stride the weights were
            trained at, when evaluating them at a smaller ``output_stride``
            (e.g. 16 -> 8): the trained function sampled densely. None: the
            paper's plan. Default: None.
        norm_cfg (dict): Norm layers (BN, SyncBN, GN ...).
            Default: ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activations. Default: ``dict(type='ReLU')``.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training
            (frozen statistics). Default: False.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            levels 1..k (eval mode, no gradients). Default: -1.
        with_cp (bool): Gradient checkpointing (per block), trading compute
            for memory; BatchNorm statistics are still updated once per step.
            Default: False.
        init_cfg (dict | list[dict], optional): mmengine init config;
            ``dict(type='Pretrained', checkpoint=PATH)`` accepts every layout
            of :mod:`mmdrn.backbones.drn_weights`. Default: None.
"""


@register_model()
class DRN_A(_DRNBackbone):
    arch = 'A'


@register_model()
class DRN_B(_DRNBackbone):
    arch = 'B'


@register_model()
class DRN_C(_DRNBackbone):
    arch = 'C'


@register_model()
class DRN_D(_DRNBackbone):
    arch = 'D'


DRN_A.__doc__ = """DRN-A backbone: a ResNet whose last two groups are dilated (2, 4).

    Paper: https://arxiv.org/abs/1705.09914. Returns 4 levels (output strides
    4, 8, 8, 8); torchvision ResNet weights of the same depth load unchanged.
""" + _ARGS_DOC.format(depths='18, 34, 50 or 101', levels='4 levels')
DRN_B.__doc__ = """DRN-B backbone: the degridding stage with residual levels 7 and 8.

    Paper: https://arxiv.org/abs/1705.09914. Returns 8 levels (output strides
    1, 2, 4, 8, 8, 8, 8, 8).
""" + _ARGS_DOC.format(depths='26 or 42', levels='8 levels')
DRN_C.__doc__ = (
    """DRN-C backbone (Yu, Koltun, Funkhouser, CVPR 2017).

    Paper: https://arxiv.org/abs/1705.09914. Returns 8 levels (output strides
    1, 2, 4, 8, 8, 8, 8, 8 at ``output_stride=8``).
"""
    + _ARGS_DOC.format(depths='26, 42 or 58', levels='8 levels')
    + """
    Example:
        >>> import torch
        >>> from mmseg.registry import MODELS
        >>> import mmdrn.openmmlab  # noqa: F401
        >>> drn = MODELS.build(dict(type='DRN_C', depth=26, out_indices=(3, 7)))
        >>> [tuple(o.shape) for o in drn(torch.rand(1, 3, 64, 64))]
        [(1, 128, 8, 8), (1, 512, 8, 8)]
"""
)
DRN_D.__doc__ = """DRN-D backbone: fyu/drn's variant with plain conv levels 1, 2, 7, 8.

    Paper: https://arxiv.org/abs/1705.09914. Returns 8 levels (output strides
    1, 2, 4, 8, 8, 8, 8, 8 at ``output_stride=8``).
""" + _ARGS_DOC.format(depths='22, 24, 38, 40, 54, 56, 105 or 107', levels='8 levels')
