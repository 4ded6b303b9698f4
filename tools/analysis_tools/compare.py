"""Compare DRNs with MMSegmentation's dilated ResNets on the demo data.

Trains and tests, each through ``tools/train.py`` and ``tools/test.py`` (one
process per run) and one training recipe, the demo configs of DRN-A-18,
DRN-C-26, DRN-D-22, MMSegmentation's ResNetV1c-18-D8 with the same plain head
and MMSegmentation's DeepLabV3 on it; DRN-C-26 and ResNetV1c-18-D8 with
several seeds. Writes into the work dir:

* ``compare.md``: mIoU (mean ± spread over seeds), IoU of the thin/small
  classes, parameters, FLOPs, CPU img/s, the full per-class table and
  whether the headline difference exceeds the spread;
* ``compare.json``: everything measured, run by run;
* ``compare_chart.png``: per-class IoU bars;
* ``compare_predictions.png``: the same validation scenes, one column per
  model;
* ``compare_gridding.png``: activation maps of DRN-A-18 and DRN-C-26.

Examples::

    python tools/analysis_tools/compare.py                 # the full study
    python tools/analysis_tools/compare.py --quick         # minutes: a try-out
    python tools/analysis_tools/compare.py --resume        # continue a study
    python tools/analysis_tools/compare.py --launcher pytorch --gpus 8
"""

import argparse
import os.path as osp
import sys
from typing import List, Optional

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, REPO)  # mmdrn from this checkout, installed or not

from mmdrn.openmmlab.analysis.compare import (  # noqa: E402
    DEMO_MODELS,
    QUICK_ITERS,
    StudySettings,
    run_study,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train, test and compare DRNs and MMSeg dilated ResNets '
        'on the demo data'
    )
    parser.add_argument('--work-dir', default='work_dirs/compare', help='output')
    parser.add_argument(
        '--models',
        nargs='+',
        default=[m.key for m in DEMO_MODELS],
        choices=[m.key for m in DEMO_MODELS],
        help='models to run (default: all)',
    )
    parser.add_argument(
        '--seeds', type=int, default=3, help='seeds of DRN-C-26 and ResNetV1c-18-D8'
    )
    parser.add_argument(
        '--other-seeds', type=int, default=1, help='seeds of the other models'
    )
    parser.add_argument(
        '--iters', type=int, help="training iterations (default: the configs' 1000)"
    )
    parser.add_argument(
        '--quick',
        action='store_true',
        help=f'a try-out: {QUICK_ITERS} iterations, one seed per model, short '
        'timing (overrides --seeds, --other-seeds and --iters)',
    )
    parser.add_argument(
        '--data-root', help="an existing demo dataset (default: the configs')"
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    parser.add_argument(
        '--gpus', type=int, default=1, help='processes per run with --launcher pytorch'
    )
    parser.add_argument('--cpu', action='store_true', help='train and test on CPU')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='reuse finished runs in the work dir and resume unfinished ones',
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs at a time (more than one: --launcher none only)',
    )
    parser.add_argument(
        '--scenes', type=int, default=6, help='validation scenes in the pictures'
    )
    parser.add_argument(
        '--speed-threads', type=int, default=1, help='CPU threads of the timing'
    )
    parser.add_argument('--speed-batch', type=int, default=8)
    parser.add_argument('--speed-rounds', type=int, default=3)
    parser.add_argument(
        '--speed-time', type=float, default=1.0, help='seconds per model per round'
    )
    parser.add_argument(
        '--gridding-scale',
        type=float,
        default=4.0,
        help='enlarge the scenes by this factor for the activation maps (at '
        '64x64 they are 8x8)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='config overrides for every run (both tools)',
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.other_seeds, args.iters = 1, 1, QUICK_ITERS
        args.speed_rounds, args.speed_time = 1, 0.5
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    settings = StudySettings(
        configs_dir=osp.join(REPO, 'configs', 'demo'),
        tools_dir=osp.join(REPO, 'tools'),
        work_dir=args.work_dir,
        models=tuple(args.models),
        seeds=args.seeds,
        other_seeds=args.other_seeds,
        iters=args.iters,
        data_root=args.data_root,
        launcher=args.launcher,
        gpus=args.gpus,
        cpu=args.cpu,
        cfg_options=list(args.cfg_options),
        resume=args.resume,
        jobs=args.jobs,
        num_scenes=args.scenes,
        speed_batch=args.speed_batch,
        speed_threads=args.speed_threads,
        speed_rounds=args.speed_rounds,
        speed_time=args.speed_time,
        gridding_scale=args.gridding_scale,
    )
    return run_study(settings, log=lambda m: print(f'[compare] {m}', flush=True))


if __name__ == '__main__':
    main()
