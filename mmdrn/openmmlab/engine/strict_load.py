"""Refuse a checkpoint that does not fit the model, and say what it is.

mmengine loads ``load_from`` non-strictly: keys the model lacks, keys the file
lacks and tensors of another shape only appear in the log, and testing goes on
with part of the model left at its initialisation, which ends in a metric that
looks like a result. Here a checkpoint must fit the model exactly, or the
error names the keys that do not fit, what the file holds (an OpenMMLab model
with a DRN-C-26 backbone and 7 classes, a DRN classification network in
fyu/drn layout, ...) and what the config builds. Loading part of a model is a
deliberate choice (``allow_partial=True``), and the summary of what was not
loaded is then kept and reported.

* :func:`describe_state_dict` tells what a state dict holds;
* :func:`check_fit` compares a checkpoint with a model;
* :func:`load_checkpoint_strict` loads a file into a model (tools without a
  Runner: CAM demo, benchmark);
* :class:`StrictLoadHook` checks the Runner's ``load_from`` before mmengine
  loads it (``tools/test.py``).
"""

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper

from ...backbones.drn import _ARCHS, DRN
from ...backbones.drn_weights import convert_state_dict, detect_layout
from ...utils import CheckpointError, load_file

__all__ = [
    'CheckpointMismatchError',
    'LoadReport',
    'StrictLoadHook',
    'check_fit',
    'describe_state_dict',
    'load_checkpoint_strict',
]

Shapes = Dict[str, Tuple[int, ...]]
_CONVERTER = 'tools/model_converters/convert_checkpoint.py'
# mmengine strips DataParallel's prefix from checkpoint keys before loading
_MODULE_PREFIX = re.compile(r'^module\.')
_LAYOUT_NAMES = {
    'drn': "fyu/drn's drn.py",
    'drnseg': "fyu/drn's DRNSeg (segment.py)",
    'pytorchcv': 'pytorchcv',
}


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys or tensor shapes do not fit the model."""


def _names(items: List[str], limit: int = 8) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f' ... ({len(items)} in all)' if len(items) > limit else '')


@dataclass
class LoadReport:
    """How a checkpoint fits a model.

    Attributes:
        missing (list[str]): Model keys the checkpoint lacks.
        unexpected (list[str]): Checkpoint keys the model lacks.
        reshaped (list[str]): Keys of both, with both shapes, e.g.
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
        lines = []
        if self.missing:
            lines.append(
                f'{len(self.missing)} model keys missing from the checkpoint '
                f'(left at their initialisation): {_names(self.missing)}'
            )
        if self.reshaped:
            lines.append(
                f'{len(self.reshaped)} of another shape (not loaded): '
                f'{_names(self.reshaped)}'
            )
        if self.unexpected:
            lines.append(
                f'{len(self.unexpected)} checkpoint keys the model does not have '
                f'(ignored): {_names(self.unexpected)}'
            )
        return '\n'.join(lines)


def _shapes(state: Mapping[str, Any]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state.items() if torch.is_tensor(v)}


@functools.cache
def _drn_references() -> List[Tuple[str, DRN, Shapes]]:
    """Every DRN variant's name, (meta) model and backbone shapes, no ``fc``."""
    references = []
    with torch.device('meta'):
        for arch, depths in _ARCHS.items():
            for depth in depths:
                model = DRN(arch, depth, num_classes=0, global_pool='')
                references.append(
                    (f'DRN-{arch}-{depth}', model, _shapes(model.state_dict()))
                )
    return references


def _body(shapes: Shapes, optional: List[str] = ()) -> Shapes:
    # The convolutions say which network it is; norm layers differ with the
    # norm type (BN, GN, ...) and the classifier with the number of classes.
    return {
        k: v
        for k, v in shapes.items()
        if len(v) == 4 and not k.startswith('fc.') and k not in optional
    }


def _identify_drn(state: Mapping[str, Any]) -> Optional[Tuple[str, str, int]]:
    """(names of the matching DRN variants, layout, classes) or None."""
    try:
        layout = detect_layout(state)
    except CheckpointError:
        return None
    names, classes = [], 0
    for name, model, reference in _drn_references():
        try:
            converted = convert_state_dict(state, model.arch, model.layers, layout)
        except (CheckpointError, ValueError):
            continue
        optional = model.unused_keys()
        if _body(_shapes(converted), optional) == _body(reference, optional):
            names.append(name)
            if 'fc.weight' in converted:
                classes = int(converted['fc.weight'].shape[0])
    if not names:
        return None
    # DRN-B and DRN-C of one depth have the same tensors.
    return ' or '.join(names), layout, classes


def _classes(state: Mapping[str, Any], head: str) -> Optional[int]:
    for name in ('conv_seg', 'fc', 'conv_cls', 'cls_seg'):
        weight = state.get(f'{head}.{name}.weight')
        if torch.is_tensor(weight):
            return int(weight.shape[0])
    return None


def describe_state_dict(state: Mapping[str, Any]) -> str:
    """Say in words what a state dict holds.

    Recognises OpenMMLab models (``backbone.*``, ``neck.*``, heads), naming a
    DRN backbone's variant and the heads' classes, and DRN networks in any
    layout of :mod:`mmdrn.backbones.drn_weights`.

    Args:
        state (Mapping[str, Tensor]): Model weights (no ``state_dict`` or
            ``module.`` wrapping).

    Returns:
        str: E.g. ``'an OpenMMLab model: backbone a DRN-C-26, decode_head
        with 7 classes'`` or ``"a DRN-C-26 classification network (1000
        classes) in fyu/drn's drn.py layout"``.
    """
    tops = list(dict.fromkeys(k.split('.', 1)[0] for k in state))
    if 'backbone' in tops:
        backbone = {
            k[len('backbone.') :]: v
            for k, v in state.items()
            if k.startswith('backbone.')
        }
        found = _identify_drn(backbone)
        if found is not None:
            parts = [f'backbone a {found[0]}']
        else:
            parts = [f'backbone not a DRN (first key backbone.{next(iter(backbone))})']
        for top in tops:
            if top == 'backbone':
                continue
            classes = _classes(state, top)
            parts.append(top + (f' with {classes} classes' if classes else ''))
        return 'an OpenMMLab model: ' + ', '.join(parts)
    found = _identify_drn(state)
    if found is not None:
        names, layout, classes = found
        head = f' ({classes} classes)' if classes else ''
        return (
            f'a {names} classification network{head} in '
            f'{_LAYOUT_NAMES[layout]} layout, not an OpenMMLab model'
        )
    return f'weights of an unknown kind (first keys: {_names(list(state)[:3])})'


def _advice(state: Mapping[str, Any]) -> str:
    """How to turn a plain DRN network into an OpenMMLab checkpoint."""
    if any(k.startswith('backbone.') for k in state):
        return ''
    found = _identify_drn(state)
    if found is None:
        return ''
    model = found[0].split(' or ')[-1].lower().replace('-', '_')
    return (
        f' Its weights fit a backbone only: convert them with `python {_CONVERTER} '
        f'FILE OUT.pth --target mmseg --model {model}` (or --target mmpretrain) and '
        f"start a training from OUT.pth (load_from, or the backbone's "
        f"init_cfg=dict(type='Pretrained', checkpoint=OUT.pth, prefix='backbone.')); "
        f'the heads are untrained until then.'
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
    return {_MODULE_PREFIX.sub('', k): v for k, v in state.items()}


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
        checkpoint (Mapping): A loaded checkpoint: a state dict, or a dict
            holding one under ``state_dict``; DataParallel's ``module.``
            prefix is ignored.
        filename (str): Named in the error. Default: ``'the checkpoint'``.
        allow_partial (bool): Return the report of a checkpoint that does not
            fit instead of raising. Default: False.

    Returns:
        LoadReport: What fits and what does not.

    Raises:
        CheckpointMismatchError: The checkpoint does not fit and
            ``allow_partial`` is False; the message names the keys, says what
            the file and the model are and how to go on.
    """
    state = _model_state(checkpoint)
    reference = _shapes(_unwrap(model).state_dict())
    given = _shapes(state)
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
        f'The file holds {describe_state_dict(state)}; the config builds '
        f'{describe_state_dict(_unwrap(model).state_dict())}.{_advice(state)} '
        f'Check that checkpoint and config belong together; to evaluate a '
        f'partly loaded model anyway, allow a partial load (tools: '
        f'--allow-partial-load).'
    )


def load_checkpoint_strict(
    model: nn.Module,
    filename: str,
    allow_partial: bool = False,
    map_location: Any = 'cpu',
) -> LoadReport:
    """Load a checkpoint file into a model, refusing one that does not fit.

    The file is read with :func:`mmdrn.utils.load_file` (never runs pickled
    code) and checked with :func:`check_fit`. With ``allow_partial`` the
    tensors that fit are loaded and the rest of the model keeps its
    initialisation; print ``report.summary()`` beside any result.

    Args:
        model (nn.Module): The model (wrappers are looked through).
        filename (str): Checkpoint file.
        allow_partial (bool): See :func:`check_fit`. Default: False.
        map_location: Passed to :func:`torch.load`. Default: ``'cpu'``.

    Returns:
        LoadReport: Empty lists when everything was loaded.
    """
    checkpoint = load_file(filename, map_location=map_location)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'{filename!r} holds a {type(checkpoint).__name__}, not a state dict'
        )
    report = check_fit(model, checkpoint, repr(filename), allow_partial)
    target = _unwrap(model)
    reference = target.state_dict()
    state = {
        k: v
        for k, v in _model_state(checkpoint).items()
        if k in reference and tuple(v.shape) == tuple(reference[k].shape)
    }
    target.load_state_dict(state, strict=False)
    return report


class StrictLoadHook(Hook):
    """Check the Runner's ``load_from`` checkpoint before mmengine loads it.

    mmengine calls ``after_load_checkpoint`` with the loaded file before it
    puts the weights into the model: a checkpoint that does not fit stops the
    run there (:class:`CheckpointMismatchError`), before any metric. With
    ``allow_partial`` the run goes on, and the summary of what was not loaded
    is logged again after the test metrics. Used by ``tools/test.py``.

    Args:
        filename (str): The checkpoint, as named in messages.
        allow_partial (bool): Let a checkpoint that does not fit be loaded
            partly. Default: False.
    """

    # after the LoggerHook, which prints the metrics in after_test_epoch
    priority = 'LOWEST'

    def __init__(self, filename: str, allow_partial: bool = False) -> None:
        self.filename = repr(str(filename))
        self.allow_partial = allow_partial
        self.report: Optional[LoadReport] = None

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Refuse (or, allowed, record) a checkpoint that does not fit."""
        self.report = check_fit(
            runner.model, checkpoint, self.filename, self.allow_partial
        )
        if not self.report.fits:
            runner.logger.warning(
                f'partial load of {self.filename} (allowed): '
                f'{self.report.loaded} model tensors loaded.\n{self.report.summary()}'
            )

    def after_test_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        """Repeat what was not loaded beside the metrics."""
        # (worded differently: mmengine's logger drops repeated warnings)
        if self.report is not None and not self.report.fits:
            runner.logger.warning(
                f'the metrics above are of a partly loaded model: partial load of '
                f'{self.filename} (allowed), {self.report.loaded} model tensors '
                f'loaded.\n{self.report.summary()}'
            )
