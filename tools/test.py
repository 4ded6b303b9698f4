"""Test (evaluate) a checkpoint with an MMSegmentation or mmpretrain config.

A thin wrapper on mmengine's ``Runner``, like ``tools/train.py``. The
checkpoint must fit the config's model (every key, every shape); a file of
another model is refused with an error that says what it holds
(:class:`StrictLoadHook`). ``--metrics FILE`` keeps the metrics as JSON.

Examples::

    python tools/test.py CONFIG work_dirs/x/iter_1000.pth
    python tools/test.py CONFIG CKPT --show-dir vis     # save drawn predictions
    python tools/test.py CONFIG CKPT --out preds        # MMSeg: PNG per image
    python tools/test.py CONFIG CKPT --fast             # BN folded, NHWC, auto dtype
    python tools/test.py CONFIG CKPT --allow-partial-load  # a CKPT that does not fit
    bash tools/dist_test.sh CONFIG CKPT 8
"""

import argparse
import json
import os
from typing import Any, List, Optional

from mmengine.config import Config, DictAction
from mmengine.hooks import Hook

from mmdrn.openmmlab.checkpoint import LoadReport, check_fit
from mmdrn.openmmlab.runtime import LAUNCHERS


def _add_output_args(parser: argparse.ArgumentParser) -> None:
    """What is kept of the test: predictions, metrics, drawn pictures."""
    parser.add_argument(
        '--out',
        help='keep the predictions: a directory of PNGs (MMSeg) or a pickle '
        'file (mmpretrain)',
    )
    parser.add_argument('--metrics', help='write the metrics to this JSON file')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument(
        '--show-dir',
        help='save the drawn predictions (ground truth beside prediction) '
        'under SHOW_DIR/vis_data/vis_image',
    )
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds each --show picture stays'
    )


def _add_fast_args(parser: argparse.ArgumentParser) -> None:
    """The inference fast path (mmdrn.openmmlab.hooks.FastInferenceHook)."""
    parser.add_argument(
        '--fast',
        action='store_true',
        help='inference fast path (mmdrn.inference.optimize_for_inference): '
        'batch norms folded into the convolutions, channels_last, and '
        '--fast-dtype autocast',
    )
    parser.add_argument(
        '--fast-dtype',
        choices=['auto', 'fp32', 'bf16', 'fp16'],
        default='auto',
        help="compute dtype of --fast; 'auto': the precision a short "
        'measurement on this machine finds fastest (bf16 on CPU only where it '
        'beats fp32; cached per machine, the choice and its reason are logged)',
    )
    parser.add_argument(
        '--compile',
        action='store_true',
        help='with --fast: also torch.compile the backbone, neck and heads',
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint with mmengine')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the evaluation logs')
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='test even if the checkpoint does not fit the model (missing, '
        'unexpected or reshaped keys); what was not loaded is reported next '
        'to the metrics. Without it such a checkpoint is an error',
    )
    _add_output_args(parser)
    parser.add_argument(
        '--cpu', action='store_true', help='run on CPU even when a GPU is visible'
    )
    parser.add_argument(
        '--tta', action='store_true', help='test-time augmentation (config tta_*)'
    )
    _add_fast_args(parser)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config fields, e.g. test_dataloader.batch_size=2',
    )
    parser.add_argument(
        '--launcher',
        choices=LAUNCHERS,
        default='none',
        help='job launcher',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if not args.fast and (args.compile or args.fast_dtype != 'auto'):
        parser.error('--compile and --fast-dtype only apply with --fast')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def setup_show_dir(cfg: Config, scope: str, args: argparse.Namespace) -> None:
    """``--show-dir`` / ``--show``: make testing draw its predictions.

    MMSeg's ``SegVisualizationHook`` draws every ``interval``-th test image
    and its ``SegLocalVisualizer`` saves the pictures under
    ``show_dir/vis_data/vis_image``; mmpretrain's ``VisualizationHook``
    writes to ``show_dir``.

    Raises:
        KeyError: The config has no ``default_hooks.visualization``.
    """
    if args.show_dir is None and not args.show:
        return
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise KeyError('the config has no default_hooks.visualization to draw with')
    if scope == 'mmseg':
        hook.draw = True
        if args.show_dir is not None:
            cfg.visualizer.save_dir = args.show_dir
    else:
        hook.enable = True
        if args.show_dir is not None:
            hook.out_dir = args.show_dir
    if args.show:
        hook.show = True
        hook.wait_time = args.wait_time


def setup_out(cfg: Config, scope: str, out: Optional[str]) -> None:
    """``--out``: MMSeg's ``IoUMetric`` writes each prediction as a PNG into
    the directory ``out``; for mmpretrain a ``DumpResults`` metric pickles
    them to the file ``out``."""
    if out is None:
        return
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, list) else [evaluators]
    if scope == 'mmpretrain':
        cfg.test_evaluator = evaluators + [dict(type='DumpResults', out_file_path=out)]
        return
    for evaluator in evaluators:
        evaluator['output_dir'] = out
        evaluator['keep_results'] = True


class StrictLoadHook(Hook):
    """Check the Runner's ``load_from`` checkpoint before mmengine loads it.

    mmengine calls ``after_load_checkpoint`` with the loaded file before it
    puts the weights into the model: a checkpoint that does not fit
    (:func:`mmdrn.openmmlab.checkpoint.check_fit`) stops the run there,
    before any metric. With ``allow_partial`` the run goes on and the
    summary is logged again after the test metrics.

    Args:
        filename (str): The checkpoint, as named in messages.
        allow_partial (bool): Let a checkpoint that does not fit be loaded
            partly. Default: False.
    """

    # after the LoggerHook, which prints the metrics in after_test_epoch
    priority = 'LOWEST'

    def __init__(self, filename: str, allow_partial: bool = False) -> None:
        self.filename = repr(str(filename))
        self.allow_partial = allow_partial
        self.report: Optional[LoadReport] = None

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        """Refuse (or, allowed, record) a checkpoint that does not fit."""
        self.report = check_fit(
            runner.model, checkpoint, self.filename, self.allow_partial
        )
        self._warn(runner, 'partial load of')

    def after_test_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        """Repeat what was not loaded beside the metrics."""
        # worded differently: mmengine's logger drops repeated warnings
        self._warn(
            runner, 'the metrics above are of a partly loaded model: partial load of'
        )

    def _warn(self, runner: Any, opening: str) -> None:
        if self.report is not None and not self.report.fits:
            runner.logger.warning(
                f'{opening} {self.filename} (allowed), {self.report.loaded} model '
                f'tensors loaded.\n{self.report.summary()}'
            )


def main(argv: Optional[List[str]] = None) -> Any:
    args = parse_args(argv)
    if args.cpu:
        os.environ['CUDA_VISIBLE_DEVICES'] = '-1'
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from mmdrn.openmmlab.hooks import FastInferenceHook
    from mmdrn.openmmlab.runtime import (
        load_tool_config,
        register_scope,
        setup_device,
        setup_hooks,
        teardown_distributed,
    )
    from mmdrn.utils.file_io import atomic_write

    cfg = load_tool_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    scope = register_scope(cfg)
    setup_device(cfg, args.launcher)
    # mmengine's training checkpoints load under torch >= 2.6 (mmdrn.openmmlab.compat)
    setup_hooks(cfg, only=['CheckpointCompatHook'])
    setup_show_dir(cfg, scope, args)
    setup_out(cfg, scope, args.out)
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(
                f'--tta needs tta_model and tta_pipeline in the config; '
                f'{args.config} has neither or only one of them'
            )
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    runner = Runner.from_cfg(cfg)
    # mmengine loads load_from non-strictly; a checkpoint of another model
    # would give a metric that looks like a result.
    runner.register_hook(StrictLoadHook(args.checkpoint, args.allow_partial_load))
    if args.fast:
        runner.register_hook(
            FastInferenceHook(dtype=args.fast_dtype, compile=args.compile)
        )
    with teardown_distributed():
        metrics = runner.test()
        if args.metrics and is_main_process():
            atomic_write(args.metrics, json.dumps(metrics, indent=1, default=float))
    return metrics


if __name__ == '__main__':
    main()
