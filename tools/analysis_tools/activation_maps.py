"""Draw segmentation models side by side: activation maps and predictions.

For each image, one row: the image, its ground truth (``--ground-truth``), then
for every model its prediction (``--predictions``) and the mean over channels
of the chosen backbone outputs (``--levels``; by default the last three), each
map scaled to its own range and drawn without smoothing. With a DRN-A and a
DRN-C checkpoint side by side this is the DRN paper's gridding picture
(Yu et al., CVPR 2017, Fig. 6): DRN-A's dilated levels leave a grid pattern
that DRN-C's levels 7 and 8 remove.

The maps come from the image as it is (enlarged by ``--scale``), through the
model's own ``data_preprocessor`` (normalisation, padding) and backbone, and
are cropped to the cells over the image; the predictions from MMSeg's
``inference_model`` (the config's test pipeline). Checkpoints must fit the
config's model, every key.

Examples::

    python tools/analysis_tools/activation_maps.py \\
        --model configs/demo/fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py A.pth \\
        --model configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py C.pth \\
        --images data/drn_demo/img_dir/val/scene_00000.png --out gridding.png
    python tools/analysis_tools/activation_maps.py --model CONFIG CKPT \\
        --images street.jpg --levels -1 --scale 2 --save-maps maps.npz
    python tools/analysis_tools/activation_maps.py --model CONFIG CKPT \\
        --images a.png b.png --ground-truth a_gt.png b_gt.png --predictions --levels
"""

import argparse
import math
import os.path as osp
import textwrap
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        '--model',
        nargs=2,
        action='append',
        required=True,
        metavar=('CONFIG', 'CHECKPOINT'),
        help='an MMSeg config and its checkpoint; repeat for more models',
    )
    add('--labels', nargs='+', help='column names of the models (default: configs)')
    add('--images', nargs='+', required=True, help='image files')
    add(
        '--ground-truth',
        nargs='+',
        metavar='LABEL_MAP',
        help='a label map (class indices, as the model predicts) per image',
    )
    add('--predictions', action='store_true', help="draw each model's prediction")
    add(
        '--levels',
        nargs='*',
        type=int,
        default=[-3, -2, -1],
        help='backbone outputs to draw (negative: from the end; none: no maps)',
    )
    add('--scale', type=float, default=1.0, help='enlarge the images for the maps')
    add('--title', help='a title above the picture')
    add('--out', default='activation_maps.png', help='PNG to write')
    add('--save-maps', metavar='NPZ', help='also save the maps and predictions')
    add('--force', action='store_true', help='overwrite an existing --out file')
    args = parser.parse_args(argv)
    for option, given, per in (
        ('--labels', args.labels, args.model),
        ('--ground-truth', args.ground_truth, args.images),
    ):
        if given is not None and len(given) != len(per):
            parser.error(
                f'{option} needs one per {"--model" if per is args.model else "image"}'
                f': {len(per)} given, {len(given)} names'
            )
    if not args.scale > 0:
        parser.error(f'--scale must be > 0, got {args.scale}')
    if osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it')
    return args


def load_segmentor(config: str, checkpoint: str) -> nn.Module:
    """The MMSeg model of ``config`` on CPU in eval mode, with every key of
    ``checkpoint`` (a file of another model is refused, naming the keys)."""
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import init_model

    from mmdrn.openmmlab.checkpoint import load_checkpoint_strict

    model = revert_sync_batchnorm(init_model(config, device='cpu'))
    load_checkpoint_strict(model, checkpoint)
    return model.eval()


@torch.no_grad()
def activation_maps(
    segmentor: nn.Module, image: np.ndarray, levels: Sequence[int], scale: float
) -> List[Tuple[str, np.ndarray]]:
    """``(level name, map)`` of each level for one BGR uint8 image: DRN levels
    by name (``level6``, ``layer4``), other backbones' outputs ``out{index}``."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if scale != 1:
        size = [round(s * scale) for s in tensor.shape[1:]]
        tensor = F.interpolate(tensor[None].float(), size, mode='bilinear')[0]
        tensor = tensor.round().clamp(0, 255).to(torch.uint8)
    height, width = tensor.shape[1:]
    inputs = segmentor.data_preprocessor(dict(inputs=[tensor]), False)['inputs']
    backbone = segmentor.backbone
    outputs = backbone(inputs)
    named = getattr(backbone, 'level_names', None)
    names = [named[i] if named else f'out{i}' for i in backbone.out_indices]
    if len(names) != len(outputs):
        names = [f'out{i}' for i in range(len(outputs))]
    maps = []
    for level in levels:
        if not -len(outputs) <= level < len(outputs):
            raise SystemExit(
                f'activation_maps.py: level {level} is out of range: the backbone '
                f'returns {len(outputs)} outputs ({", ".join(names)}); use '
                f'{-len(outputs)}..{len(outputs) - 1}'
            )
        feature = outputs[level][0]
        # the cells over the image, not over the preprocessor's padding
        rows = math.ceil(height * feature.shape[1] / inputs.shape[2])
        cols = math.ceil(width * feature.shape[2] / inputs.shape[3])
        maps.append((names[level], feature[:, :rows, :cols].float().mean(0).numpy()))
    return maps


def _palette(segmentor: nn.Module) -> list:
    """The class colours of the config's test dataset."""
    from mmseg.registry import DATASETS

    dataset = segmentor.cfg.test_dataloader.dataset
    return (dataset.get('metainfo') or DATASETS.get(dataset.type).METAINFO)['palette']


def colorize(
    label_map: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255
) -> np.ndarray:
    """RGB uint8 picture of a label map: class ``i`` in ``palette[i]``,
    ``ignore_index`` and labels without a colour black."""
    colours = np.zeros((256, 3), np.uint8)
    colours[: len(palette)] = np.asarray(palette, np.uint8)
    colours[ignore_index] = 0
    return colours[np.asarray(label_map, np.uint8)]


def tile(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str],
    out_file: str,
    title: Optional[str] = None,
) -> str:
    """Draw pictures in a grid, one row per image, and save it as PNG.

    ``(H, W, 3)`` arrays are drawn as RGB, ``(H, W)`` ones (activation maps)
    with matplotlib's ``magma``, each scaled to its own range; nothing is
    smoothed, so a grid pattern stays visible.

    Args:
        rows (Sequence[Sequence[np.ndarray]]): The pictures, row by row, one
            per title.
        titles (Sequence[str]): One per column, above the first row.
        out_file (str): PNG to write.
        title (str, optional): Figure title. Default: None.

    Returns:
        str: ``out_file``.
    """
    from matplotlib.figure import Figure  # no pyplot: no backend is chosen

    fig = Figure(figsize=(len(titles) * 1.6, len(rows) * 1.6 + 0.4))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for ax, picture in zip(axes.flat, (p for row in rows for p in row)):
        ax.imshow(picture, cmap='magma', interpolation='nearest')
        ax.set_axis_off()
    for ax, text in zip(axes[0], titles):
        lines = [line for part in text.split('\n') for line in textwrap.wrap(part, 16)]
        ax.set_title('\n'.join(lines), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    return out_file


def main(argv: Optional[List[str]] = None) -> str:
    import mmcv
    from PIL import Image

    args = parse_args(argv)
    labels = args.labels or [osp.splitext(osp.basename(c))[0] for c, _ in args.model]
    images = [mmcv.imread(path) for path in args.images]  # BGR, as MMSeg reads
    rows = [[image[..., ::-1]] for image in images]
    titles, saved = ['image'], {}
    if args.ground_truth:
        titles.append('ground truth')
    for label, (config, checkpoint) in zip(labels, args.model):
        model = load_segmentor(config, checkpoint)
        palette = _palette(model)
        for index, (row, path) in enumerate(zip(rows, args.images)):
            if args.ground_truth and len(row) == 1:
                truth = np.array(Image.open(args.ground_truth[index]))
                row.append(colorize(truth, palette))
            if args.predictions:
                from mmseg.apis import inference_model

                pred = inference_model(model, path).pred_sem_seg.data[0].numpy()
                row.append(colorize(pred, palette))
                saved[f'{label}/{index}/prediction'] = pred
            maps = activation_maps(model, images[index], args.levels, args.scale)
            row += [activation for _, activation in maps]
            saved.update({f'{label}/{index}/{level}': m for level, m in maps})
        titles += [f'{label}\nprediction'] * args.predictions
        titles += [f'{label}\n{level}' for level, _ in maps]
    if args.save_maps:
        np.savez(args.save_maps, **saved)
    out = tile(rows, titles, args.out, title=args.title)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
