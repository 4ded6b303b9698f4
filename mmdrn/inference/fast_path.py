"""The inference fast path: folded norms, channels_last, low precision.

:func:`optimize_for_inference` turns a model (a timm DRN, an mmdrn backbone,
an MMSegmentation ``EncoderDecoder`` or an mmpretrain classifier) into an
:class:`InferenceModel` that computes the same outputs faster:

* **BN folding** (:func:`~mmdrn.inference.fold_batchnorm`): every eval-mode
  batch norm that follows a convolution is merged into it.
* **channels_last**: weights (and 4-d inputs) use the NHWC memory format, the
  native layout of oneDNN (CPU) and cuDNN tensor-core convolutions; on CPU
  the NCHW path reorders every activation twice per convolution.
* **autocast**: bfloat16 on CPU, float16 or bfloat16 on CUDA. ``'auto'``
  takes the precision that a short measurement on the running machine found
  faster (:func:`~mmdrn.inference.precision.precision_decision`; cached per
  machine): bfloat16 is several times faster than float32 on some CPUs and
  slower on others, and the CPU flags do not tell which.
* **torch.compile** (optional): the backbone, neck and heads (or the whole
  model when it has none of these) are compiled in place.

Floating outputs come back as contiguous float32 tensors, so metrics,
visualisers and ``numpy()`` work unchanged.
"""

import contextlib
import copy
import functools
import shutil
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from .fold_bn import fold_batchnorm
from .precision import DTYPE_NAMES as _DTYPE_TEXT
from .precision import precision_decision

__all__ = [
    'InferenceModel',
    'amx_cpu',
    'native_bf16_cpu',
    'optimize_for_inference',
    'resolve_dtype',
]

DTYPE_NAMES = {
    'auto': None,
    'float32': torch.float32,
    'fp32': torch.float32,
    'bfloat16': torch.bfloat16,
    'bf16': torch.bfloat16,
    'float16': torch.float16,
    'fp16': torch.float16,
}
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


def _cpu_probe(name: str) -> bool:
    return bool(getattr(torch.cpu, name, lambda: False)())


def amx_cpu() -> bool:
    """Whether this CPU has AMX tiles (machine information only).

    Returns:
        bool: True when oneDNN can use AMX here.
    """
    return _cpu_probe('_is_amx_tile_supported')


def native_bf16_cpu() -> bool:
    """Whether this CPU has bfloat16 instructions, AMX or AVX512-BF16
    (machine information only; whether they are faster than float32 is
    measured, see :func:`~mmdrn.inference.precision.precision_decision`).

    Returns:
        bool: True when oneDNN has native (not emulated) bfloat16 kernels.
    """
    return amx_cpu() or _cpu_probe('_is_avx512_bf16_supported')


def _dtype_from_arg(dtype: Union[str, torch.dtype, None]) -> Optional[torch.dtype]:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype in DTYPE_NAMES.values():
            return dtype
    elif isinstance(dtype, str) and dtype in DTYPE_NAMES:
        return DTYPE_NAMES[dtype]
    raise ValueError(
        f'dtype must be one of {sorted(DTYPE_NAMES)} (or the torch dtypes '
        f'float32, bfloat16, float16), got {dtype!r}'
    )


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
    if device_type not in ('cpu', 'cuda'):
        raise ValueError(
            f"device_type must be one of ['cpu', 'cuda'], got {device_type!r}"
        )
    resolved = _dtype_from_arg(dtype)
    if resolved is None:
        decision = precision_decision(device_type)
        return decision.dtype, decision.reason
    forced = f'{_DTYPE_TEXT[resolved]}: asked for (dtype={dtype!r})'
    if device_type == 'cpu':
        if resolved == torch.float16:
            raise ValueError(
                "dtype 'float16' needs a CUDA device; on CPU use 'bfloat16' or "
                "'float32' (allowed on cpu: ['auto', 'bfloat16', 'float32'])"
            )
        if resolved == torch.bfloat16:
            decision = precision_decision('cpu')
            speedup = decision.speedup(torch.bfloat16)
            if speedup < 1:
                warnings.warn(
                    f'bfloat16 was measured slower than float32 on this CPU '
                    f"({speedup:.2f}x float32; 'auto' picks "
                    f'{_DTYPE_TEXT[decision.dtype]}): {decision.reason}',
                    stacklevel=3,
                )
        return resolved, forced
    bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if resolved == torch.bfloat16 and not bf16_ok:
        raise ValueError(
            "dtype 'bfloat16' is not supported by this CUDA device; use "
            "'float16' or 'float32'"
        )
    return resolved, forced


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device('cpu')


def _to_input(obj: Any, channels_last: bool) -> Any:
    if channels_last and isinstance(obj, torch.Tensor) and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(_to_input(v, channels_last) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _to_input(v, channels_last)) for k, v in obj.items())
    return obj


def _to_output(obj: Any) -> Any:
    """float32, contiguous tensors everywhere in ``obj`` (data samples too)."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.dtype != torch.float32:
            obj = obj.float()
        return obj.contiguous()
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(_to_output(v) for v in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _to_output(v)) for k, v in obj.items())
    # mmengine data elements (SegDataSample, PixelData, ...): their data
    # fields are attributes listed by keys()
    if callable(getattr(obj, 'keys', None)) and hasattr(obj, 'set_field'):
        for key in list(obj.keys()):
            setattr(obj, key, _to_output(getattr(obj, key)))
    return obj


def _check_compiler() -> None:
    if not any(shutil.which(c) for c in ('c++', 'g++', 'clang++')):
        raise RuntimeError(
            'compile=True on CPU needs a C++ compiler (c++, g++ or clang++) on '
            'PATH for torch.compile (inductor); install one or use compile=False'
        )


def _compile(model: nn.Module, options: Dict[str, Any]) -> None:
    parts = [getattr(model, p, None) for p in COMPILE_PARTS]
    parts = [p for p in parts if isinstance(p, nn.Module)]
    for part in parts or [model]:
        part.compile(**options)


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
        args = _to_input(args, self.channels_last)
        kwargs = _to_input(kwargs, self.channels_last)
        autocast = (
            torch.autocast(self.device_type, dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with torch.no_grad(), autocast:
            out = fn(*args, **kwargs)
        return _to_output(out)

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
        compile (bool | str | dict): ``torch.compile`` the model: True for
            the default mode, a mode name (e.g. ``'max-autotune'``) or a
            dict of ``torch.compile`` keyword arguments. Default: False.
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
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    if not isinstance(compile, (bool, str, dict)):
        raise TypeError(
            f'compile must be a bool, a mode name or a dict of torch.compile '
            f'arguments, got {type(compile).__name__}'
        )
    if device is not None:
        device = torch.device(device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(
                f'device {str(device)!r} requested but CUDA is not available; '
                "use device='cpu' or None"
            )
    device_type = (device or _model_device(model)).type
    compute_dtype, reason = _resolve(dtype, device_type)
    if not inplace:
        model = copy.deepcopy(model)
    if device is not None:
        model.to(device)
    model.eval()
    if fold_bn:
        fold_batchnorm(model, inplace=True)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile is not False:
        if device_type == 'cpu':
            _check_compiler()
        if compile is True:
            options: Dict[str, Any] = {}
        elif isinstance(compile, str):
            options = dict(mode=compile)
        else:
            options = dict(compile)
        _compile(model, options)
    return InferenceModel(
        model, compute_dtype, channels_last, device_type, reason
    ).eval()
