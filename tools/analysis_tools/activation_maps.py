"""Draw the channel-mean activation maps of segmentation backbones.

For each image, one row: the image, then for every model the mean over
channels of the chosen backbone outputs (by default the last three levels),
each scaled to its own range and drawn without smoothing. With a DRN-A and a
DRN-C checkpoint side by side this is the DRN paper's gridding picture
(Yu et al., CVPR 2017, Fig. 6): DRN-A's dilated levels leave a grid pattern
that DRN-C's levels 7 and 8 remove.

Examples::

    python tools/analysis_tools/activation_maps.py \\
        --model configs/demo/fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py A.pth \\
        --model configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py C.pth \\
        --images data/drn_demo/img_dir/val/scene_00000.png --out gridding.png
    python tools/analysis_tools/activation_maps.py --model CONFIG CKPT \\
        --images street.jpg --levels -1 --scale 2
"""

import argparse
import os.path as osp
import sys
from typing import List, Optional

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(osp.dirname(HERE)))  # mmdrn from this checkout

from mmdrn.openmmlab.analysis.activation_maps import (  # noqa: E402
    activation_maps,
    load_segmentor,
    read_image,
)
from mmdrn.openmmlab.analysis.figures import plot_activation_maps  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Channel-mean activation maps of MMSeg backbones, side by side'
    )
    parser.add_argument(
        '--model',
        nargs=2,
        action='append',
        required=True,
        metavar=('CONFIG', 'CHECKPOINT'),
        help='an MMSeg config and its checkpoint; repeat for more models',
    )
    parser.add_argument(
        '--labels', nargs='+', help='column names of the models (default: configs)'
    )
    parser.add_argument('--images', nargs='+', required=True, help='image files')
    parser.add_argument(
        '--levels',
        nargs='+',
        type=int,
        default=[-3, -2, -1],
        help='backbone outputs to draw (negative: from the end)',
    )
    parser.add_argument(
        '--scale', type=float, default=1.0, help='enlarge the images by this factor'
    )
    parser.add_argument('--out', default='activation_maps.png', help='PNG to write')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing --out file'
    )
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.model):
        parser.error(
            f'--labels needs one name per --model: {len(args.model)} models, '
            f'{len(args.labels)} labels'
        )
    if osp.exists(args.out) and not args.force:
        parser.error(f'{args.out} exists; pass --force to overwrite it')
    return args


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    labels = args.labels or [
        osp.splitext(osp.basename(config))[0] for config, _ in args.model
    ]
    bgr = [read_image(path) for path in args.images]
    maps = {}
    for label, (config, checkpoint) in zip(labels, args.model):
        model = load_segmentor(config, checkpoint)
        maps[label] = [
            activation_maps(model, image, args.levels, args.scale) for image in bgr
        ]
    rgb = [image[..., ::-1] for image in bgr]
    out = plot_activation_maps(rgb, maps, args.out)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
