"""Export a trained mmdrn model to ONNX or OpenVINO IR.

Works for the MMSegmentation segmentors of mmdrn's configs (``EncoderDecoder``
with a DRN backbone and an FCN, ``ContextHead`` or ``ASPPHead`` head, with or
without ``ASPPNeck``) and for mmpretrain classifiers. The exported graph takes
a normalised image batch ``N x 3 x H x W`` (the config's
``data_preprocessor`` mean, std and channel order, stored in the ONNX
metadata) and gives the logits at the input size, or the labels with
``--output labels``. The checkpoint must fit the config exactly (the rule of
``tools/test.py``); files are written to a temporary name and renamed, so an
interrupted export leaves no partial file. Needs ``pip install mmdrn[deploy]``.

Examples::

    python tools/deployment/export.py CONFIG CKPT --format onnx --out model.onnx
    python tools/deployment/export.py CONFIG CKPT --format onnx --out model.onnx \\
        --shape 512 1024 --dynamic --verify
    python tools/deployment/export.py CONFIG CKPT --format openvino \\
        --out model.xml --output labels --verify
"""

import argparse
import importlib
import importlib.util
import os
import os.path as osp
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

FORMATS = {'onnx': '.onnx', 'openvino': '.xml'}
# What each format needs from the deploy extra (torch's ONNX exporter runs on
# onnxscript and onnx).
NEEDS = {
    'onnx': ('onnx', 'onnxscript', 'onnxruntime'),
    'openvino': ('onnx', 'onnxscript', 'openvino'),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Export an mmdrn model to ONNX or OpenVINO IR'
    )
    parser.add_argument('config', help='config file (MMSeg or mmpretrain)')
    parser.add_argument('checkpoint', help='checkpoint that fits the config')
    parser.add_argument(
        '--format', required=True, choices=list(FORMATS), help='what to write'
    )
    parser.add_argument(
        '--out',
        required=True,
        help='the file to write: *.onnx, or *.xml for OpenVINO (the weights go '
        'to the .bin beside it)',
    )
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help="input height and width, multiples of the backbone's output stride "
        '(plus 1 for a head with align_corners=True); default: the nearest such '
        "size to the config's crop_size, else 512 512 (segmentors) or 224 224 "
        '(classifiers)',
    )
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='batch, height and width are dynamic (any size runs; --shape is '
        'the size traced and verified)',
    )
    parser.add_argument(
        '--output',
        choices=['logits', 'labels'],
        default='logits',
        help='logits at the input size (default), or the argmax labels',
    )
    parser.add_argument(
        '--verify',
        action='store_true',
        help='run the exported model and PyTorch on the same random input and '
        'print the largest relative difference and the argmax agreement '
        '(with --dynamic also at a second size)',
    )
    parser.add_argument(
        '--allow-partial-load',
        action='store_true',
        help='export even if the checkpoint does not fit the model (what was '
        'not loaded keeps its initialisation and is reported); without it such '
        'a checkpoint is an error, as in tools/test.py',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config fields, e.g. model.backbone.output_stride=16',
    )
    return parser.parse_args(argv)


def check_deploy_extra(fmt: str) -> None:
    """Refuse to start without the packages ``fmt`` needs."""
    missing = [name for name in NEEDS[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f'--format {fmt} needs {", ".join(missing)}: install them with '
            f"pip install 'mmdrn[deploy]' (requirements/deploy.txt)"
        )


def check_out(fmt: str, out: str) -> None:
    if not out.endswith(FORMATS[fmt]):
        raise ValueError(
            f'--format {fmt} writes a {FORMATS[fmt]} file; --out is {out!r}'
        )
    if osp.isdir(out):
        raise IsADirectoryError(f'--out {out!r} is a directory')


def build_model(
    cfg: Any, checkpoint: str, allow_partial: bool = False
) -> Tuple[Any, str]:
    """Build the config's model on CPU and load ``checkpoint`` strictly.

    SyncBN becomes BN (the same computation in eval mode) and no pretrained
    weights are fetched: every tensor comes from the checkpoint.
    """
    from mmengine.registry import DefaultScope

    from mmdrn.openmmlab.checkpoint import load_checkpoint_strict
    from mmdrn.openmmlab.runtime import register_scope, revert_sync_bn

    scope = register_scope(cfg)
    revert_sync_bn(cfg.model)
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    report = load_checkpoint_strict(model, checkpoint, allow_partial)
    if not report.fits:
        print(f'partial load of {checkpoint}:\n{report.summary()}')
    return model.eval(), scope


def grid(model: Any) -> Tuple[int, int]:
    """The output stride of the model's backbone (1: unknown) and the offset of
    the sizes that fit it (1 for a head with ``align_corners=True``)."""
    stride = getattr(getattr(model, 'backbone', None), 'output_stride', None) or 1
    head = getattr(model, 'decode_head', None)
    return stride, int(stride > 1 and bool(getattr(head, 'align_corners', False)))


def fit(shape: Sequence[int], stride: int, offset: int) -> List[int]:
    """The sizes of the grid nearest to ``shape``."""
    return [max(stride, round((s - offset) / stride) * stride) + offset for s in shape]


def default_shape(cfg: Any, scope: str, model: Any) -> Tuple[int, int]:
    """The config's ``crop_size`` on the model's grid (DeepLab's 513 crops
    become 512 with ``align_corners=False``); else 512 or 224."""
    crop = cfg.get('crop_size') or ((512, 512) if scope == 'mmseg' else (224, 224))
    shape = tuple(fit(crop, *grid(model)))
    if shape != tuple(crop):
        print(
            f'no --shape: {shape[0]} {shape[1]}, the crop_size {list(crop)} on the grid'
        )
    return shape


def check_shape(model: Any, shape: Sequence[int]) -> int:
    """Refuse a size the model's grid does not fit; return the output stride.

    A DRN at output stride ``s`` computes its maps on a grid of ``s x s``
    pixel cells. At a multiple of ``s`` (a multiple plus one for a head with
    ``align_corners=True``, DeepLab's convention) the bilinear upsampling puts
    every cell on the pixels it was computed from; at another size the last
    cell is cut off and the labels shift by up to ``s / 2`` pixels against
    the image. Backbones without an ``output_stride`` are not checked.
    """
    if min(shape) < 1:
        raise ValueError(f'--shape must be positive, got {list(shape)}')
    stride, offset = grid(model)
    if any((size - offset) % stride for size in shape):
        rule = f'a multiple of {stride}' + (' plus 1' if offset else '')
        near = fit(shape, stride, offset)
        raise ValueError(
            f'--shape {shape[0]} {shape[1]}: height and width must each be {rule} '
            f"(the backbone's output stride is {stride}"
            + (', and the head resizes with align_corners=True' if offset else '')
            + f'), e.g. --shape {near[0]} {near[1]}'
        )
    return stride


def metadata(cfg: Any, output: str) -> Dict[str, str]:
    """What a runtime needs to feed the model, as ONNX ``metadata_props``."""
    # MMSeg configs keep it in the model, mmpretrain's at the top level
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    fields = {
        'mmdrn_config': osp.basename(cfg.filename),
        'output': output,
        'mean': pre.get('mean'),
        'std': pre.get('std'),
        'bgr_to_rgb': pre.get('bgr_to_rgb', pre.get('to_rgb')),
    }
    return {key: str(value) for key, value in fields.items() if value is not None}


def export(args: argparse.Namespace, model: Any, cfg: Any, shape: Sequence[int]):
    """Write ``args.out``; return the wrapped model that was exported."""
    from mmdrn.deploy import ExportWrapper, convert_openvino, example_input, export_onnx

    wrapper = ExportWrapper(model, args.output)
    example = example_input(shape)
    meta = metadata(cfg, args.output)
    if args.format == 'onnx':
        export_onnx(wrapper, example, args.out, args.dynamic, args.output, meta)
        return wrapper
    directory = osp.dirname(osp.abspath(args.out))
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix='.export-') as tmp:
        onnx_path = osp.join(tmp, 'model.onnx')
        export_onnx(wrapper, example, onnx_path, args.dynamic, args.output, meta)
        convert_openvino(onnx_path, args.out)
    return wrapper


def verify(
    args: argparse.Namespace, wrapper: Any, shape: Sequence[int], stride: int
) -> List[Dict[str, Any]]:
    """Compare the written model with PyTorch; print and return one row per run."""
    import torch

    from mmdrn.deploy import build_engine, compare, example_input

    engines = ['onnxruntime'] if args.format == 'onnx' else ['openvino-f32']
    if args.format == 'openvino':
        engines.append('openvino-bf16')
    shapes = [tuple(shape)]
    if args.dynamic:
        shapes.append((shape[0] + stride, shape[1] + 2 * stride))
    rows = []
    for engine in engines:
        run = build_engine(engine, path=args.out)
        for size in shapes:
            x = example_input(size, seed=1)
            with torch.no_grad():
                reference = wrapper(x).numpy()
            out = run(x.numpy())
            if args.output == 'labels':
                row = dict(
                    max_rel_diff=None, agreement=float((out == reference).mean())
                )
            else:
                row = compare(reference, out)
            rows.append(dict(engine=engine, shape=size, **row))
    for row in rows:
        diff = row['max_rel_diff']
        print(
            f'verify {row["engine"]:>13} 1x3x{row["shape"][0]}x{row["shape"][1]}: '
            f'max relative difference '
            f'{"n/a (labels)" if diff is None else format(diff, ".2e")}, '
            f'argmax agreement {100 * row["agreement"]:.2f}%'
        )
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    from mmengine.config import Config

    import mmdrn.openmmlab  # noqa: F401  (registration)
    from mmdrn.utils import CheckpointError

    try:
        check_out(args.format, args.out)
        check_deploy_extra(args.format)
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        model, scope = build_model(cfg, args.checkpoint, args.allow_partial_load)
        shape = tuple(args.shape or default_shape(cfg, scope, model))
        stride = check_shape(model, shape)
    except (ValueError, ImportError, OSError, CheckpointError) as err:
        sys.exit(f'export: error: {err}')
    wrapper = export(args, model, cfg, shape)
    print(
        f'wrote {args.out} ({args.format}, input 1x3x{shape[0]}x{shape[1]}'
        f'{", dynamic N, H, W" if args.dynamic else ""}, output {args.output})'
    )
    if args.verify:
        verify(args, wrapper, shape, stride)


if __name__ == '__main__':
    main()
