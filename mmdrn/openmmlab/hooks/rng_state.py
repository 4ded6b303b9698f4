"""Bit-exact resume: training checkpoints that carry the random state.

mmengine seeds the global generators once and a checkpoint records only the
seed, so a resumed run's dropout draws other numbers than an uninterrupted
run's. :class:`RNGStateHook` stores every rank's generator states in
``checkpoint['rng_state']`` and restores them where the uninterrupted run
stood. docs/reliability.md (section 10) states the guarantee, how it works,
how it is tested and what stays out of reach.
"""

import logging
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from ..registry import register_hook

__all__ = ['RNG_STATE_KEY', 'RNGStateHook', 'capture_rng_state', 'restore_rng_state']

#: The checkpoint entry that holds the random state.
RNG_STATE_KEY = 'rng_state'
_VERSION = 1
_NOT_EXACT = 'the continuation is not bit-exact'


def _cuda_in_use() -> bool:
    # Without initialising CUDA in a CPU run on a machine with a GPU.
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture_rng_state() -> Dict[str, Any]:
    """The state of torch's, numpy's and Python's global generators.

    Returns:
        dict: ``torch`` (and ``cuda``, for the current device, when CUDA is in
        use): uint8 tensors; ``numpy``: its MT19937 keys as an int64 tensor
        with ``pos``, ``has_gauss`` and ``cached_gaussian``; ``random``: its
        version, internal state as an int64 tensor and ``gauss_next``. A
        ``weights_only=True`` ``torch.load`` reads all of it.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    if kind != 'MT19937':  # numpy's only legacy generator so far
        raise RuntimeError(f'unexpected numpy generator {kind!r}')
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached),
        ),
        random=dict(
            version=version,
            internal=torch.tensor(internal, dtype=torch.int64),
            gauss_next=gauss_next,
        ),
    )
    if _cuda_in_use():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Set the global generators to a :func:`capture_rng_state` result.

    Tensors may be on any device (a resumed checkpoint is loaded onto the
    training device). A CUDA state is restored when CUDA is in use here.
    """
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and _cuda_in_use():
        torch.cuda.set_rng_state(state['cuda'].cpu())
    numpy = state['numpy']
    np.random.set_state(
        (
            'MT19937',
            numpy['keys'].cpu().numpy().astype(np.uint32),
            numpy['pos'],
            numpy['has_gauss'],
            numpy['cached_gaussian'],
        )
    )
    rand = state['random']
    internal = tuple(int(v) for v in rand['internal'].tolist())
    random.setstate((rand['version'], internal, rand['gauss_next']))


def _loader_settings(runner: Any) -> Dict[str, Any]:
    """What the replay of the training data depends on, besides the position."""
    loader = runner.train_dataloader
    sampler = getattr(loader, 'batch_sampler', None)
    sampler = getattr(sampler, 'sampler', None) or getattr(loader, 'sampler', None)
    return dict(
        seed=runner.seed,
        sampler_seed=getattr(sampler, 'seed', None),
        batch_size=getattr(loader, 'batch_size', None),
        num_workers=getattr(loader, 'num_workers', 0),
        cuda=_cuda_in_use(),
    )


def _warn(message: str) -> None:
    print_log(f'RNGStateHook: {message}', 'current', logging.WARNING)


class _RestoreBeforeFetch:
    """Stands in for an ``IterBasedTrainLoop``'s data iterator: passes
    ``skip`` fetches through (mmengine's replay of the data already trained
    on), then puts the loop's iterator back, restores the random state and
    fetches the first new batch."""

    def __init__(self, loop: IterBasedTrainLoop, skip: int, state: Dict) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._skip = skip
        self._state = state

    def __iter__(self) -> '_RestoreBeforeFetch':
        return self

    def __next__(self) -> Any:
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._loop.dataloader_iterator = self._iterator
        restore_rng_state(self._state)
        return next(self._iterator)


@register_hook()
class RNGStateHook(Hook):
    """Save the random state in every checkpoint; restore it on resume.

    With it, a run resumed from a checkpoint of iteration ``k`` (periodic,
    or saved at a pre-emption signal) ends with the weights of a run that
    was never interrupted, bit for bit, on the same machine and software.

    A checkpoint without the state, from another number of processes, or
    from the middle of an epoch of an epoch-based loop is resumed as
    mmengine resumes it (fresh seeding), with one warning; one whose data
    loader settings differ is restored, with a warning naming them.

    Example:
        >>> custom_hooks = [dict(type='RNGStateHook')]  # in a config
    """

    # After every hook that may draw random numbers in after_train_iter,
    # before the CheckpointHook (VERY_LOW) and the PreemptionHook (LOWEST)
    # save the iteration.
    priority = 'LOW'

    def __init__(self) -> None:
        self._settings: Optional[Dict[str, Any]] = None
        self._record: Optional[Dict[str, Any]] = None
        self._loaded: Optional[Dict[str, Any]] = None
        self._val_state: Optional[Dict[str, Any]] = None

    # --- saving -----------------------------------------------------------

    def before_train(self, runner: Any) -> None:
        """Note the data loader settings (stored, and compared on resume)."""
        self._settings = _loader_settings(runner)

    def after_train_iter(
        self,
        runner: Any,
        batch_idx: int,
        data_batch: Any = None,
        outputs: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Record every rank's state at the end of the iteration."""
        self._capture(runner, runner.iter + 1)

    def after_train_epoch(self, runner: Any) -> None:
        """Record again at an epoch's end, where epoch-based loops save."""
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            self._capture(runner, runner.iter)

    def _capture(self, runner: Any, step: int) -> None:
        ranks = all_gather_object(capture_rng_state())
        self._record = dict(
            version=_VERSION,
            iter=step,
            epoch=runner.epoch,
            world_size=len(ranks),
            loader=dict(self._settings or _loader_settings(runner)),
            ranks=ranks,
        )

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Add the record of the saved iteration to ``checkpoint``."""
        step = checkpoint.get('meta', {}).get('iter')
        if self._record is not None and self._record['iter'] == step:
            checkpoint[RNG_STATE_KEY] = self._record
        else:
            _warn(
                f'the checkpoint of iteration {step} is saved outside a training '
                f'iteration and carries no random state: resuming from it, '
                f'{_NOT_EXACT}'
            )

    # --- validation leaves training's random numbers alone -------------------

    def before_val(self, runner: Any) -> None:
        """Keep the state training has reached."""
        self._val_state = capture_rng_state()

    def after_val(self, runner: Any) -> None:
        """Put back the state training had before validation."""
        if self._val_state is not None:
            restore_rng_state(self._val_state)
            self._val_state = None

    # --- resuming -----------------------------------------------------------

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Keep the checkpoint's record until training shows it resumes."""
        meta = checkpoint.get('meta', {})
        self._loaded = dict(iter=meta.get('iter'), record=checkpoint.get(RNG_STATE_KEY))

    def before_train_epoch(self, runner: Any) -> None:
        """On resume, arrange for the state to come back where it was saved."""
        loaded, self._loaded = self._loaded, None
        # A load_from checkpoint (the loop starts at 0) is not a resume.
        if loaded is None or not runner.iter or loaded['iter'] != runner.iter:
            return
        state = self._state_to_restore(runner, loaded['record'])
        if state is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreBeforeFetch(loop, runner.iter, state)
        elif runner.iter != runner.epoch * len(loop.dataloader):
            _warn(
                f'the checkpoint of iteration {runner.iter} was saved in the middle '
                f'of epoch {runner.epoch + 1}, which mmengine restarts from its '
                f'first batch: the random state is not restored and {_NOT_EXACT}'
            )
        else:
            if getattr(loop.dataloader, 'persistent_workers', False):
                _warn(
                    "the data loader's worker processes persist across epochs "
                    '(persistent_workers=True), so their random state at the end of '
                    f"epoch {runner.epoch} is lost; the main process's is restored, "
                    f'but {_NOT_EXACT}'
                )
            restore_rng_state(state)

    def _state_to_restore(
        self, runner: Any, record: Optional[Dict[str, Any]]
    ) -> Optional[Dict[str, Any]]:
        """This rank's saved state, or None (with a warning) if it must not be used."""
        if record is None:
            _warn(
                'the checkpoint carries no random state (saved without this hook): '
                f'training goes on with fresh seeding and {_NOT_EXACT}'
            )
            return None
        if record.get('version') != _VERSION:
            _warn(
                f"the checkpoint's random state has format {record.get('version')!r}, "
                f'this version reads {_VERSION}: it is not restored and {_NOT_EXACT}'
            )
            return None
        world_size = get_world_size()
        if record['world_size'] != world_size:
            _warn(
                f'the checkpoint was saved by {record["world_size"]} processes, this '
                f'run has {world_size}: the random state is not restored (fresh '
                f'seeding) and {_NOT_EXACT}'
            )
            return None
        changes = _differences(record['loader'], self._settings or {})
        if changes:
            _warn(
                f"the data loader settings differ from the checkpoint's "
                f'({"; ".join(changes)}): the random state is restored, but '
                f'{_NOT_EXACT}'
            )
        return record['ranks'][get_rank()]


def _differences(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    return [
        f'{key}: {saved.get(key)!r} then, {current.get(key)!r} now'
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]
