"""The inference fast path: folded norms, channels_last, low precision.

:func:`optimize_for_inference` turns a model into an :class:`InferenceModel`
that computes the same outputs faster: batch norms folded into their
convolutions (:mod:`~mmdrn.inference.fold_bn`), channels_last weights and
inputs, autocast to the dtype measured fastest on the machine
(:mod:`~mmdrn.inference.precision`), optionally ``torch.compile``.
docs/benchmarks.md describes each step and what it gains.
"""

import copy
import functools
import itertools
import shutil
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from .fold_bn import fold_batchnorm
from .precision import (
    DTYPES,
    SHORT_NAMES,
    check_device_type,
    dtype_name,
    precision_decision,
)

__all__ = ['InferenceModel', 'optimize_for_inference', 'resolve_dtype']
# Methods of the wrapped model that run the network (mmengine's BaseModel,
# MMSeg's EncoderDecoder, timm models); they are run inside the fast-path
# context when called on the wrapper.
RUN_METHODS = (
    'forward',
    'test_step',
    'val_step',
    'predict',
    'extract_feat',
    'encode_decode',
    'inference',
    'forward_features',
    'forward_head',
    'forward_intermediates',
)
# Submodules compiled by ``compile=True`` (OpenMMLab model parts); a model
# without any of them is compiled as a whole.
COMPILE_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'head')


def resolve_dtype(
    dtype: Union[str, torch.dtype, None], device_type: str
) -> torch.dtype:
    """The compute dtype of the fast path on a device.

    Args:
        dtype (str | torch.dtype | None): ``'auto'`` (or None), ``'float32'``,
            ``'bfloat16'``, ``'float16'`` (or ``fp32``/``bf16``/``fp16``, or
            the torch dtype).
        device_type (str): ``'cpu'`` or ``'cuda'``.

    Returns:
        torch.dtype: A named dtype as it is; for ``'auto'`` the precision
        measured fastest on this machine
        (:func:`~mmdrn.inference.precision.precision_decision`).

    Raises:
        ValueError: Unknown dtype or device type, float16 on CPU, bfloat16
            on a GPU without it, or ``'auto'`` on CUDA without CUDA.

    Warns:
        UserWarning: bfloat16 is asked for on a CPU where it was measured
            slower than float32.
    """
    return _resolve(dtype, device_type)[0]


def _resolve(
    dtype: Union[str, torch.dtype, None], device_type: str
) -> Tuple[torch.dtype, str]:
    """:func:`resolve_dtype`, with the reason for the choice."""
    check_device_type(device_type, need_cuda=False)
    if dtype is None or dtype == 'auto':
        decision = precision_decision(device_type)
        return decision.dtype, decision.reason
    resolved = (
        DTYPES.get(SHORT_NAMES.get(dtype, dtype)) if isinstance(dtype, str) else dtype
    )
    if resolved not in DTYPES.values():
        raise ValueError(
            f'dtype must be one of {sorted(["auto", *DTYPES, *SHORT_NAMES])} (or the '
            f'torch dtypes float32, bfloat16, float16), got {dtype!r}'
        )
    if device_type == 'cpu' and resolved == torch.float16:
        raise ValueError(
            "dtype 'float16' needs a CUDA device; on CPU use 'bfloat16' or "
            "'float32' (allowed on cpu: ['auto', 'bfloat16', 'float32'])"
        )
    if device_type == 'cuda' and resolved == torch.bfloat16:
        if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            raise ValueError(
                "dtype 'bfloat16' is not supported by this CUDA device; use "
                "'float16' or 'float32'"
            )
    elif resolved == torch.bfloat16:
        decision = precision_decision('cpu')
        speedup = decision.speedup(torch.bfloat16)
        if speedup < 1:
            warnings.warn(
                f'bfloat16 was measured slower than float32 on this CPU '
                f"({speedup:.2f}x float32; 'auto' picks "
                f'{dtype_name(decision.dtype)}): {decision.reason}',
                stacklevel=3,
            )
    return resolved, f'{dtype_name(resolved)}: asked for (dtype={dtype!r})'


def _model_device(model: nn.Module) -> torch.device:
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device('cpu') if tensor is None else tensor.device


def _map_tensors(obj: Any, fn: Callable, data_elements: bool = False) -> Any:
    """``fn`` applied to every tensor in nested lists, tuples and dicts, and
    with ``data_elements`` also in mmengine data elements (``SegDataSample``,
    ``PixelData``, ...: their fields are the attributes listed by keys())."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(_map_tensors(v, fn, data_elements) for v in obj)
    if isinstance(obj, dict):
        return type(obj)(
            (k, _map_tensors(v, fn, data_elements)) for k, v in obj.items()
        )
    if (
        data_elements
        and callable(getattr(obj, 'keys', None))
        and hasattr(obj, 'set_field')
    ):
        for key in list(obj.keys()):
            setattr(obj, key, _map_tensors(getattr(obj, key), fn, data_elements))
    return obj


def _as_input(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _as_output(x: torch.Tensor) -> torch.Tensor:
    return (x.float() if x.is_floating_point() else x).contiguous()


def _compile(
    model: nn.Module, compile: Union[bool, str, Dict[str, Any]], device_type: str
) -> None:
    """``torch.compile`` the model's parts (:data:`COMPILE_PARTS`) in place."""
    if device_type == 'cpu' and not any(
        shutil.which(c) for c in ('c++', 'g++', 'clang++')
    ):
        raise RuntimeError(
            'compile=True on CPU needs a C++ compiler (c++, g++ or clang++) on '
            'PATH for torch.compile (inductor); install one or use compile=False'
        )
    if isinstance(compile, str):
        options: Dict[str, Any] = dict(mode=compile)
    else:
        options = dict(compile) if isinstance(compile, dict) else {}
    parts = [getattr(model, p, None) for p in COMPILE_PARTS]
    parts = [p for p in parts if isinstance(p, nn.Module)]
    for part in parts or [model]:
        part.compile(**options)


def _target_device(
    model: nn.Module, compile: Any, device: Union[str, torch.device, None]
) -> Optional[torch.device]:
    """Check the arguments of :func:`optimize_for_inference`; the device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    if not isinstance(compile, (bool, str, dict)):
        raise TypeError(
            f'compile must be a bool, a mode name or a dict of torch.compile '
            f'arguments, got {type(compile).__name__}'
        )
    if device is None:
        return None
    device = torch.device(device)
    check_device_type(device.type)
    return device


class InferenceModel(nn.Module):
    """A model run on the fast path; made by :func:`optimize_for_inference`.

    Calling it, or calling one of the wrapped model's network methods on it
    (``test_step``, ``val_step``, ``predict``, ``extract_feat``,
    ``forward_features``, ...), runs the model under ``torch.no_grad``, with
    4-d inputs in channels_last and autocast to :attr:`dtype`; floating
    outputs come back as contiguous float32. Every other attribute is the
    wrapped model's (``data_preprocessor``, ``dataset_meta``, ...).

    Args:
        model (nn.Module): The prepared model (folded, channels_last).
        dtype (torch.dtype): Compute dtype; float32 disables autocast.
        channels_last (bool): Convert 4-d inputs to channels_last.
        device_type (str): ``'cpu'`` or ``'cuda'`` (for autocast).
        dtype_reason (str): Why :attr:`dtype` was chosen, for the log.
            Default: ``''``.

    Attributes:
        model (nn.Module): The wrapped model.
        folded_bn_pairs (list[tuple[str, str]]): The folded
            ``(conv, norm)`` names; empty when folding was off.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype,
        channels_last: bool,
        device_type: str,
        dtype_reason: str = '',
    ) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last
        self.device_type = device_type
        self.dtype_reason = dtype_reason
        self.folded_bn_pairs = list(getattr(model, 'folded_bn_pairs', []))

    def _run(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        if self.channels_last:
            args, kwargs = _map_tensors((args, kwargs), _as_input)
        low = self.dtype != torch.float32
        with torch.no_grad(), torch.autocast(self.device_type, self.dtype, low):
            out = fn(*args, **kwargs)
        return _map_tensors(out, _as_output, data_elements=True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self.model, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            pass
        # not through self.model: during copy/unpickling _modules may not exist
        model = self.__dict__.get('_modules', {}).get('model')
        if model is None:
            raise AttributeError(name)
        attr = getattr(model, name)
        if name in RUN_METHODS and callable(attr):
            return functools.partial(self._run, attr)
        return attr

    def train(self, mode: bool = True) -> 'InferenceModel':
        """Only eval mode: folded norms cannot normalise training batches.

        Raises:
            RuntimeError: ``mode`` is True and norms were folded.
        """
        if mode and self.folded_bn_pairs:
            raise RuntimeError(
                'an InferenceModel with folded batch norms is for inference '
                'only; train the original model instead'
            )
        return super().train(mode)


def _prepare(
    model: nn.Module,
    device: Optional[torch.device],
    fold_bn: bool,
    channels_last: bool,
    inplace: bool,
) -> nn.Module:
    """The model (or its copy) moved, in eval mode, folded and channels_last."""
    if not inplace:
        model = copy.deepcopy(model)
    if device is not None:
        model.to(device)
    model.eval()
    if fold_bn:
        fold_batchnorm(model, inplace=True)
    if channels_last:
        # NHWC is the native layout of oneDNN and of cuDNN's tensor-core
        # convolutions; on NCHW oneDNN reorders each activation twice
        model.to(memory_format=torch.channels_last)
    return model


def optimize_for_inference(
    model: nn.Module,
    dtype: Union[str, torch.dtype, None] = 'auto',
    channels_last: bool = True,
    fold_bn: bool = True,
    compile: Union[bool, str, Dict[str, Any]] = False,
    device: Union[str, torch.device, None] = None,
    inplace: bool = False,
) -> InferenceModel:
    """Prepare a model for fast inference (see the module docstring).

    Args:
        model (nn.Module): A timm DRN, an mmdrn backbone, an MMSegmentation
            ``EncoderDecoder``, an mmpretrain classifier or any other model.
        dtype (str | torch.dtype | None): Compute dtype, see
            :func:`resolve_dtype`. Default: ``'auto'``.
        channels_last (bool): Use the channels_last memory format.
            Default: True.
        fold_bn (bool): Fold batch norms into convolutions. Default: True.
        compile (bool | str | dict): ``torch.compile`` the backbone, neck and
            heads (the whole model when it has none of them): True for the
            default mode, a mode name (e.g. ``'max-autotune'``) or a dict of
            ``torch.compile`` keyword arguments. Default: False.
        device (str | torch.device, optional): Move the model there first;
            None keeps it where it is. Default: None.
        inplace (bool): Change ``model`` itself instead of a deep copy (saves
            memory; the original is then folded too). Default: False.

    Returns:
        InferenceModel: The wrapped model, in eval mode.

    Raises:
        TypeError: ``model`` is not an nn.Module, or ``compile`` has a wrong
            type.
        ValueError: Bad ``dtype`` for the device, or a CUDA ``device``
            without CUDA.
        RuntimeError: ``compile`` on CPU without a C++ compiler.

    Example:
        >>> import timm, mmdrn
        >>> model = timm.create_model('drn_d_22', num_classes=0, global_pool='')
        >>> fast = optimize_for_inference(model, dtype='float32')
        >>> fast(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 512, 4, 4])
    """
    device = _target_device(model, compile, device)
    device_type = (device or _model_device(model)).type
    compute_dtype, reason = _resolve(dtype, device_type)
    model = _prepare(model, device, fold_bn, channels_last, inplace)
    if compile is not False:
        _compile(model, compile, device_type)
    return InferenceModel(
        model, compute_dtype, channels_last, device_type, reason
    ).eval()
