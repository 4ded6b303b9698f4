"""Convert a DRN checkpoint for mmpretrain, MMSegmentation or timm.

Reads any layout :mod:`mmdrn.backbones.drn_weights` knows (fyu/drn, the same
with ``module.`` or inside a training checkpoint, fyu/drn's ``DRNSeg``,
pytorchcv) with ``weights_only=True`` and writes it with
:func:`mmdrn.converters.convert`:

* ``--target mmpretrain``: ``ImageClassifier`` + ``CAMHead`` keys, as in
  ``configs/drn_cls/``;
* ``--target mmseg``: an ``EncoderDecoder``; a ``DRNSeg`` checkpoint becomes
  the complete segmentor (backbone and ``decode_head.conv_seg``, for
  ``configs/drn/fcn_drn-*_fyu-cityscapes-1024x2048.py``), an ImageNet one the
  backbone alone;
* ``--target timm``: the ``drn_*`` model's state dict.

mmpretrain/mmseg files are mmengine checkpoints (``meta`` + ``state_dict``),
timm files a plain state dict. An existing DST is never replaced unless
``--force`` is given; the file appears complete or not at all.

Examples::

    python tools/model_converters/convert_checkpoint.py \\
        checkpoints/drn_c_26-ddedf421.pth checkpoints/drn-c-26_in1k_mmpretrain.pth \\
        --target mmpretrain --model drn_c_26
    python tools/model_converters/convert_checkpoint.py \\
        drn_d_22_cityscapes.pth checkpoints/fcn_drn-d-22-d8_fyu-cityscapes.pth \\
        --target mmseg --model drn_d_22
    python tools/test.py configs/drn/fcn_drn-d-22-d8_fyu-cityscapes-1024x2048.py \\
        checkpoints/fcn_drn-d-22-d8_fyu-cityscapes.pth
"""

import argparse
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

from mmdrn.converters import TARGETS, convert
from mmdrn.utils import CheckpointError, load_file
from mmdrn.utils.file_io import atomic_save


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
        'EncoderDecoder (backbone.*, and decode_head.conv_seg.* from a DRNSeg '
        'checkpoint); timm: the drn_* model state dict',
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
    """Convert SRC into DST; return what was written (meta and state_dict)."""
    args = parse_args(argv)
    try:
        # fail before the (slow) conversion when the answer is already no
        if osp.isdir(args.dst):
            raise IsADirectoryError(f'{args.dst!r} is a directory; give a file name')
        if osp.lexists(args.dst) and not args.force:
            raise FileExistsError(f'{args.dst!r} exists; not replacing it')
        state, facts = convert(load_file(args.src), args.model, args.target)
        meta = dict(
            converted_from=osp.basename(args.src),
            model=args.model,
            target=args.target,
            **facts,
        )
        saved = state if args.target == 'timm' else dict(meta=meta, state_dict=state)
        atomic_save(saved, args.dst, overwrite=args.force)
    except FileExistsError as err:
        sys.exit(f'convert_checkpoint: error: {err} (pass --force to overwrite)')
    except (ValueError, IsADirectoryError, CheckpointError) as err:
        sys.exit(f'convert_checkpoint: error: {err}')
    classes, where = facts['num_classes'], facts['classifier']
    head = {
        'none': 'no classifier',
        'dropped': f'classifier ({classes} classes) dropped',
    }.get(where, f'{classes} classes ({where})')
    print(
        f'{args.src} ({facts["source_layout"]} layout, {args.model}) -> {args.dst}: '
        f'{len(state)} tensors for {args.target}, {head}'
    )
    return dict(meta=meta, state_dict=state)


if __name__ == '__main__':
    main()
