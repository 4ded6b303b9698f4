"""Argmax agreement of the inference fast path with the eager float32 model."""

from typing import Any, Dict, Iterator, Optional, Union

import torch

__all__ = ['agreement']


def _test_batches(cfg: Any, limit: Optional[int]) -> Iterator[Dict[str, Any]]:
    from mmengine.runner import Runner

    loader = Runner.build_dataloader(cfg.test_dataloader)
    for index, data in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield data


def agreement(
    config: str,
    checkpoint: str,
    dtype: Union[str, torch.dtype] = 'auto',
    channels_last: bool = True,
    limit: Optional[int] = None,
) -> Dict[str, Any]:
    """Argmax agreement of the fast path with the float32 eager model.

    Runs the config's test set through the eager float32 model and through
    :func:`mmdrn.inference.optimize_for_inference` (BN folding,
    ``channels_last``, ``dtype``) and compares the predicted labels pixel by
    pixel.

    Args:
        config (str): An MMSeg config (the demo config, for example).
        checkpoint (str): Its trained weights (read with
            :func:`mmdrn.utils.load_file`, weights only; refused unless they
            fit the model, see
            :func:`mmdrn.openmmlab.engine.load_checkpoint_strict`).
        dtype (str | torch.dtype): Fast-path dtype. Default: ``'auto'``.
        channels_last (bool): Default: True.
        limit (int, optional): Use at most this many test batches.

    Returns:
        dict: ``pixels``, ``images``, ``agree`` (fraction of equal labels),
        ``dtype`` (the fast path's) and ``folded`` (BN layers folded).

    Raises:
        ValueError: The config is not an MMSeg config.
        CheckpointMismatchError: The checkpoint does not fit the model.
    """
    from mmengine.config import Config

    from ..inference import optimize_for_inference
    from ..openmmlab.engine import load_checkpoint_strict, register_scope
    from .cases import build_config_model

    cfg = Config.fromfile(config)
    scope = register_scope(cfg)
    if scope != 'mmseg':
        raise ValueError(f'agreement needs an MMSeg config, got scope {scope!r}')
    cfg.model.backbone.pop('init_cfg', None)
    model, _ = build_config_model(cfg)
    load_checkpoint_strict(model, checkpoint)
    model.eval()
    fast = optimize_for_inference(model, dtype=dtype, channels_last=channels_last)
    agree = pixels = images = 0
    for data in _test_batches(cfg, limit):
        with torch.no_grad():
            ref = model.test_step(data)
        out = fast.test_step(data)
        for a, b in zip(ref, out):
            a, b = a.pred_sem_seg.data, b.pred_sem_seg.data
            agree += int((a == b).sum())
            pixels += a.numel()
            images += 1
    return dict(
        pixels=pixels,
        images=images,
        agree=agree / max(pixels, 1),
        dtype=str(fast.dtype).replace('torch.', ''),
        folded=len(fast.folded_bn_pairs),
    )
