"""Show where a DRN classifier looks: class activation map and box for one image.

Runs a timm DRN model (``timm.create_model('drn_c_26')`` after ``import
mmdrn``) on IMAGE, prints the top-5 classes, and writes a PNG with the
per-pixel probability map of the top-1 class overlaid on the image and the
paper's box (:func:`mmdrn.heads.cam_localize`, drawn by :func:`render_cam`):
solid green, or dashed red when no pixel passed the threshold and the box is
the whole-image fallback. Yu et al., "Dilated Residual Networks", CVPR 2017,
Section 3 "Localization".

Weights: nothing is downloaded. Point ``--checkpoint`` at a local file in any
layout mmdrn reads (an official fyu/drn ImageNet checkpoint such as
``drn_c_26-ddedf421.pth``, a timm-style state dict, pytorchcv ...); it is read
with ``weights_only=True`` and converted by
:func:`mmdrn.backbones.drn_weights.load_timm_drn`. Without ``--checkpoint`` the
weights are random and the output only shows that the pipeline runs.

The PNG goes to ``--out``, by default next to the image:
``<image folder>/<image name>_cam.png`` (replaced if it exists).

Example::

    python tools/analysis_tools/cam_demo.py dog.jpg --model drn_c_26 \\
        --checkpoint ~/weights/drn_c_26-ddedf421.pth --out dog_cam.png
"""

import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from mmdrn.backbones.drn_weights import load_timm_drn
from mmdrn.heads import DEFAULT_THRESHOLD, cam_localize
from mmdrn.utils import load_file


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='input image file')
    parser.add_argument('--model', default='drn_c_26', help='timm DRN model name')
    parser.add_argument('--checkpoint', help='local weights (any layout mmdrn reads)')
    parser.add_argument(
        '--out', help='output PNG (default: <image folder>/<image name>_cam.png)'
    )
    parser.add_argument(
        '--threshold',
        type=float,
        help="box-rule probability threshold t in [0, 1) (default: the paper's, "
        'mmdrn.heads.DEFAULT_THRESHOLD)',
    )
    parser.add_argument(
        '--size', type=int, default=224, help='square network input size (default: 224)'
    )
    args = parser.parse_args(argv)
    if not osp.isfile(args.image):
        parser.error(f'image file not found: {args.image!r}')
    if args.threshold is not None and not 0.0 <= args.threshold < 1.0:
        parser.error(f'--threshold must be in [0, 1), got {args.threshold}')
    if args.size < 8:
        parser.error(f'--size must be at least 8 (one output cell), got {args.size}')
    if args.out is None:
        args.out = osp.splitext(args.image)[0] + '_cam.png'
    models = timm.list_models('drn_*')
    if args.model not in models:
        parser.error(f'--model must be one of {models}, got {args.model!r}')
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    return args


def class_names(num_classes: int) -> List[str]:
    """ImageNet descriptions for 1000-class models, ``class <i>`` otherwise."""
    if num_classes == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(num_classes)]
    return [f'class {i}' for i in range(num_classes)]


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw,
    corners: Sequence[float],
    colour: Tuple[int, ...],
    width: int,
) -> None:
    x1, y1, x2, y2 = corners
    dash = 4 * width
    for start in np.arange(x1, x2, 2 * dash):
        end = min(start + dash, x2)
        draw.line([(start, y1), (end, y1)], fill=colour, width=width)
        draw.line([(start, y2), (end, y2)], fill=colour, width=width)
    for start in np.arange(y1, y2, 2 * dash):
        end = min(start + dash, y2)
        draw.line([(x1, start), (x1, end)], fill=colour, width=width)
        draw.line([(x2, start), (x2, end)], fill=colour, width=width)


def render_cam(
    image: Image.Image, prob_map: torch.Tensor, box: Sequence[float], valid: bool
) -> Image.Image:
    """Overlay a probability map on the image and draw the box.

    The map is resized bilinearly to the image and coloured with matplotlib's
    ``jet``, scaled to the map's own maximum so that weak maps stay visible,
    then blended 50/50 with the image. A valid box is drawn solid green; the
    whole-image fallback box (no pixel passed the threshold) dashed red. The
    line width is 1% of the shorter side, at least 2 pixels.

    Args:
        image (PIL.Image.Image): RGB image.
        prob_map (Tensor): ``h x w`` probabilities.
        box (Sequence[float]): ``(x1, y1, x2, y2)`` edge coordinates in image
            pixels (``x2``/``y2`` exclusive).
        valid (bool): Whether the box came from the rule (else the fallback).

    Returns:
        PIL.Image.Image: A new RGB image.
    """
    from matplotlib import colormaps

    width, height = image.size
    heat = F.interpolate(
        prob_map[None, None].float(),
        size=(height, width),
        mode='bilinear',
        align_corners=False,
    )[0, 0]
    heat = (heat / heat.max().clamp(min=1e-12)).clamp(0, 1).numpy()
    colours = (colormaps['jet'](heat)[..., :3] * 255).astype(np.uint8)
    blended = Image.blend(image, Image.fromarray(colours), alpha=0.5)
    draw = ImageDraw.Draw(blended)
    line = max(2, round(min(width, height) / 100))
    x1, y1, x2, y2 = box
    # PIL rectangles include their far edge; box edges are exclusive
    corners = [x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)]
    if valid:
        draw.rectangle(corners, outline=(0, 255, 0), width=line)
    else:
        _dashed_rectangle(draw, corners, (255, 0, 0), line)
    return blended


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.checkpoint is None:
        model = timm.create_model(args.model)
    else:
        model = load_timm_drn(load_file(args.checkpoint), args.model)
    model.eval()
    image = Image.open(args.image).convert('RGB')
    # resize to size x size, normalise with the model's statistics
    cfg = model.pretrained_cfg
    resized = image.resize((args.size, args.size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = (torch.tensor(cfg[k]).view(3, 1, 1) for k in ('mean', 'std'))
    with torch.no_grad():
        out = cam_localize(model, ((x - mean) / std)[None], args.threshold)
    scores = out.logits.softmax(dim=1)[0]
    names = class_names(scores.numel())
    top = scores.topk(min(5, scores.numel()))
    print(f'top-5 classes for {args.image} ({args.model}):')
    for rank, (score, index) in enumerate(zip(top.values, top.indices), 1):
        print(f'  {rank}. [{int(index)}] {names[int(index)]}: {float(score):.4f}')

    # boxes are in network-input pixels; map them to the original image
    width, height = image.size
    box = (
        out.boxes[0] * torch.tensor([width, height, width, height]) / args.size
    ).tolist()
    label, valid = int(out.labels[0]), bool(out.valid[0])
    prob_map = out.probs[0, label]
    status = 'box' if valid else 'no pixel passed; whole-image fallback box'
    print(
        f'{status} for [{label}] {names[label]} (t={args.threshold}): '
        f'({box[0]:.1f}, {box[1]:.1f}, {box[2]:.1f}, {box[3]:.1f}); '
        f'map max {float(prob_map.max()):.4f}'
    )
    render_cam(image, prob_map, box, valid).save(args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
