"""Deployment: ONNX export, OpenVINO conversion, running a model on an engine.

onnx, onnxruntime and openvino (the ``deploy`` extra) are imported only by
the functions that use them; docs/deploy.md shows the whole flow.
"""

import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .utils import PathLike
from .utils.file_io import atomic_write
from .utils.validation import check_choice

__all__ = [
    'ENGINES',
    'OUTPUTS',
    'ExportWrapper',
    'build_engine',
    'compare',
    'convert_openvino',
    'example_input',
    'export_onnx',
]

# torch eager and the fast path (mmdrn.inference: its dtype per engine), ONNX
# Runtime, and OpenVINO with its inference precision hint.
_TORCH_ENGINES = {'torch': None, 'torch-fast': 'fp32', 'torch-fast-bf16': 'bf16'}
ENGINES = (*_TORCH_ENGINES, 'onnxruntime', 'openvino-f32', 'openvino-bf16')
OUTPUTS = ('logits', 'labels')
Runner = Callable[[np.ndarray], np.ndarray]


class ExportWrapper(nn.Module):
    """What an exported model computes: a normalised image batch to logits.

    An OpenMMLab model (one with a ``data_preprocessor``) runs in
    ``mode='tensor'``; a segmentor's logits are then resized bilinearly to
    the input size with its decode head's ``align_corners``, as MMSeg's
    ``predict`` does. Normalisation (mean, std, channel order) stays outside.

    Args:
        model (nn.Module): The model, in eval mode.
        output (str): ``'logits'`` or ``'labels'`` (the argmax over classes;
            a one-channel segmentor thresholds its sigmoid at its decode
            head's ``threshold``). Default: ``'logits'``.
    """

    def __init__(self, model: nn.Module, output: str = 'logits') -> None:
        super().__init__()
        self.output = check_choice('output', output, OUTPUTS)
        self.model = model.eval()
        self.openmmlab = hasattr(model, 'data_preprocessor')
        head = getattr(model, 'decode_head', None)
        self.align_corners = getattr(head, 'align_corners', None)
        self.threshold = getattr(head, 'threshold', None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N x K x H x W`` (segmentors) or ``N x K``, or the labels."""
        y = self.model(x, mode='tensor') if self.openmmlab else self.model(x)
        if self.align_corners is not None:
            y = F.interpolate(
                y, size=x.shape[-2:], mode='bilinear', align_corners=self.align_corners
            )
        if self.output == 'logits':
            return y
        if y.shape[1] == 1 and self.threshold is not None:
            return (y.sigmoid() > self.threshold).squeeze(1).long()
        return y.argmax(1)


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: PathLike,
    dynamic: bool = False,
    output_name: str = 'output',
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Export ``model(example)`` to an ONNX file at ``path``, atomically.

    Args:
        model (nn.Module): The module (e.g. an :class:`ExportWrapper`).
        example (Tensor): An input batch ``N x C x H x W``.
        path (str | PathLike): The ``.onnx`` file (replaced on success only).
        dynamic (bool): Dynamic batch, height and width. Default: False.
        output_name (str): Name of the graph output (the input is
            ``'input'``). Default: ``'output'``.
        metadata (Mapping[str, str], optional): ONNX ``metadata_props``.
    """
    shapes = None
    if dynamic:
        dim = torch.export.Dim.DYNAMIC
        shapes = ({0: dim, 2: dim, 3: dim},)
    program = torch.onnx.export(
        model.eval(),
        (example,),
        dynamo=True,
        input_names=['input'],
        output_names=[output_name],
        dynamic_shapes=shapes,
        verbose=False,
    )
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    atomic_write(path, proto.SerializeToString())


def convert_openvino(onnx_path: PathLike, xml_path: PathLike) -> None:
    """Convert an ONNX file to OpenVINO IR: ``xml_path`` and the ``.bin`` beside it.

    The weights stay float32 (``compress_to_fp16=False``); the precision is
    chosen when the model is compiled (:func:`build_engine`). Both files are
    written atomically; an existing ``.xml`` is removed first, so that an
    interrupted conversion leaves no ``.xml`` that points to other weights.
    """
    import openvino as ov

    xml_path = os.fspath(xml_path)
    if not xml_path.endswith('.xml'):
        raise ValueError(f'an OpenVINO model file must end in .xml, got {xml_path!r}')
    bin_path = xml_path[: -len('.xml')] + '.bin'
    model = ov.convert_model(os.fspath(onnx_path))
    directory = osp.dirname(osp.abspath(xml_path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix='.openvino-') as tmp:
        tmp_xml = osp.join(tmp, osp.basename(xml_path))
        ov.save_model(model, tmp_xml, compress_to_fp16=False)
        xml_data = Path(tmp_xml).read_bytes()
        bin_data = Path(tmp_xml).with_suffix('.bin').read_bytes()
    if osp.lexists(xml_path):
        os.unlink(xml_path)
    atomic_write(bin_path, bin_data)
    atomic_write(xml_path, xml_data)


def _torch_runner(model: nn.Module, fast: Optional[str]) -> Runner:
    if fast is not None:
        from .inference import optimize_for_inference

        model = optimize_for_inference(model, dtype=fast)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


def _onnxruntime_runner(path: str, threads: Optional[int]) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _openvino_runner(path: str, precision: str, threads: Optional[int]) -> Runner:
    import openvino as ov
    import openvino.properties as props

    # The precision is always named: OpenVINO runs CPUs with bf16 support in
    # bf16 unless told otherwise.
    kind = ov.Type.bf16 if precision == 'bf16' else ov.Type.f32
    config: Dict[str, object] = {props.hint.inference_precision: kind}
    if threads:
        config[props.inference_num_threads] = threads
    compiled = ov.Core().compile_model(path, 'CPU', config)
    return lambda x: compiled(x)[0]


def build_engine(
    engine: str,
    model: Optional[nn.Module] = None,
    path: Optional[PathLike] = None,
    threads: Optional[int] = None,
) -> Runner:
    """A callable ``numpy batch -> numpy output`` that runs a model with ``engine``.

    Args:
        engine (str): One of :data:`ENGINES`. ``'torch-fast'`` is
            :func:`mmdrn.inference.optimize_for_inference` in float32,
            ``'torch-fast-bf16'`` the same with bfloat16 autocast.
        model (nn.Module, optional): The module, for the torch engines.
        path (str | PathLike, optional): The ONNX file (onnxruntime) or an
            ONNX or OpenVINO ``.xml`` file (openvino engines).
        threads (int, optional): onnxruntime's and OpenVINO's threads; None
            for their defaults (torch: ``torch.set_num_threads``).

    Raises:
        ValueError: An unknown engine, or no ``model`` / ``path`` for it.
    """
    check_choice('engine', engine, ENGINES)
    if engine.startswith('torch'):
        if model is None:
            raise ValueError(f'engine {engine!r} runs a torch module: pass model')
        return _torch_runner(model.eval(), _TORCH_ENGINES[engine])
    if path is None:
        raise ValueError(f'engine {engine!r} runs an exported file: pass path')
    if engine == 'onnxruntime':
        return _onnxruntime_runner(os.fspath(path), threads)
    return _openvino_runner(os.fspath(path), engine.split('-')[1], threads)


def compare(
    reference: Union[np.ndarray, torch.Tensor],
    output: Union[np.ndarray, torch.Tensor],
) -> Dict[str, float]:
    """How far ``output`` is from ``reference`` (logit arrays ``N x K ...``).

    Returns:
        dict: ``max_rel_diff`` (the largest absolute difference over the
        largest absolute reference value) and ``agreement`` (the fraction of
        positions whose argmax over axis 1 is the same).
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f'output shape {out.shape} differs from {ref.shape}')
    scale = max(float(np.abs(ref).max()), np.finfo(np.float32).tiny)
    agree = float(np.mean(ref.argmax(1) == out.argmax(1)))
    return dict(max_rel_diff=float(np.abs(ref - out).max()) / scale, agreement=agree)


def example_input(
    shape: Sequence[int], seed: int = 0, channels: int = 3
) -> torch.Tensor:
    """A reproducible standard-normal batch ``1 x channels x H x W``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, channels, *shape, generator=generator)
