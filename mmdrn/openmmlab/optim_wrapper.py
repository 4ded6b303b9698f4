"""Mixed-precision training on CPU.

mmengine's ``AmpOptimWrapper`` asserts that a GPU is present, so ``--amp``
needs its own wrapper on CPU. It autocasts to bfloat16, which keeps
float32's exponent range, so gradients need no loss scaling and the wrapper
is the plain ``OptimWrapper`` run inside ``torch.autocast``. Whether bfloat16
is faster than float32 depends on the CPU; ``--amp`` (``auto``) picks this
wrapper only where it was measured faster (:func:`mmdrn.openmmlab.runtime.setup_amp`).
"""

from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

__all__ = ['CPUAmpOptimWrapper']


# Optimizer wrappers are looked up in mmengine's root registry from both the
# mmseg and the mmpretrain scope, so one registration serves both.
@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run in bfloat16 on CPU.

    Configs name it as ``optim_wrapper=dict(type='CPUAmpOptimWrapper',
    optimizer=...)``; it takes the arguments of
    :class:`mmengine.optim.OptimWrapper`.

    Example:
        >>> model = nn.Conv2d(3, 4, 1)
        >>> wrapper = CPUAmpOptimWrapper(
        ...     optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        >>> with wrapper.optim_context(model):
        ...     print(model(torch.rand(1, 3, 2, 2)).dtype)
        torch.bfloat16
    """

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of the parent, plus bf16 autocast.

        Args:
            model (nn.Module): The training model.
        """
        with super().optim_context(model), torch.autocast('cpu', torch.bfloat16):
            yield
