"""``--resume``: one rule for named files, the latest checkpoint, and the end.

* ``--resume FILE``: ``FILE`` must be a complete mmengine training checkpoint
  (a dict with ``meta`` and ``state_dict``). A missing file, a directory, a
  truncated or unreadable file, or a plain state dict is an error that names
  it; to start from a plain state dict, use ``load_from``.
* ``--resume`` alone (``'auto'``): the newest complete training checkpoint of
  the work dir, trying the file ``last_checkpoint`` names first and then the
  ``*.pth`` files from the newest; each file skipped on the way (missing,
  truncated, foreign) is named in a warning. Without one, the run says that
  it starts from scratch and does so: mmengine is told not to resume, so it
  does not follow a ``last_checkpoint`` pointer to a file that is gone.
* Either way, a checkpoint saved at or past the end of the schedule
  (``train_cfg.max_iters`` / ``max_epochs``) is an error that says so,
  instead of a run that silently trains nothing.

Temporary files that a killed save left (see
:func:`~mmdrn.utils.file_io.remove_stale_temp_files`) are removed from the
work dir first; their names never end in ``.pth``, so they are never taken
for checkpoints.
"""

import glob
import logging
import os
import zipfile
from typing import List, Optional, Union

from mmengine.config import Config
from mmengine.logging import print_log

from ...utils import CheckpointError, load_file
from ...utils.file_io import remove_stale_temp_files

__all__ = [
    'check_schedule_left',
    'find_resumable_checkpoint',
    'inspect_training_checkpoint',
    'setup_resume',
]

PathLike = Union[str, os.PathLike]


def inspect_training_checkpoint(path: PathLike) -> dict:
    """The ``meta`` of an mmengine training checkpoint, or an error saying why not.

    Tensors are memory-mapped, not read, where the file format allows, so
    this costs little even for large checkpoints.

    Args:
        path (str | PathLike): The file.

    Returns:
        dict: The checkpoint's ``meta`` (``epoch``, ``iter``, ...).

    Raises:
        CheckpointError: The path is missing, a directory, truncated,
            unreadable, or holds no ``meta``/``state_dict`` (a plain state
            dict); the message names the path.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(
            f'{path!r} is a directory, not a checkpoint; name a file in it, or '
            f'give --resume without a value to resume from the newest complete '
            f'checkpoint of the work dir'
        )
    if not os.path.exists(path):
        raise CheckpointError(f'checkpoint {path!r} does not exist')
    # torch.save's zip format can be memory-mapped; anything else is read
    # whole (and load_file explains what is wrong with it).
    checkpoint = load_file(path, mmap=zipfile.is_zipfile(path))
    entries = checkpoint if isinstance(checkpoint, dict) else {}
    lacks = [k for k in ('meta', 'state_dict') if not isinstance(entries.get(k), dict)]
    if lacks:
        raise CheckpointError(
            f'{path!r} is not an mmengine training checkpoint (no '
            f'{" and no ".join(repr(k) for k in lacks)} entry; first keys: '
            f'{list(entries)[:4]}): there is no optimizer state or iteration to '
            f'resume from. To start a training from its weights, use load_from '
            f'(--cfg-options load_from={path}) instead of --resume'
        )
    return checkpoint['meta']


def _candidates(work_dir: str) -> List[str]:
    """The pointer's file first, then ``*.pth`` newest first."""
    named = []
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer):
        with open(pointer, encoding='utf-8') as f:
            text = f.read().strip()
        if text:
            named.append(text)
        else:
            print_log(
                f'--resume: {pointer} is empty (a run killed while writing it); '
                f'looking for the newest checkpoint',
                'current',
                logging.WARNING,
            )
    # glob skips hidden files, and so the temporary files of saves
    files = sorted(
        glob.glob(os.path.join(glob.escape(work_dir), '*.pth')),
        key=os.path.getmtime,
        reverse=True,
    )
    return named + [f for f in files if f not in named]


def find_resumable_checkpoint(work_dir: PathLike) -> Optional[str]:
    """The checkpoint ``--resume`` without a value resumes from.

    Args:
        work_dir (str | PathLike): The training's work directory.

    Returns:
        str | None: The newest complete training checkpoint (the file named
        by ``work_dir/last_checkpoint`` if that is one), or None. Every file
        skipped on the way is named in a warning, with the reason.
    """
    for path in _candidates(os.path.abspath(work_dir)):
        try:
            inspect_training_checkpoint(path)
        except CheckpointError as err:
            print_log(f'--resume: skipping {path}: {err}', 'current', logging.WARNING)
            continue
        return path
    return None


def check_schedule_left(cfg: Config, path: str, meta: dict) -> None:
    """Refuse to resume a checkpoint saved at or past the end of training.

    Args:
        cfg (Config): The config (``train_cfg``: ``max_iters`` for
            iteration-based, ``max_epochs`` for epoch-based loops).
        path (str): The checkpoint, named in the message.
        meta (dict): Its ``meta``.

    Raises:
        ValueError: Nothing is left to train.
    """
    train_cfg = cfg.get('train_cfg') or {}
    for unit, field in (('iter', 'max_iters'), ('epoch', 'max_epochs')):
        end = train_cfg.get(field)
        done = meta.get(unit)
        if isinstance(end, int) and isinstance(done, int) and done >= end:
            word = 'iteration' if unit == 'iter' else 'epoch'
            raise ValueError(
                f'--resume: {path!r} was saved after {word} {done} and the '
                f'config ends at train_cfg.{field}={end}: the training is '
                f'complete, nothing is left to resume. To train longer, raise it '
                f'(--cfg-options train_cfg.{field}=N)'
            )


def setup_resume(cfg: Config, resume: Optional[str]) -> None:
    """Translate ``--resume [CHECKPOINT]`` by the rule of this module.

    Args:
        cfg (Config): The config, changed in place; ``cfg.work_dir`` must be
            set.
        resume (str, optional): ``None`` (no resuming), ``'auto'`` or a
            checkpoint path.

    Raises:
        CheckpointError: A named checkpoint that cannot be resumed from.
        ValueError: The checkpoint is at or past the end of the schedule.
    """
    if resume is None:
        return
    work_dir = os.path.abspath(cfg.work_dir)
    for path in remove_stale_temp_files(work_dir):
        print_log(
            f'--resume: removed {path}, left by a save that was interrupted',
            'current',
            logging.WARNING,
        )
    if resume == 'auto':
        resume = find_resumable_checkpoint(work_dir)
        if resume is None:
            print_log(
                f'--resume: no complete checkpoint in {work_dir}: training '
                f'starts from scratch',
                'current',
                logging.WARNING,
            )
            # mmengine would otherwise look up work_dir/last_checkpoint itself
            cfg.resume = False
            return
    check_schedule_left(cfg, resume, inspect_training_checkpoint(resume))
    cfg.resume = True
    cfg.load_from = resume
