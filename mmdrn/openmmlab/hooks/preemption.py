"""Graceful pre-emption: save a resumable checkpoint when the job is told to stop.

mmengine does not handle the signal a scheduler sends before it kills a job,
so everything since the last periodic checkpoint is lost.
docs/reliability.md (section 5) has the guarantee and the launchers.
"""

import logging
import os
import os.path as osp
import signal
from typing import Any, Dict, Optional, Sequence, Union

import torch
from mmengine.dist import all_reduce, barrier, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from ...utils.file_io import atomic_write
from ...utils.validation import check_int
from ..registry import register_hook

__all__ = [
    'PREEMPTED_EXIT_CODE',
    'PREEMPTED_MARKER_ENV',
    'PreemptionHook',
    'TrainingPreempted',
    'parse_signal',
]

PREEMPTED_EXIT_CODE = 75
#: Environment variable naming a file that rank 0 writes the checkpoint's
#: path into when training is pre-empted (for the launching script).
PREEMPTED_MARKER_ENV = 'MMDRN_PREEMPTED_MARKER'
SignalLike = Union[str, int, signal.Signals]
# Cannot be caught (SIGKILL, SIGSTOP) or mean a crash in progress.
_UNCATCHABLE = ('SIGKILL', 'SIGSTOP', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL')


class TrainingPreempted(SystemExit):
    """Training stopped at a pre-emption signal after saving a checkpoint.

    A ``SystemExit``: uncaught, it ends the interpreter with
    ``exit_code`` (default :data:`PREEMPTED_EXIT_CODE`) and no traceback.

    Attributes:
        checkpoint (str): The checkpoint to resume from.
        signal_name (str): The signal that stopped training.
    """

    def __init__(self, message: str, checkpoint: str, signal_name: str, code: int):
        super().__init__(code)
        self.message = message
        self.checkpoint = checkpoint
        self.signal_name = signal_name

    def __str__(self) -> str:
        return self.message


def parse_signal(value: SignalLike) -> signal.Signals:
    """The signal named by ``value``: ``'SIGUSR1'``, ``'USR1'``, ``'usr1'``, 10 or '10'.

    Raises:
        ValueError: No such signal on this platform, or one that cannot be
            caught (SIGKILL, SIGSTOP) or signals a crash (SIGSEGV...).
        TypeError: ``value`` is neither a str nor an int.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f'a signal must be a name such as "SIGTERM" or "USR1", or a number, '
            f'got {value!r} of type {type(value).__name__}'
        )
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    try:
        if isinstance(value, str):
            name = value.strip().upper()
            sig = signal.Signals[name if name.startswith('SIG') else 'SIG' + name]
        else:
            sig = signal.Signals(value)
    except (KeyError, ValueError):
        known = sorted(s.name for s in signal.Signals if s.name not in _UNCATCHABLE)
        raise ValueError(
            f'unknown signal {value!r}; signals here: {", ".join(known)}'
        ) from None
    if sig.name in _UNCATCHABLE:
        raise ValueError(
            f'{sig.name} cannot be used to request a checkpoint: it cannot be '
            f'caught or signals a crash; use e.g. SIGTERM, SIGUSR1 or SIGUSR2'
        )
    return sig


@register_hook()
class PreemptionHook(Hook):
    """Save a checkpoint and exit with a requeue status on SIGTERM (or others).

    The signal handlers are installed when the hook is built, i.e. before
    the Runner starts its dataloader workers: the workers inherit them, so a
    signal sent to the whole job (slurm signals every process of a job step)
    does not kill them. A handler only records the signal; the hook acts
    after the training iteration in progress:

    1. all ranks learn whether any of them received a signal (one
       all-reduce of a flag per ``interval`` iterations);
    2. the checkpoint of this iteration is saved, unless the
       ``CheckpointHook`` has just saved it, and ``last_checkpoint`` names it;
    3. the ranks wait for the write to finish, and :class:`TrainingPreempted`
       ends the process with ``exit_code``.

    A signal during the last iteration lets training finish normally (the
    ``CheckpointHook`` saves the last iteration). The previous handlers come
    back when training ends.

    Args:
        signals (Sequence[str | int]): Signals that request a checkpoint and
            a stop, e.g. ``['SIGTERM', 'SIGUSR1']``. Default: ``('SIGTERM',)``.
        exit_code (int): Exit status after the checkpoint, 1..255.
            Default: :data:`PREEMPTED_EXIT_CODE` (75).
        interval (int): Check every ``interval`` iterations (the all-reduce
            costs one tiny collective; a signal then waits up to
            ``interval`` iterations). Default: 1.

    Example:
        >>> custom_hooks = [dict(type='PreemptionHook', signals=['SIGUSR1'])]
    """

    # After the CheckpointHook (VERY_LOW) of the same iteration, whose save
    # is then reused, and after the NaNGuardHook: a diverged iteration is
    # never saved.
    priority = 'LOWEST'

    def __init__(
        self,
        signals: Sequence[SignalLike] = ('SIGTERM',),
        exit_code: int = PREEMPTED_EXIT_CODE,
        interval: int = 1,
    ) -> None:
        if isinstance(signals, (str, int)):
            signals = [signals]
        if not isinstance(signals, (list, tuple)):
            raise TypeError(
                f'signals must be a list of signal names or numbers, got {signals!r}'
            )
        if check_int('exit_code', exit_code) > 255:
            raise ValueError(f'exit_code must be in 1..255, got {exit_code}')
        self.signals = tuple(dict.fromkeys(parse_signal(s) for s in signals))
        self.exit_code = exit_code
        self.interval = check_int('interval', interval)
        self.received: Optional[signal.Signals] = None
        self._previous: Dict[signal.Signals, Any] = {}
        self._install()

    def _install(self) -> None:
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError as err:  # not the main thread of the interpreter
                print_log(
                    f'PreemptionHook: cannot handle {sig.name} ({err}); a '
                    f'{sig.name} will stop training without a checkpoint',
                    'current',
                    logging.WARNING,
                )

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only record: the iteration in progress must finish consistently.
        if self.received is None:
            self.received = signal.Signals(signum)

    def after_run(self, runner: Any) -> None:
        """Put the previous signal handlers back."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def after_train_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Save and stop if any rank has received one of the signals.

        Raises:
            TrainingPreempted: After the checkpoint is complete.
        """
        if not self.every_n_train_iters(runner, self.interval):
            return
        ranks = int(self.received is not None)
        if get_world_size() > 1:
            flag = torch.tensor([float(ranks)])
            all_reduce(flag, op='sum')
            ranks = int(flag.item())
        if not ranks:
            return
        step = runner.iter + 1
        name = self.received.name if self.received is not None else 'a signal'
        if step >= runner.max_iters:
            print_log(
                f'{name} received during the last iteration: training completes',
                'current',
                logging.WARNING,
            )
            return
        print_log(
            f'{name} received: saving the checkpoint of iteration {step} and stopping',
            'current',
            logging.WARNING,
        )
        path = self._save(runner, step)
        marker = os.environ.get(PREEMPTED_MARKER_ENV)
        if marker and is_main_process():
            atomic_write(marker, path)
        barrier()  # nobody exits (and gets the job torn down) mid-write
        message = (
            f'training pre-empted by {name} after iteration {step}; resume '
            f'from {path} with tools/train.py CONFIG --resume (exit status '
            f'{self.exit_code})'
        )
        print_log(message, 'current', logging.WARNING)
        raise TrainingPreempted(message, path, name, self.exit_code)

    def _save(self, runner: Any, step: int) -> str:
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        out_dir = hook.out_dir if hook is not None else runner.work_dir
        filename = f'iter_{step}.pth'
        if hook is not None and not hook.by_epoch:
            filename = hook.filename_tmpl.format(step)
        path = osp.join(out_dir, filename)
        if runner.message_hub.get_info('last_ckpt') == path:
            return path  # the CheckpointHook has just saved this iteration
        # Public calls only: the file is not added to the CheckpointHook's
        # max_keep_ckpts list, so that hook never deletes it.
        runner.save_checkpoint(
            out_dir, filename, meta=dict(epoch=runner.epoch, iter=step), by_epoch=False
        )
        runner.message_hub.update_info('last_ckpt', path)
        if is_main_process():
            atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), path)
        return path
