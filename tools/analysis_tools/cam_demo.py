"""Show where a DRN classifier looks: class activation map and box for one image.

Runs a timm DRN model (``timm.create_model('drn_c_26')`` after ``import
mmdrn``) on IMAGE, prints the top-5 classes, and writes a PNG with the
per-pixel probability map of the top-1 class overlaid on the image (jet
colours, scaled to the map's own maximum so that weak maps stay visible) and
the paper's box drawn in green (dashed red when no pixel passed the threshold
and the box is the whole-image fallback). Yu et al., "Dilated Residual
Networks", CVPR 2017, Section 3 "Localization".

Weights: nothing is downloaded. Point ``--checkpoint`` at a local file, either
an official fyu/drn ImageNet checkpoint (e.g. ``drn_c_26-ddedf421.pth``) or a
timm-style state dict of the same model; it is read with
``mmdrn.utils.load_file`` (``weights_only=True``) and passed through the
backbone's checkpoint converter. Without ``--checkpoint`` the weights are
random and the output only shows that the pipeline runs.

Example::

    python tools/cam_demo.py dog.jpg --model drn_c_26 \\
        --checkpoint ~/weights/drn_c_26-ddedf421.pth --out dog_cam.png
"""

import argparse
import os
import sys
from typing import List, Optional

import numpy as np
import timm
import torch
from PIL import Image, ImageDraw

import mmdrn  # noqa: F401  (registers the drn_* timm models)
from mmdrn.backbones import convert_state_dict, load_drn_weights
from mmdrn.backbones.drn_weights import unwrap_state_dict
from mmdrn.heads import DEFAULT_THRESHOLD, cam_localize
from mmdrn.utils import load_file


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('image', help='input image file')
    parser.add_argument('--model', default='drn_c_26', help='timm DRN model name')
    parser.add_argument('--checkpoint', help='local weights (fyu/drn or timm keys)')
    parser.add_argument('--out', help='output PNG (default: <image name>_cam.png)')
    parser.add_argument(
        '--threshold',
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f'box-rule probability threshold t (default: {DEFAULT_THRESHOLD})',
    )
    parser.add_argument(
        '--size', type=int, default=224, help='square network input size (default: 224)'
    )
    args = parser.parse_args(argv)
    drn_models = timm.list_models('drn_*')
    if args.model not in drn_models:
        parser.error(f'--model must be one of {drn_models}, got {args.model!r}')
    if not os.path.isfile(args.image):
        parser.error(f'image file not found: {args.image!r}')
    if not 0.0 <= args.threshold < 1.0:
        parser.error(f'--threshold must be in [0, 1), got {args.threshold}')
    if args.size < 8:
        parser.error(f'--size must be at least 8 (one output cell), got {args.size}')
    if args.out is None:
        args.out = os.path.splitext(os.path.basename(args.image))[0] + '_cam.png'
    return args


def build_model(name: str, checkpoint: Optional[str]) -> torch.nn.Module:
    """A timm DRN model, with local weights when a checkpoint is given."""
    model = timm.create_model(name)
    if checkpoint is None:
        return model
    # any known layout (fyu/drn, DRNSeg, pytorchcv), read weights_only
    state = unwrap_state_dict(load_file(checkpoint))
    state = convert_state_dict(state, model.arch, model.layers)
    fc_weight = state.get('fc.weight')
    if fc_weight is not None and fc_weight.shape[0] != model.num_classes:
        model.reset_classifier(fc_weight.shape[0])
    load_drn_weights(model, state)
    return model


def class_names(num_classes: int) -> List[str]:
    """ImageNet descriptions for 1000-class models, ``class <i>`` otherwise."""
    if num_classes == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(num_classes)]
    return [f'class {i}' for i in range(num_classes)]


def preprocess(image: Image.Image, size: int, model: torch.nn.Module) -> torch.Tensor:
    """Resize to ``size x size`` and normalise with the model's statistics."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    mean = torch.tensor(cfg.get('mean', (0.485, 0.456, 0.406))).view(3, 1, 1)
    std = torch.tensor(cfg.get('std', (0.229, 0.224, 0.225))).view(3, 1, 1)
    resized = image.resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return ((x - mean) / std)[None]


def render(
    image: Image.Image, prob_map: torch.Tensor, box: List[float], valid: bool
) -> Image.Image:
    """Overlay a probability map (h x w) on the image and draw the box."""
    from matplotlib import colormaps

    width, height = image.size
    heat = torch.nn.functional.interpolate(
        prob_map[None, None], size=(height, width), mode='bilinear', align_corners=False
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


def _dashed_rectangle(draw: ImageDraw.ImageDraw, corners, colour, width) -> None:
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


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    image = Image.open(args.image).convert('RGB')
    model = build_model(args.model, args.checkpoint).eval()
    with torch.no_grad():
        out = cam_localize(model, preprocess(image, args.size, model), args.threshold)
    scores = out.logits.softmax(dim=1)[0]
    names = class_names(scores.numel())
    top = scores.topk(min(5, scores.numel()))
    print(f'top-5 classes for {args.image} ({args.model}):')
    for rank, (score, index) in enumerate(zip(top.values, top.indices), 1):
        print(f'  {rank}. [{int(index)}] {names[int(index)]}: {float(score):.4f}')

    # boxes are in network-input pixels; map them to the original image
    width, height = image.size
    scale = torch.tensor([width, height, width, height]) / args.size
    box = (out.boxes[0] * scale).tolist()
    label = int(out.labels[0])
    valid = bool(out.valid[0])
    prob_map = out.probs[0, label]
    status = 'box' if valid else 'no pixel passed; whole-image fallback box'
    print(
        f'{status} for [{label}] {names[label]} (t={args.threshold}): '
        f'({box[0]:.1f}, {box[1]:.1f}, {box[2]:.1f}, {box[3]:.1f}); '
        f'map max {float(prob_map.max()):.4f}'
    )
    render(image, prob_map, box, valid).save(args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(main())
