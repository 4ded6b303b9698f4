"""The embedded demo: train a DRN on generated street scenes, on CPU.

One command, no download::

    python tools/demo.py

1. draws the demo dataset into ``data/drn_demo`` if it is not there
   (:mod:`mmdrn.datasets.demo_scenes`: deterministic, a few seconds);
2. trains DRN-C-26 from scratch with the DRN paper's plain head (1x1
   classifier, bilinear upsampling of the logits) through
   ``tools/train.py``; mmengine logs the loss and an ETA every 10
   iterations. By default (``--amp auto``) it trains in bfloat16 autocast
   where a short measurement finds bfloat16 faster than float32 on this CPU,
   and in float32 elsewhere; the log says which and why. ``--amp off``
   always trains in float32 (docs/precision.md compares the two);
3. evaluates the final checkpoint through ``tools/test.py``: MMSeg's
   ``IoUMetric`` prints the per-class IoU table, MMSeg's
   ``SegLocalVisualizer`` saves every validation picture with ground truth
   beside prediction, and the predicted label maps are kept;
4. writes ``overview.png``: validation images, ground truth and predictions
   in the dataset's palette, enlarged, for a look at a glance.

Everything lands in ``work_dirs/drn_demo`` (``--work-dir``). Options after
``--`` go to both tools, e.g. ``python tools/demo.py -- --cfg-options
train_cfg.max_iters=200`` for a quicker, weaker run.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

HERE = osp.dirname(osp.abspath(__file__))
DEFAULT_CONFIG = osp.normpath(
    osp.join(HERE, '..', 'configs', 'demo', 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py')
)


def _run_tool(name: str, args: List[str]) -> None:
    """Run ``tools/<name>.py`` in its own process; its failure is the demo's."""
    command = [sys.executable, osp.join(HERE, f'{name}.py'), *args]
    status = subprocess.run(command).returncode
    if status != 0:
        raise SystemExit(f'[demo] tools/{name}.py failed with exit status {status}')


def save_overview(
    data_root: str,
    pred_dir: str,
    out_file: str,
    palette: Sequence[Sequence[int]],
    num: int = 12,
    columns: int = 3,
    scale: int = 3,
) -> str:
    """Tile ``num`` validation triplets (image | ground truth | prediction).

    Args:
        data_root (str): The demo dataset (``img_dir/val``, ``ann_dir/val``).
        pred_dir (str): Predicted label maps, as written by ``IoUMetric``.
        out_file (str): Where the picture goes.
        palette (Sequence[Sequence[int]]): RGB colour of each class.
        num (int): Number of validation images shown. Default: 12.
        columns (int): Triplets per row. Default: 3.
        scale (int): Nearest-neighbour enlargement. Default: 3.

    Returns:
        str: ``out_file``.
    """
    colours = np.asarray(palette, np.uint8)
    names = sorted(os.listdir(pred_dir))[:num]
    if not names:
        raise ValueError(f'pred_dir {pred_dir!r} holds no predictions')
    tiles = []
    for name in names:
        image = np.asarray(
            Image.open(osp.join(data_root, 'img_dir', 'val', name)).convert('RGB')
        )
        truth = np.asarray(Image.open(osp.join(data_root, 'ann_dir', 'val', name)))
        pred = np.asarray(Image.open(osp.join(pred_dir, name)))
        gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
        tiles.append(
            np.concatenate([image, gap, colours[truth], gap, colours[pred]], 1)
        )
    height, width = tiles[0].shape[:2]
    pad = 8
    rows = -(-len(tiles) // columns)
    grid = np.full(
        (rows * (height + pad) - pad, columns * (width + pad) - pad, 3), 255, np.uint8
    )
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        top, left = row * (height + pad), col * (width + pad)
        grid[top : top + height, left : left + width] = tile
    Image.fromarray(grid).resize(
        (grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST
    ).save(out_file)
    return out_file


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train and evaluate a DRN on generated scenes, on CPU'
    )
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='demo config')
    parser.add_argument(
        '--work-dir', default='work_dirs/drn_demo', help='output directory'
    )
    parser.add_argument(
        '--amp',
        choices=['auto', 'bf16', 'off'],
        default='auto',
        help="training precision (tools/train.py --amp): 'auto' (default) "
        "bfloat16 where measured faster than float32, else float32; 'off' "
        "float32; 'bf16' bfloat16",
    )
    parser.add_argument(
        'tool_args', nargs=argparse.REMAINDER, help='-- options passed to both tools'
    )
    args = parser.parse_args(argv)
    if args.tool_args[:1] == ['--']:
        args.tool_args = args.tool_args[1:]
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    start = time.time()
    from mmengine.config import Config

    from mmdrn.datasets import PALETTE, generate_demo_scenes

    # The datasets would draw the scenes themselves (generate=True); doing it
    # here first shows what happens.
    data_root = Config.fromfile(args.config).val_dataloader.dataset.data_root
    print(f'[demo] data: {data_root} (drawn on first use)', flush=True)
    meta = generate_demo_scenes(data_root)
    print(
        f'[demo] {meta["num_train"]} training and {meta["num_val"]} validation '
        f'scenes of {meta["size"][0]}x{meta["size"][1]} ready '
        f'({time.time() - start:.0f} s)',
        flush=True,
    )

    print(
        f'[demo] training: tools/train.py {args.config} --work-dir {args.work_dir} '
        f'--amp {args.amp}',
        flush=True,
    )
    _run_tool(
        'train',
        [args.config, '--work-dir', args.work_dir, '--amp', args.amp, *args.tool_args],
    )
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    train_time = time.time() - start

    show_dir = osp.join(args.work_dir, 'pictures')
    pred_dir = osp.join(args.work_dir, 'predictions')
    print(f'[demo] testing: tools/test.py {args.config} {checkpoint}', flush=True)
    metrics_file = osp.join(args.work_dir, 'metrics.json')
    _run_tool(
        'test',
        [args.config, checkpoint, '--work-dir', args.work_dir, '--show-dir', show_dir]
        + ['--out', pred_dir, '--metrics', metrics_file, *args.tool_args],
    )
    with open(metrics_file, encoding='utf-8') as f:
        metrics = json.load(f)
    overview = save_overview(
        data_root, pred_dir, osp.join(args.work_dir, 'overview.png'), PALETTE
    )
    pictures = glob.glob(osp.join(show_dir, 'vis_data', 'vis_image', '*.png'))
    print(
        f'[demo] mIoU {metrics["mIoU"]:.2f} (aAcc {metrics["aAcc"]:.2f}, '
        f'mAcc {metrics["mAcc"]:.2f}); training took {train_time / 60:.1f} min, '
        f'the whole demo {(time.time() - start) / 60:.1f} min',
        flush=True,
    )
    print(
        f'[demo] {len(pictures)} MMSeg visualizer pictures in '
        f'{osp.join(show_dir, "vis_data", "vis_image")}; overview: {overview}',
        flush=True,
    )
    return metrics


if __name__ == '__main__':
    main()
