"""An mmengine hook that switches a Runner's test to the fast path."""

from typing import Any, Dict, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...inference import InferenceModel, optimize_for_inference

__all__ = ['FastInferenceHook']


class FastInferenceHook(Hook):
    """Run the test loop through :func:`optimize_for_inference`.

    The model is converted in ``before_test``, i.e. after the Runner has
    loaded the checkpoint (folding must see the trained statistics), and in
    place, so no second copy of the weights is kept. A distributed wrapper
    keeps wrapping the converted module. Used by ``tools/test.py --fast``;
    register an instance with ``runner.register_hook(FastInferenceHook())``.

    Args:
        dtype (str | torch.dtype): See :func:`resolve_dtype`.
            Default: ``'auto'``.
        channels_last (bool): Default: True.
        fold_bn (bool): Default: True.
        compile (bool | str | dict): Default: False.
    """

    priority = 'VERY_LOW'

    def __init__(
        self,
        dtype: Union[str, torch.dtype] = 'auto',
        channels_last: bool = True,
        fold_bn: bool = True,
        compile: Union[bool, str, Dict[str, Any]] = False,
    ) -> None:
        self.options = dict(
            dtype=dtype, channels_last=channels_last, fold_bn=fold_bn, compile=compile
        )

    def before_test(self, runner: Any) -> None:
        """Replace the runner's model by its fast-path version."""
        wrapper = runner.model if is_model_wrapper(runner.model) else None
        model = wrapper.module if wrapper is not None else runner.model
        if isinstance(model, InferenceModel):
            return
        fast = optimize_for_inference(model, inplace=True, **self.options)
        runner.logger.info(
            f'fast inference: {len(fast.folded_bn_pairs)} batch norms folded, '
            f'channels_last={fast.channels_last}, dtype={fast.dtype} '
            f'({fast.dtype_reason})'
        )
        if wrapper is not None:
            wrapper.module = fast
        else:
            runner.model = fast
