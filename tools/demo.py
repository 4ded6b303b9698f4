"""The embedded demo: train a DRN on generated street scenes, on CPU.

One command, no download::

    python tools/demo.py

1. draws the demo dataset into ``data/drn_demo`` if it is not there
   (:mod:`mmdrn.datasets.demo_scenes`, deterministic, a few seconds);
2. trains DRN-C-26 with the DRN paper's plain head (1x1 classifier, bilinear
   upsampling) through ``tools/train.py``, logging progress and an ETA;
3. evaluates the final checkpoint through ``tools/test.py``: MMSeg's
   ``IoUMetric`` prints the per-class IoU table, and MMSeg's
   ``SegLocalVisualizer`` saves every validation picture with its ground
   truth and prediction side by side.

Everything lands in ``work_dirs/drn_demo`` (``--work-dir``). Options after
``--`` go to both tools, e.g. ``python tools/demo.py -- --cfg-options
train_cfg.max_iters=200`` for a quicker, weaker run.
"""

import argparse
import glob
import importlib.util
import os.path as osp
import time
from typing import List, Optional

HERE = osp.dirname(osp.abspath(__file__))
DEFAULT_CONFIG = osp.join(
    HERE, '..', 'configs', 'demo', 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-128x128.py'
)


def _load_tool(name: str):
    """Import ``tools/<name>.py`` by path (``test`` would be the stdlib's)."""
    spec = importlib.util.spec_from_file_location(
        f'mmdrn_tools_{name}', osp.join(HERE, f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train and evaluate a DRN on generated scenes, on CPU'
    )
    parser.add_argument(
        '--config', default=osp.normpath(DEFAULT_CONFIG), help='demo config'
    )
    parser.add_argument(
        '--work-dir', default='work_dirs/drn_demo', help='output directory'
    )
    parser.add_argument(
        'tool_args', nargs=argparse.REMAINDER, help='-- options for both tools'
    )
    args = parser.parse_args(argv)
    if args.tool_args[:1] == ['--']:
        args.tool_args = args.tool_args[1:]
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    start = time.time()
    train, test = _load_tool('train'), _load_tool('test')
    from mmengine.config import Config

    from mmdrn.datasets import generate_demo_scenes

    # The datasets would draw the scenes themselves (generate=True); doing it
    # here first shows what happens.
    data_root = Config.fromfile(args.config).train_dataloader.dataset.data_root
    print(f'[demo] data: {data_root} (drawn on first use)', flush=True)
    meta = generate_demo_scenes(data_root)
    print(
        f'[demo] {meta["num_train"]} training and {meta["num_val"]} validation '
        f'scenes of {meta["size"][0]}x{meta["size"][1]} ready '
        f'({time.time() - start:.0f} s)',
        flush=True,
    )

    print(
        f'[demo] training: tools/train.py {args.config} --work-dir {args.work_dir}',
        flush=True,
    )
    train.main([args.config, '--work-dir', args.work_dir, *args.tool_args])
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    train_time = time.time() - start

    show_dir = osp.abspath(osp.join(args.work_dir, 'predictions'))
    print(f'[demo] testing: tools/test.py {args.config} {checkpoint}', flush=True)
    metrics = test.main(
        [
            args.config,
            checkpoint,
            '--work-dir',
            args.work_dir,
            '--show-dir',
            show_dir,
            *args.tool_args,
        ]
    )
    pictures = sorted(glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True))
    print(
        f'[demo] mIoU {metrics["mIoU"]:.2f} (aAcc {metrics["aAcc"]:.2f}, mAcc '
        f'{metrics["mAcc"]:.2f}) after {train_time / 60:.1f} min of training, '
        f'{(time.time() - start) / 60:.1f} min in all',
        flush=True,
    )
    if pictures:
        print(
            f'[demo] {len(pictures)} prediction pictures in {osp.dirname(pictures[0])}',
            flush=True,
        )
    return metrics


if __name__ == '__main__':
    main()
