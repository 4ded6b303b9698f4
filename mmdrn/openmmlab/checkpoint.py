"""Checkpoints for tools: strict fitting, and what ``--resume`` resumes from.

mmengine loads ``load_from`` non-strictly, so a checkpoint of another model
gives a partly initialised model and a metric that looks like a result:
:func:`check_fit` refuses a checkpoint that does not fit, naming the keys
(docs/reliability.md, section 8). :func:`setup_resume` gives ``--resume``
one rule for named files, the latest checkpoint and the end of the schedule
(section 9).
"""

import glob
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import load_state_dict
from mmengine.runner.checkpoint import CheckpointLoader

from ..backbones.drn_weights import detect_layout
from ..utils import CheckpointError, PathLike, load_file
from ..utils.file_io import remove_stale_temp_files
from ..utils.validation import format_names
from .compat import mmengine_checkpoints_allowed

__all__ = [
    'CheckpointMismatchError',
    'LoadReport',
    'check_fit',
    'find_resumable_checkpoint',
    'inspect_training_checkpoint',
    'load_checkpoint_strict',
    'setup_resume',
]

_CONVERTER = 'tools/model_converters/convert_checkpoint.py'


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or tensor shapes do not fit the model."""


@dataclass
class LoadReport:
    """How a checkpoint fits a model.

    Attributes:
        missing (list[str]): Model keys the checkpoint lacks.
        unexpected (list[str]): Checkpoint keys the model lacks.
        reshaped (list[str]): Keys of both with both shapes, e.g.
            ``'decode_head.conv_seg.bias (checkpoint [7], model [19])'``.
        loaded (int): Model tensors the checkpoint provides in the right shape.
    """

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    reshaped: List[str] = field(default_factory=list)
    loaded: int = 0

    @property
    def fits(self) -> bool:
        """Every model key is in the checkpoint with its shape, nothing else."""
        return not (self.missing or self.unexpected or self.reshaped)

    def summary(self) -> str:
        """One line per kind of mismatch; empty when the checkpoint fits."""
        kinds = (
            (
                self.missing,
                'model keys missing from the checkpoint (left at their initialisation)',
            ),
            (self.reshaped, 'of another shape (not loaded)'),
            (self.unexpected, 'checkpoint keys the model does not have (ignored)'),
        )
        return '\n'.join(
            f'{len(keys)} {what}: {format_names(keys, 8)}'
            for keys, what in kinds
            if keys
        )


def _unwrap(model: nn.Module) -> nn.Module:
    # As mmengine's load_state_dict: the weights are those of the inner model.
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def _model_state(checkpoint: Mapping) -> Mapping[str, Any]:
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f'expected a state dict, got {type(state).__name__} under state_dict'
        )
    # mmengine strips DataParallel's prefix before loading
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def _advice(state: Mapping[str, Any]) -> str:
    """How to turn a plain DRN network (fyu/drn, pytorchcv) into a model checkpoint."""
    if any(k.startswith(('backbone.', 'decode_head.')) for k in state):
        return ''
    try:
        layout = detect_layout(state)
    except CheckpointError:
        return ''
    return (
        f' The file holds a plain DRN network in {layout!r} layout, not an '
        f'OpenMMLab model: convert it with `python {_CONVERTER} FILE OUT.pth '
        f'--target mmseg --model NAME` (its drn_* name, e.g. drn_d_22; or '
        f"--target mmpretrain) and train from OUT.pth (load_from, or the backbone's "
        f"init_cfg=dict(type='Pretrained', checkpoint=OUT.pth, prefix='backbone.'))."
    )


def check_fit(
    model: nn.Module,
    checkpoint: Mapping,
    filename: str = 'the checkpoint',
    allow_partial: bool = False,
) -> LoadReport:
    """Compare a checkpoint with a model; refuse it unless it fits.

    Args:
        model (nn.Module): The model (distributed/TTA wrappers are looked
            through, as mmengine does when loading).
        checkpoint (Mapping): A state dict, or a dict holding one under
            ``state_dict``; DataParallel's ``module.`` prefix is ignored.
        filename (str): Named in the error. Default: ``'the checkpoint'``.
        allow_partial (bool): Return the report of a checkpoint that does not
            fit instead of raising. Default: False.

    Returns:
        LoadReport: What fits and what does not.

    Raises:
        CheckpointMismatchError: The checkpoint does not fit and
            ``allow_partial`` is False.
    """
    state = _model_state(checkpoint)
    reference = {k: tuple(v.shape) for k, v in _unwrap(model).state_dict().items()}
    given = {k: tuple(getattr(v, 'shape', ())) for k, v in state.items()}
    report = LoadReport(
        missing=[k for k in reference if k not in given],
        unexpected=[k for k in given if k not in reference],
        reshaped=[
            f'{k} (checkpoint {list(given[k])}, model {list(shape)})'
            for k, shape in reference.items()
            if k in given and given[k] != shape
        ],
    )
    report.loaded = len(reference) - len(report.missing) - len(report.reshaped)
    if report.fits or allow_partial:
        return report
    raise CheckpointMismatchError(
        f'{filename} does not fit the model of the config:\n{report.summary()}\n'
        f'Check that checkpoint and config belong together.{_advice(state)} To '
        f'use a partly loaded model anyway, allow a partial load (tools: '
        f'--allow-partial-load).'
    )


def load_checkpoint_strict(
    model: nn.Module,
    filename: str,
    allow_partial: bool = False,
    map_location: Any = 'cpu',
) -> LoadReport:
    """Load a checkpoint file into a model, refusing one that does not fit.

    Args:
        model (nn.Module): The model (wrappers are looked through).
        filename (str): The file, read by mmengine's ``CheckpointLoader``
            (``drn://`` and every other scheme work).
        allow_partial (bool): Load the tensors that fit and leave the rest at
            its initialisation instead of raising. Default: False.
        map_location (Any): Where tensors are loaded. Default: ``'cpu'``.

    Returns:
        LoadReport: Empty lists when everything was loaded.

    Raises:
        CheckpointMismatchError: From :func:`check_fit`, before anything is
            loaded.
    """
    with mmengine_checkpoints_allowed():
        checkpoint = CheckpointLoader.load_checkpoint(filename, map_location)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'{filename!r} holds a {type(checkpoint).__name__}, not a state dict'
        )
    report = check_fit(model, checkpoint, repr(filename), allow_partial)
    # tensors of another shape are left out by load_state_dict itself
    load_state_dict(_unwrap(model), _model_state(checkpoint), strict=report.fits)
    return report


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
    with mmengine_checkpoints_allowed():
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


def _check_schedule_left(cfg: Config, path: str, meta: dict) -> None:
    """Refuse a checkpoint saved at or past ``max_iters`` / ``max_epochs``."""
    train_cfg = cfg.get('train_cfg') or {}
    for unit, key in (('iter', 'max_iters'), ('epoch', 'max_epochs')):
        end = train_cfg.get(key)
        done = meta.get(unit)
        if isinstance(end, int) and isinstance(done, int) and done >= end:
            word = 'iteration' if unit == 'iter' else 'epoch'
            raise ValueError(
                f'--resume: {path!r} was saved after {word} {done} and the '
                f'config ends at train_cfg.{key}={end}: the training is '
                f'complete, nothing is left to resume. To train longer, raise it '
                f'(--cfg-options train_cfg.{key}=N)'
            )


def setup_resume(cfg: Config, resume: Optional[str]) -> None:
    """Translate ``--resume [CHECKPOINT]`` into ``cfg.resume`` / ``load_from``.

    A named file must be a complete training checkpoint; ``'auto'`` takes
    :func:`find_resumable_checkpoint`'s, or starts from scratch (and says
    so); a checkpoint at or past the end of the schedule is refused.
    Temporary files that a killed save left in the work dir are removed
    first (their names never end in ``.pth``).

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
    _check_schedule_left(cfg, resume, inspect_training_checkpoint(resume))
    cfg.resume = True
    cfg.load_from = resume
