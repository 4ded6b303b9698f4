"""Channel-mean activation maps of a segmentation backbone's levels.

The DRN paper (Yu et al., CVPR 2017, Fig. 6) shows what degridding changes by
drawing the activations of the last levels: DRN-A's dilated 3x3
convolutions (dilation 2, then 4) sample their input on a sparse grid and
leave a grid pattern in the feature maps; DRN-C's levels 7 and 8 (dilation
2, then 1, no residual connection) remove it. :func:`activation_maps` returns,
for one image and any MMSeg model, the mean over channels of the chosen
backbone outputs, which :func:`~.figures.plot_activation_maps` draws side by
side for several models.
"""

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...utils.validation import check_float

__all__ = ['load_segmentor', 'read_image', 'level_names', 'activation_maps']


def load_segmentor(
    config: str,
    checkpoint: Optional[str] = None,
    cfg_options: Optional[dict] = None,
) -> nn.Module:
    """Build the MMSeg model of ``config`` on CPU, in eval mode.

    Args:
        config (str): MMSeg config file (or a loaded ``Config``).
        checkpoint (str, optional): Weights to load, every key required
            (``strict``); read with ``weights_only=True``. Default: None
            (the initial weights).
        cfg_options (dict, optional): Config fields to override, as
            ``tools/train.py --cfg-options`` takes them. Default: None.

    Returns:
        nn.Module: The model.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from ...utils import load_file
    from ..engine import register_scope, revert_sync_bn

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = register_scope(cfg)
    if scope != 'mmseg':
        raise ValueError(f'config must be an MMSeg config, got default_scope {scope!r}')
    from mmseg.registry import MODELS

    # Synchronised BN needs a process group; one CPU process has none.
    revert_sync_bn(cfg.model)
    # The scope only for building: the process-wide default stays as it was.
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        state = load_file(checkpoint)
        model.load_state_dict(state.get('state_dict', state), strict=True)
    return model.eval()


def read_image(path: str) -> np.ndarray:
    """An image file as MMSeg's ``LoadImageFromFile`` reads it (BGR, uint8)."""
    import mmcv

    image = mmcv.imread(path)
    if image is None:
        raise ValueError(f'cannot read an image from {path!r}')
    return image


def level_names(backbone: nn.Module) -> List[str]:
    """Names of the outputs of ``backbone``, in order.

    DRN backbones name their levels (``level6``, ``layer4`` ...); other
    backbones' outputs are numbered from their ``out_indices``.
    """
    indices = list(getattr(backbone, 'out_indices', ()))
    names = getattr(backbone, 'level_names', None)
    if names is not None:
        return [names[i] for i in indices]
    return [f'out{i}' for i in indices]


def _crop_to_image(
    feature: torch.Tensor, image_size: Tuple[int, int], input_size: Tuple[int, int]
) -> torch.Tensor:
    """The part of a feature map that covers the image (not the padding)."""
    rows = math.ceil(image_size[0] * feature.shape[-2] / input_size[0])
    cols = math.ceil(image_size[1] * feature.shape[-1] / input_size[1])
    return feature[..., :rows, :cols]


@torch.no_grad()
def activation_maps(
    model: nn.Module,
    image: np.ndarray,
    levels: Sequence[int] = (-3, -2, -1),
    scale: float = 1.0,
) -> List[Tuple[str, np.ndarray]]:
    """Mean over channels of the chosen backbone outputs for one image.

    The image goes through the model's own data preprocessor
    (normalisation, padding) and its backbone; each chosen output is averaged
    over its channels and cropped to the part that covers the image.

    Args:
        model (nn.Module): An MMSeg segmentor (``data_preprocessor`` and
            ``backbone``), e.g. from :func:`load_segmentor`.
        image (np.ndarray): ``(H, W, 3)`` uint8 BGR image
            (:func:`read_image`).
        levels (Sequence[int]): Indices into the backbone's outputs
            (negative counts from the end). Default: the last three.
        scale (float): Enlarge the image bilinearly by this factor before
            the forward pass, for larger maps. Default: 1.0.

    Returns:
        list[tuple[str, np.ndarray]]: ``(level name, float32 map)`` per
        level, in the order of ``levels``.

    Raises:
        ValueError: A level index is out of range, or ``image`` is not an
            ``(H, W, 3)`` uint8 array.
    """
    if not (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
    ):
        raise ValueError(
            f'image must be an (H, W, 3) uint8 array, got '
            f'{getattr(image, "dtype", type(image).__name__)} '
            f'{getattr(image, "shape", "")}'
        )
    scale = check_float('scale', scale, '> 0')
    if not scale > 0:
        raise ValueError(f'scale must be > 0, got {scale}')
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if scale != 1.0:
        size = [round(s * scale) for s in tensor.shape[1:]]
        tensor = (
            F.interpolate(
                tensor[None].float(), size=size, mode='bilinear', align_corners=False
            )[0]
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    image_size = tuple(tensor.shape[1:])
    inputs = model.data_preprocessor(dict(inputs=[tensor]), False)['inputs']
    outputs = model.backbone(inputs)
    names = level_names(model.backbone)
    if len(names) != len(outputs):
        names = [f'out{i}' for i in range(len(outputs))]
    maps = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int):
            raise ValueError(f'levels must be ints, got {level!r}')
        if not -len(outputs) <= level < len(outputs):
            raise ValueError(
                f'level {level} is out of range: the backbone returns '
                f'{len(outputs)} outputs ({", ".join(names)}); use '
                f'{-len(outputs)}..{len(outputs) - 1}'
            )
        feature = _crop_to_image(outputs[level][0], image_size, inputs.shape[-2:])
        maps.append((names[level], feature.float().mean(0).numpy()))
    return maps
