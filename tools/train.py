"""Train a model from an MMSegmentation or mmpretrain config.

Argument parsing plus mmengine's ``Runner``: each flag becomes a config
edit (:mod:`mmdrn.openmmlab.runtime`), so the config says how the run
behaves. A config that lacks the hooks of ``configs/_base_/mmdrn_runtime.py``
(checkpoint compatibility, NaN guard, pre-emption, random state) gets them;
datasets get the data checks (``CheckedDataset``) unless
``data_checks=dict(enabled=False)``.

Examples::

    python tools/train.py configs/demo/fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py
    python tools/train.py CONFIG --resume                  # latest in work dir
    python tools/train.py CONFIG --resume work_dirs/x/iter_4000.pth
    python tools/train.py CONFIG --amp --cfg-options train_dataloader.batch_size=4
    python tools/train.py CONFIG --amp bf16                # bfloat16 even if slower
    bash tools/dist_train.sh CONFIG 8                     # torchrun, 8 processes
    python tools/train.py CONFIG --preempt-signal USR1    # slurm --signal=USR1@120

On SIGTERM (and each ``--preempt-signal``) training finishes the iteration in
progress, saves a checkpoint that ``--resume`` continues from, and exits with
status 75 (``mmdrn.openmmlab.hooks.PREEMPTED_EXIT_CODE``) for the job script
to requeue on; see ``PreemptionHook``.

Without CUDA (or with ``--cpu``) any config runs on CPU: SyncBN becomes BN,
``--amp`` uses bfloat16 where it was measured faster than float32 (see
:func:`mmdrn.openmmlab.runtime.setup_amp`), and distributed runs use the gloo backend.
"""

import argparse
import os
from typing import Any, List, Optional

# Importing torch does not initialise CUDA: --cpu can still hide the GPUs.
import torch.nn as nn
from mmengine.config import DictAction

from mmdrn.openmmlab.hooks.preemption import parse_signal
from mmdrn.openmmlab.runtime import AMP_MODES, LAUNCHERS


def _signal_name(value: str) -> str:
    try:
        return parse_signal(value).name
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_device_args(parser: argparse.ArgumentParser) -> None:
    """Where and in which precision training runs."""
    parser.add_argument(
        '--amp',
        nargs='?',
        const='auto',
        default='off',
        choices=AMP_MODES,
        help="mixed precision. 'auto' (also a bare --amp): float16 on GPU; on "
        'CPU bfloat16 where a short measurement finds it faster than float32 '
        '(cached per machine), else float32, with the measured ratio in the log; '
        "'bf16' / 'fp16' force one; 'off' (the default) trains in float32",
    )
    parser.add_argument(
        '--cpu',
        action='store_true',
        help='run on CPU even when a GPU is visible',
    )
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher',
    )
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def _add_preemption_args(parser: argparse.ArgumentParser) -> None:
    """The PreemptionHook's signals (docs/reliability.md, section 5)."""
    parser.add_argument(
        '--preempt-signal',
        action='append',
        default=[],
        type=_signal_name,
        metavar='SIGNAL',
        help='besides SIGTERM, a signal (e.g. USR1) on which to save a '
        'checkpoint and exit with status 75; repeatable',
    )
    parser.add_argument(
        '--no-preempt',
        action='store_true',
        help='do not handle SIGTERM: it ends training at once, unsaved',
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with mmengine')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CHECKPOINT',
        help='resume from CHECKPOINT (an error unless it is a complete training '
        'checkpoint), or without a value from the newest complete one in the work '
        'dir, skipping damaged files with a warning, else start from scratch '
        '(mmdrn.openmmlab.checkpoint)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config fields, e.g. train_dataloader.batch_size=2',
    )
    _add_device_args(parser)
    _add_preemption_args(parser)
    args = parser.parse_args(argv)
    if args.no_preempt and args.preempt_signal:
        parser.error('--preempt-signal and --no-preempt exclude each other')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def check_class_weights(model: nn.Module) -> None:
    """Compare each decode head's loss ``class_weight`` with its classes.

    A class weight list of the wrong length otherwise fails at the first
    loss with torch's "weight tensor should be defined either for all N
    classes or no classes".

    Args:
        model (nn.Module): A built segmentor (any wrapper is looked through).

    Raises:
        ValueError: Naming the head, the loss, both lengths.
    """
    for name, module in model.named_modules():
        losses = getattr(module, 'loss_decode', None)
        num_classes = getattr(module, 'num_classes', None)
        if losses is None or num_classes is None:
            continue
        if not isinstance(losses, nn.ModuleList):
            losses = [losses]
        # A binary head may predict one channel for its two classes.
        expected = {num_classes, getattr(module, 'out_channels', num_classes)}
        for loss in losses:
            weight = getattr(loss, 'class_weight', None)
            if weight is None or len(weight) in expected:
                continue
            raise ValueError(
                f'{name or "model"}: class_weight of '
                f'{type(loss).__name__} has {len(weight)} entries but '
                f'num_classes is {num_classes}; give one weight per class'
            )


def main(argv: Optional[List[str]] = None) -> Any:
    args = parse_args(argv)
    if args.cpu:
        # Before anything initialises CUDA: mmengine then picks the CPU.
        os.environ['CUDA_VISIBLE_DEVICES'] = '-1'
    from mmengine.runner import Runner

    from mmdrn.openmmlab.checkpoint import setup_resume
    from mmdrn.openmmlab.datasets import add_data_checks
    from mmdrn.openmmlab.runtime import (
        load_tool_config,
        register_scope,
        setup_amp,
        setup_device,
        setup_hooks,
        teardown_distributed,
    )

    cfg = load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    register_scope(cfg)
    device = setup_device(cfg, args.launcher)
    setup_resume(cfg, args.resume)
    setup_amp(cfg, device, args.amp)
    setup_hooks(cfg, preempt=not args.no_preempt, signals=args.preempt_signal)
    add_data_checks(cfg)

    runner = Runner.from_cfg(cfg)
    check_class_weights(runner.model)
    with teardown_distributed():
        return runner.train()


if __name__ == '__main__':
    main()
