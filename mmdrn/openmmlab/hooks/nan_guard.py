"""Stop training at the first NaN or Inf loss, before it is checkpointed.

mmengine trains on after a diverged loss, and every later checkpoint holds a
broken model; docs/reliability.md (section 4) has the guarantee. mmengine's
``CheckInvalidLossHook`` checks only the total, with an ``assert``, on one
rank.
"""

from typing import Any, Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from ...utils.validation import check_int
from ..registry import register_hook

__all__ = ['NaNGuardHook', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """A loss term was NaN or infinite; training was stopped."""


@register_hook()
class NaNGuardHook(Hook):
    """Raise :class:`NonFiniteLossError` when a loss term is NaN or Inf.

    Every entry of the iteration's outputs whose name contains ``'loss'`` is
    checked (accuracies are not). The ranks of a distributed run agree
    through one all-reduce, so they all stop at the same iteration.

    Args:
        interval (int): Check every ``interval`` iterations. Default: 1.

    Example:
        >>> custom_hooks = [dict(type='NaNGuardHook')]  # in a config
    """

    # Above the LoggerHook, ParamSchedulerHook and CheckpointHook: nothing of
    # the broken iteration is saved.
    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        self.interval = check_int('interval', interval)

    def after_train_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Check the loss terms of the iteration that just ran."""
        if not self.every_n_train_iters(runner, self.interval):
            return
        # the terms first, their total ('loss') last
        terms = sorted((outputs or {}).items(), key=lambda item: item[0] == 'loss')
        bad = [
            f'{name}={torch.as_tensor(value).tolist()}'
            for name, value in terms
            if 'loss' in name and not torch.isfinite(torch.as_tensor(value)).all()
        ]
        flag = torch.tensor([float(bool(bad))])
        if get_world_size() > 1:
            all_reduce(flag, op='sum')
        if not flag.item():
            return
        what = ', '.join(bad) if bad else f'on {int(flag.item())} other rank(s)'
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += (
                f' (epoch {runner.epoch + 1}, iteration {batch_idx + 1} of the epoch)'
            )
        raise NonFiniteLossError(
            f'non-finite loss {what} at {where}; training '
            f'stopped before anything of this iteration was checkpointed. Resume '
            f'from the last checkpoint with a lower learning rate or gradient '
            f'clipping (optim_wrapper.clip_grad), or check the data of this '
            f'iteration.'
        )
