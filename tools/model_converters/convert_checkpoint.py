"""Convert a DRN checkpoint for mmpretrain, MMSegmentation or timm.

Reads any layout :mod:`mmdrn.backbones.drn_weights` knows (fyu/drn, the same
with ``module.`` or inside a training checkpoint, fyu/drn's ``DRNSeg``,
pytorchcv) with ``weights_only=True``, checks it against the named timm model
(every key present, nothing left over; the classifier sized to the
checkpoint's) and writes it renamed for the target:

* ``--target mmpretrain``: an ``ImageClassifier`` with ``CAMHead``
  (``backbone.*``, ``head.fc.*``), as in ``configs/drn_cls/``;
* ``--target mmseg``: an ``EncoderDecoder``. From a ``DRNSeg`` checkpoint this
  is the complete segmentor: the backbone (``backbone.*``) and ``seg``, the
  1x1 classifier, as the decode head's ``decode_head.conv_seg.*`` (an
  ``FCNHead`` with ``num_convs=0``, as in
  ``configs/drn/fcn_drn-*_fyu-cityscapes-1024x2048.py``). From an ImageNet
  checkpoint only the backbone (the 1000-class classifier is dropped), for
  ``load_from`` or ``init_cfg=dict(type='Pretrained', prefix='backbone.')``;
* ``--target timm``: the ``drn_*`` model's state dict.

``DRNSeg`` upsamples its logits with ``up``, a transposed convolution (kernel
16, stride 8, padding 4, one group per class) that fyu/drn fills with a
fixed bilinear kernel and never trains. Output pixel ``o`` of it weighs the
input at source coordinate ``(o + 0.5) / 8 - 0.5`` with the bilinear
weights, which is exactly ``F.interpolate(mode='bilinear',
align_corners=False)``, MMSeg's resize, at a scale of 8. The two differ only
in the 4-pixel border, where the transposed convolution lacks the
neighbour outside the image and scales the logits by a positive factor
(1 - d, d the distance to the missing neighbour) that is the same for every
class: the argmax, hence the published predictions, are the same. The
conversion checks that ``up`` holds that kernel.

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
import math
import os.path as osp
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from mmdrn.backbones.drn_weights import detect_layout, load_timm_drn, unwrap_state_dict
from mmdrn.heads import image_classifier_keys
from mmdrn.utils import CheckpointError, load_file
from mmdrn.utils.file_io import atomic_save

TARGETS = ['mmpretrain', 'mmseg', 'timm']


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


def bilinear_up_kernel(size: int) -> torch.Tensor:
    """The bilinear kernel fyu/drn's ``fill_up_weights`` gives ``DRNSeg.up``.

    For a factor ``f = ceil(size / 2)`` and centre ``c = (2f - 1 - f % 2) /
    (2f)``: ``k[i, j] = (1 - |i / f - c|) (1 - |j / f - c|)``.
    """
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2 * factor)
    ramp = 1 - (torch.arange(size, dtype=torch.float64) / factor - centre).abs()
    return torch.outer(ramp, ramp).float()


def check_up(state: Mapping[str, torch.Tensor]) -> None:
    """Refuse a ``DRNSeg`` whose ``up`` is not the fixed bilinear kernel."""
    up = state.get('up.weight')
    if up is None:
        return
    kernel = bilinear_up_kernel(up.shape[-1])
    if up.ndim != 4 or up.shape[1] != 1 or not torch.allclose(up.float(), kernel):
        raise ValueError(
            "the DRNSeg checkpoint's up.weight is not fyu/drn's fixed bilinear "
            'kernel (fill_up_weights, kernel 16, one group per class); MMSeg '
            'upsamples bilinearly, which reproduces only that kernel'
        )


def convert(
    checkpoint: Mapping, model: str, target: str
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The checkpoint under the target's keys, and facts about the conversion.

    The facts: ``source_layout``, ``num_classes`` (classifier outputs, 0 for
    none) and ``classifier`` (where it went: ``'fc'``, ``'head.fc'``,
    ``'decode_head.conv_seg'``, ``'dropped'`` or ``'none'``).
    """
    source = unwrap_state_dict(checkpoint)
    layout = detect_layout(source)
    net = load_timm_drn(source, model)
    num_classes = net.num_classes
    if num_classes == 0 and target == 'mmpretrain':
        raise ValueError(
            'the checkpoint has no classifier (fc), which an ImageClassifier '
            'needs; use --target mmseg (backbone only) or timm'
        )
    state = net.state_dict()
    facts = dict(source_layout=layout, num_classes=num_classes)
    if target == 'timm':
        return state, dict(facts, classifier='fc' if num_classes else 'none')
    if target == 'mmpretrain':
        return image_classifier_keys(state), dict(facts, classifier='head.fc')
    fc = {k[len('fc.') :]: state.pop(k) for k in list(state) if k.startswith('fc.')}
    converted = {f'backbone.{k}': v for k, v in state.items()}
    if layout != 'drnseg' or not fc:
        return converted, dict(facts, classifier='dropped' if fc else 'none')
    check_up(source)
    weight = fc['weight']
    # DRN-A's classifier is a Linear; the head's is a 1x1 convolution
    converted['decode_head.conv_seg.weight'] = weight.reshape(*weight.shape[:2], 1, 1)
    converted['decode_head.conv_seg.bias'] = fc['bias']
    return converted, dict(facts, classifier='decode_head.conv_seg')


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
