"""Convert a DRN checkpoint for mmpretrain, MMSegmentation or timm.

The source may be in any layout mmdrn's backbone loader reads (see
:mod:`mmdrn.backbones.drn_weights`): fyu/drn's ``drn.py`` (and torchvision
ResNets for DRN-A), the same wrapped in a training checkpoint or with
DataParallel's ``module.`` prefix, fyu/drn's ``DRNSeg`` (``base.N.*``,
``seg.*``), or pytorchcv/imgclsmob. The weights are converted to the fyu/drn
keys and checked against the named model (every key present, nothing left
over), then written under the target's keys:

* ``mmpretrain``: an ``ImageClassifier`` with a DRN backbone and ``CAMHead``
  (``backbone.*``, ``head.fc.*``), as in ``configs/drn_cls/``; loads strictly.
* ``mmseg``: the backbone of an ``EncoderDecoder`` (``backbone.*``; the
  classifier is dropped), for ``load_from`` or
  ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.
* ``timm``: the ``drn_*`` model's own state dict, for
  ``timm.create_model(MODEL, checkpoint_path=DST)``.

mmpretrain/mmseg files are mmengine checkpoints (``meta`` + ``state_dict``),
timm files a plain state dict. The source is read with ``weights_only=True``
(:func:`mmdrn.utils.load_file`). An existing ``DST`` is never replaced unless
``--force`` is given; the file appears complete or not at all.

Examples::

    python tools/convert_checkpoint.py checkpoints/drn_c_26-ddedf421.pth \\
        checkpoints/drn-c-26_in1k_mmpretrain.pth --target mmpretrain --model drn_c_26
    python tools/test.py configs/drn_cls/drn-c-26_8xb32_in1k-10crop.py \\
        checkpoints/drn-c-26_in1k_mmpretrain.pth --tta
"""

import argparse
import contextlib
import os
import os.path as osp
import secrets
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

TARGETS = ('mmpretrain', 'mmseg', 'timm')


def drn_models() -> List[str]:
    """Names of mmdrn's timm models (``drn_a_18`` ... ``drn_d_107``)."""
    import timm

    import mmdrn  # noqa: F401  (registers the drn_* models)

    return timm.list_models('drn_*')


def convert(
    checkpoint: Mapping, model: str, target: str
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Convert a loaded checkpoint to the target's keys.

    Args:
        checkpoint (Mapping): State dict or training checkpoint, any layout of
            :mod:`mmdrn.backbones.drn_weights`.
        model (str): mmdrn timm model name of the weights, e.g. 'drn_c_26'.
        target (str): 'mmpretrain', 'mmseg' or 'timm'.

    Returns:
        tuple[dict, dict]: The converted state dict, and facts about the
        conversion (``source_layout``, ``num_classes``: classifier outputs, 0
        for none).

    Raises:
        ValueError: Unknown ``target`` or ``model``, or a checkpoint without a
            classifier for the mmpretrain target.
        CheckpointError: Keys that do not fit the model (named).
    """
    if target not in TARGETS:
        raise ValueError(f'target must be one of {list(TARGETS)}, got {target!r}')
    models = drn_models()
    if model not in models:
        raise ValueError(f'model must be one of {models}, got {model!r}')
    import timm

    from mmdrn.backbones.drn_weights import (
        convert_state_dict,
        detect_layout,
        match_state_dict,
        unwrap_state_dict,
    )
    from mmdrn.heads import image_classifier_keys

    layout = detect_layout(unwrap_state_dict(checkpoint))
    net = timm.create_model(model)
    state = convert_state_dict(checkpoint, net.arch, net.layers, layout=layout)
    num_classes = state['fc.weight'].shape[0] if 'fc.weight' in state else 0
    if num_classes == 0 and target == 'mmpretrain':
        raise ValueError(
            'the checkpoint has no classifier (fc), which an ImageClassifier '
            'needs; use --target mmseg (backbone only) or timm'
        )
    if num_classes != net.num_classes:
        net.reset_classifier(num_classes)
    # every key of the model present and no other (filling only BatchNorm's
    # counters and DRN-C-58's unused projection, which some files lack)
    state = match_state_dict(state, net.state_dict(), optional_keys=net.unused_keys())
    if target != 'timm':
        state = image_classifier_keys(state)
    if target == 'mmseg':
        state = {k: v for k, v in state.items() if k.startswith('backbone.')}
    return state, dict(source_layout=layout, num_classes=num_classes)


def _exists(dst: str) -> FileExistsError:
    return FileExistsError(
        f'{dst!r} exists; not replacing it (pass --force to overwrite)'
    )


def save_new(obj: Any, dst: str, force: bool = False) -> None:
    """``torch.save`` to ``dst`` atomically; never replace a file without ``force``.

    The data is written and synced to a hidden temporary file next to
    ``dst`` first. With ``force`` it is then renamed over ``dst``
    (:func:`os.replace`). Without, it is hard-linked to ``dst``, which fails if
    ``dst`` exists, also when it appeared while this function wrote (a check
    followed by a rename could replace such a file). File systems without
    hard links get the check and the rename. The temporary name is removed
    either way.

    Args:
        obj (Any): What to save.
        dst (str): Destination file.
        force (bool): Replace an existing ``dst``. Default: False.

    Raises:
        FileExistsError: ``dst`` exists and ``force`` is False.
    """
    from mmdrn.openmmlab.engine.atomic_io import atomic_save

    if force:
        atomic_save(obj, dst)
        return
    directory, name = osp.split(osp.abspath(dst))
    tmp = osp.join(directory, f'.{name[:200]}.{os.getpid()}.{secrets.token_hex(4)}.new')
    atomic_save(obj, tmp)
    try:
        try:
            os.link(tmp, dst)
        except FileExistsError:
            raise _exists(dst) from None
        except OSError:  # no hard links (FAT, some network file systems)
            if osp.lexists(dst):
                raise _exists(dst) from None
            os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a DRN checkpoint (fyu/drn, module., DRNSeg, '
        'pytorchcv) for mmpretrain, MMSeg or timm'
    )
    parser.add_argument('src', metavar='SRC', help='source checkpoint')
    parser.add_argument('dst', metavar='DST', help='converted checkpoint to write')
    parser.add_argument(
        '--target',
        required=True,
        choices=TARGETS,
        help='mmpretrain: ImageClassifier (backbone.*, head.fc.*); mmseg: '
        'backbone.* only; timm: the drn_* model state dict',
    )
    parser.add_argument(
        '--model',
        '--arch',
        dest='model',
        required=True,
        help='the network of the weights, as a timm name: drn_c_26, drn_d_105 ...',
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite DST if it exists'
    )
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Convert ``SRC`` into ``DST`` (see the module docstring).

    Args:
        argv (list[str], optional): Command-line arguments. Default: None,
            ``sys.argv[1:]``.

    Returns:
        dict: ``meta`` (source, layout, model, target, classifier classes) and
        the converted ``state_dict``, as written for mmpretrain/MMSeg (a timm
        file holds the state dict alone).
    """
    args = parse_args(argv)
    from mmdrn.utils import CheckpointError, load_file

    try:
        # fail before the (slow) conversion when the answer is already no
        if osp.isdir(args.dst):
            raise IsADirectoryError(f'{args.dst!r} is a directory; give a file name')
        if osp.lexists(args.dst) and not args.force:
            raise _exists(args.dst)
        state, facts = convert(load_file(args.src), args.model, args.target)
        meta = dict(
            converted_from=osp.basename(args.src),
            model=args.model,
            target=args.target,
            **facts,
        )
        saved = state if args.target == 'timm' else dict(meta=meta, state_dict=state)
        save_new(saved, args.dst, force=args.force)
    except (ValueError, FileExistsError, IsADirectoryError, CheckpointError) as err:
        sys.exit(f'convert_checkpoint: error: {err}')
    classes = facts['num_classes']
    if args.target == 'mmseg':
        head = f'classifier ({classes} classes) dropped' if classes else 'no classifier'
    else:
        head = f'{classes} classes' if classes else 'no classifier'
    print(
        f'{args.src} ({facts["source_layout"]} layout, {args.model}) -> {args.dst}: '
        f'{len(state)} tensors for {args.target}, {head}'
    )
    return dict(meta=meta, state_dict=state)


if __name__ == '__main__':
    main()
