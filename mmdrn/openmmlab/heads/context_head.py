"""``ContextHead``: a front-end classifier followed by the context module (MMSeg).

F. Yu and V. Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016 (https://arxiv.org/abs/1511.07122), arranged as in
its official code (github.com/fyu/dilation, ``network.py``): the front-end's
1x1 classifier makes ``K`` class score maps, the context module refines them,
and its own closing 1x1 layer gives the logits; nothing follows it. Here the
classifier is the head's ``conv_seg`` (the key of a plain FCN head, so a
trained front-end loads by name) and the module ``self.context``
(:class:`mmdrn.necks.ContextModule` on ``K`` channels), so a freshly built
head computes exactly ``relu(conv_seg(x))``.

Example:
    >>> import torch
    >>> head = ContextHead(in_channels=16, num_classes=5, num_layers=8)
    >>> print(head((torch.randn(1, 16, 8, 8),)).shape)
    torch.Size([1, 5, 8, 8])
"""

from typing import Tuple

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from ...necks.context_module import ContextModule
from ..registry import register_model

__all__ = ['ContextHead']


@register_model('mmseg')
class ContextHead(BaseDecodeHead):
    """Front-end 1x1 classifier + context module (Yu & Koltun, ICLR 2016).

    Args:
        in_channels (int): Channels of the backbone output it reads.
        num_classes (int): ``K``, the classes; the module runs on ``K``
            channels (``C = K`` in the paper's notation).
        variant (str): ``'basic'`` or ``'large'`` module. Default: ``'basic'``.
        num_layers (int): 8 (the paper's module) or 10 (the official
            Cityscapes module). Default: 8.
        init_noise (float): Noise of the large variant's identity
            initialisation, relative to its scale. Default: 1e-3.
        **kwargs: The other arguments of MMSeg's ``BaseDecodeHead``
            (``in_index``, ``dropout_ratio``, ``loss_decode``, ``norm_cfg``,
            ``align_corners``, ``init_cfg`` ...). ``channels`` is
            ``in_channels``: the classifier reads the backbone output
            directly.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        variant: str = 'basic',
        num_layers: int = 8,
        init_noise: float = 1e-3,
        **kwargs,
    ) -> None:
        if 'channels' in kwargs and kwargs['channels'] != in_channels:
            raise ValueError(
                'ContextHead has no layers before its classifier: channels must '
                f'equal in_channels ({in_channels}), got {kwargs["channels"]!r}'
            )
        kwargs.pop('channels', None)
        super().__init__(in_channels, in_channels, num_classes=num_classes, **kwargs)
        self.context = ContextModule(
            self.out_channels,
            variant=variant,
            num_layers=num_layers,
            init_noise=init_noise,
        )

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tensor:
        """Logits ``N x K x h x w`` of the backbone output ``inputs[in_index]``."""
        scores = self.cls_seg(self._transform_inputs(inputs))
        return self.context((scores,))[0]
