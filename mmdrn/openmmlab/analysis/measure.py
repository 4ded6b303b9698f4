"""Parameters, FLOPs and CPU inference throughput of MMSeg segmentors."""

import logging
import statistics
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ...utils.validation import check_int

__all__ = ['measure_models']


class _Inference(nn.Module):
    """What is counted and timed: backbone, head, logits at the input size."""

    def __init__(self, segmentor: nn.Module, size: Tuple[int, int]) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.metas = [dict(img_shape=tuple(size), pad_shape=tuple(size))]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.segmentor.encode_decode(inputs, self.metas * inputs.shape[0])


def _class_path(module: Optional[nn.Module]) -> Optional[str]:
    if module is None:
        return None
    return f'{type(module).__module__}.{type(module).__name__}'


def measure_models(
    models: Dict[str, nn.Module],
    size: Tuple[int, int],
    batch: int = 8,
    threads: int = 1,
    rounds: int = 3,
    seconds: float = 1.0,
) -> Dict[str, Dict[str, Any]]:
    """Parameters, FLOPs and CPU inference throughput of MMSeg segmentors.

    FLOPs: mmengine's ``get_model_complexity_info`` for one image of
    ``size``; its counter counts a multiply-add as one FLOP and counts
    convolutions and matrix products only (not norms, pooling or the
    resizing). Throughput:
    ``encode_decode`` (backbone, head, bilinear upsampling of the logits to
    the input size) on a random float32 batch, in ``torch.inference_mode``
    on ``threads`` CPU threads; the models are timed in turns (A B C A B C
    ...), ``rounds`` turns of about ``seconds`` each
    (``torch.utils.benchmark.Timer.blocked_autorange``), so a change of the
    machine's load hits all of them; the median over turns is reported.

    Args:
        models (dict[str, nn.Module]): Name -> segmentor (eval mode, CPU).
        size (tuple[int, int]): ``(H, W)`` of the input.
        batch (int): Images per timed forward pass. Default: 8.
        threads (int): torch threads while timing. Default: 1.
        rounds (int): Turns. Default: 3.
        seconds (float): Minimum timed seconds per model per turn.
            Default: 1.0.

    Returns:
        dict: Name -> ``params``, ``flops``, ``img_per_s``,
        ``img_per_s_turns``, ``backbone``/``decode_head`` class paths.
    """
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    from torch.utils.benchmark import Timer

    check_int('batch', batch)
    check_int('threads', threads)
    check_int('rounds', rounds)
    results = {}
    wrapped = {}
    logger = MMLogger.get_current_instance()
    for name, model in models.items():
        wrapped[name] = _Inference(model.eval(), size)
        # The counter warns about every operator it does not count (norms,
        # pooling, resizing): a page of warnings per model.
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            info = get_model_complexity_info(
                wrapped[name], input_shape=(3, *size), show_table=False, show_arch=False
            )
        finally:
            logger.setLevel(level)
        results[name] = dict(
            params=int(sum(p.numel() for p in model.parameters())),
            flops=int(info['flops']),
            backbone=_class_path(getattr(model, 'backbone', None)),
            decode_head=_class_path(getattr(model, 'decode_head', None)),
            img_per_s_turns=[],
        )
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = torch.randn(batch, 3, *size)
        with torch.inference_mode():
            for module in wrapped.values():  # warm-up
                module(inputs)
            for _ in range(rounds):
                for name, module in wrapped.items():
                    timer = Timer(
                        'module(inputs)', globals=dict(module=module, inputs=inputs)
                    )
                    measurement = timer.blocked_autorange(min_run_time=seconds)
                    results[name]['img_per_s_turns'].append(batch / measurement.median)
    finally:
        torch.set_num_threads(saved)
    for entry in results.values():
        entry['img_per_s'] = statistics.median(entry['img_per_s_turns'])
    return results
