"""The fast path's argmax agreement with the eager fp32 model on a test set.

An MMSeg config's test set runs on the CPU through the model with the
checkpoint (which must fit the model) and through
:func:`mmdrn.inference.optimize_for_inference` of it; the share of pixels
whose labels agree is printed, and written with ``--json``. Results:
docs/benchmarks.md.

    python tools/analysis_tools/benchmark_agreement.py CONFIG CHECKPOINT --dtype bf16
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

import torch

from mmdrn.inference import SHORT_NAMES, dtype_name, optimize_for_inference
from mmdrn.utils import CheckpointError


def agreement(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the test set through both models; count the agreeing pixels."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.runner import Runner
    from mmseg.apis import init_model

    from mmdrn.openmmlab.checkpoint import load_checkpoint_strict

    cfg = Config.fromfile(args.config)
    scope = cfg.get('default_scope', 'mmseg')
    if scope != 'mmseg':
        raise ValueError(f'the agreement needs an MMSeg config, got scope {scope!r}')
    model = revert_sync_batchnorm(init_model(cfg, device='cpu'))
    load_checkpoint_strict(model, args.checkpoint)
    model.eval()
    fast = optimize_for_inference(model, args.dtype, args.channels_last)
    agree = pixels = images = 0
    for data in Runner.build_dataloader(cfg.test_dataloader):
        with torch.no_grad():
            pairs = list(zip(model.test_step(data), fast.test_step(data)))
        for a, b in ((a.pred_sem_seg.data, b.pred_sem_seg.data) for a, b in pairs):
            agree, pixels = agree + int((a == b).sum()), pixels + a.numel()
            images += 1
    folded, dtype = len(fast.folded_bn_pairs), dtype_name(fast.dtype)
    share = f'{100 * agree / pixels:.3f}% of {pixels} pixels ({images} images)'
    print(f'fast path ({dtype}, {folded} BN folded) vs eager fp32: {share} agree')
    return dict(
        pixels=pixels, images=images, agree=agree / pixels, dtype=dtype, folded=folded
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add('config', help='an MMSeg config file: its model and test set')
    add('checkpoint', help='the weights, which must fit the model')
    dtypes = ['auto', *SHORT_NAMES]
    add('--dtype', choices=dtypes, default='auto', help="the fast path's dtype")
    add(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='the fast path in the channels_last memory format',
    )
    add('--json', help='write the counts as JSON here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        result = agreement(args)
    except (ValueError, CheckpointError) as err:  # bad input, named
        sys.exit(f'benchmark_agreement.py: error: {err}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
