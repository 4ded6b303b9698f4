"""The compute precision of the running machine, chosen by measurement.

Whether bfloat16 pays on a CPU cannot be read from its flags: with AMX tiles
oneDNN's bfloat16 convolutions run several times faster than float32, on an
AMD Zen 4 host (AVX512-BF16, no AMX) DRN-C-26 ran 2.2x faster in bfloat16, on
an Intel Xeon with AVX512-BF16 but no AMX at 0.88x, and without native
bfloat16 instructions oneDNN emulates it, many times slower. So the machine is
asked (docs/precision.md has the hosts and the numbers):

* :func:`probe_precision` times a DRN-like residual block (two dilated 3x3
  convolutions with bias and ReLU, 128 channels, 48x48, batch 1,
  channels_last, eval mode, no grad: what a folded DRN runs at output stride
  8) in float32 and under bfloat16 autocast (on CUDA also float16), the
  dtypes interleaved round by round so that load from other processes hits
  them alike, each keeping its best time. On CPU it runs on one thread: it
  compares the per-core speed of the kernels, and one thread is time-sliced
  cleanly on a busy machine where OpenMP threads waiting for each other are
  not. When the first round shows bfloat16 more than
  :data:`EMULATED_SLOWDOWN` times slower (emulation) it stops there.
* :func:`choose_dtype` takes a low precision only when it ran at least
  :data:`MIN_SPEEDUP` times as fast as float32: one block on a possibly busy
  machine is noisy, and a whole network gains less than its convolutions.
* :func:`precision_decision` makes the decision once per machine and caches it
  in ``~/.cache/mmdrn/precision.json`` (``$XDG_CACHE_HOME`` is honoured;
  ``$MMDRN_PRECISION_CACHE`` names another file), keyed by the CPU model and a
  hash of its flags (the GPU name and compute capability on CUDA) and the
  torch version, so a new machine or a new torch is measured afresh.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import os.path as osp
import platform
import time
import warnings
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..utils.file_io import atomic_write

__all__ = [
    'DTYPES',
    'MIN_SPEEDUP',
    'SHORT_NAMES',
    'PrecisionDecision',
    'check_device_type',
    'choose_dtype',
    'dtype_name',
    'precision_cache_file',
    'precision_decision',
    'probe_precision',
]

logger = logging.getLogger(__name__)

#: A low precision must run at least this many times as fast as float32.
MIN_SPEEDUP = 1.15
#: bfloat16 this many times slower than float32 in the first round is
#: emulated; the probe stops there.
EMULATED_SLOWDOWN = 3.0
CACHE_ENV = 'MMDRN_PRECISION_CACHE'
#: Changes whenever the probe measures something else: old entries are then
#: not reused.
PROBE_VERSION = 1
PROBE_TEXT = (
    'residual block of two dilated 3x3 convolutions, 128 channels, 48x48, channels_last'
)
#: The compute dtypes, by their torch names.
DTYPES = {
    'float32': torch.float32,
    'bfloat16': torch.bfloat16,
    'float16': torch.float16,
}
#: The short names the tools take for them.
SHORT_NAMES = {'fp32': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16'}
# Decisions made in this process, by cache key.
_DECISIONS: Dict[str, 'PrecisionDecision'] = {}


def dtype_name(dtype: torch.dtype) -> str:
    """The name of a dtype in :data:`DTYPES`: ``torch.bfloat16`` -> ``'bfloat16'``."""
    return str(dtype).replace('torch.', '')


@dataclasses.dataclass(frozen=True)
class PrecisionDecision:
    """The precision chosen for a device, and the measurement behind it.

    Attributes:
        device_type (str): ``'cpu'`` or ``'cuda'``.
        dtype (torch.dtype): The chosen compute dtype.
        times_ms (dict[str, float]): Best time of the probe per dtype name
            (``'float32'``, ``'bfloat16'``, ``'float16'``), in ms.
        device (str): The CPU model or GPU name.
        source (str): ``'measured'`` (in this process) or ``'cache'``.
        cache_file (str | None): Where the decision is cached.
    """

    device_type: str
    dtype: torch.dtype
    times_ms: Dict[str, float]
    device: str
    source: str
    cache_file: Optional[str] = None

    def speedup(self, dtype: torch.dtype) -> float:
        """How many times as fast as float32 ``dtype`` ran in the probe."""
        return self.times_ms['float32'] / self.times_ms[dtype_name(dtype)]

    @property
    def reason(self) -> str:
        """One line for the log: the choice and the measured speeds."""
        names = sorted(self.times_ms, key=lambda n: (n != 'float32', n))
        speeds = ', '.join(
            f'{n} {self.speedup(DTYPES[n]):.2f}x float32' for n in names[1:]
        )
        times = ', '.join(f'{n} {self.times_ms[n]:.2f} ms' for n in names)
        if self.dtype == torch.float32:
            verdict = f'float32: no lower precision ran >= {MIN_SPEEDUP}x faster'
        else:
            verdict = f'{dtype_name(self.dtype)}: measured faster than float32'
        where = 'measured now' if self.source == 'measured' else 'cached'
        if self.cache_file:
            where += f' in {self.cache_file}'
        return (
            f'{verdict} on {self.device} ({speeds}; probe: {PROBE_TEXT}: '
            f'{times}; {where})'
        )


def check_device_type(device_type: str, need_cuda: bool = True) -> None:
    """Refuse device types but ``'cpu'`` and ``'cuda'`` (and ``'cuda'`` without
    CUDA, when ``need_cuda``) with a ``ValueError``."""
    if device_type not in ('cpu', 'cuda'):
        raise ValueError(
            f"device_type must be one of ['cpu', 'cuda'], got {device_type!r}"
        )
    if need_cuda and device_type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            "device_type 'cuda' requested but CUDA is not available; use 'cpu'"
        )


def precision_cache_file() -> str:
    """The cache file of precision decisions.

    Returns:
        str: ``$MMDRN_PRECISION_CACHE`` if set, else ``precision.json`` in
        ``$XDG_CACHE_HOME/mmdrn`` (default ``~/.cache/mmdrn``).
    """
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    root = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(root, 'mmdrn', 'precision.json')


def _cpu_identity() -> Dict[str, str]:
    info: Dict[str, str] = {}
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                info.setdefault(key.strip(), value.strip())
    model = info.get('model name') or platform.processor() or platform.machine()
    # x86 lists 'flags', ARM 'Features'
    flags = ' '.join(sorted((info.get('flags') or info.get('Features', '')).split()))
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return dict(model=model, flags=digest)


def _cache_key(device_type: str) -> Dict[str, str]:
    if device_type == 'cpu':
        ident = _cpu_identity()
        name, hw = ident['model'], f'flags {ident["flags"]}'
    else:
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        hw = 'sm_{}{}'.format(*torch.cuda.get_device_capability(index))
    key = f'{device_type}|{name}|{hw}|torch {torch.__version__}|probe {PROBE_VERSION}'
    return dict(key=key, device=name)


class _ProbeBlock(nn.Module):
    """A folded DRN basic block: conv-ReLU-conv, identity shortcut, ReLU."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        options = dict(kernel_size=3, padding=dilation, dilation=dilation)
        self.conv1 = nn.Conv2d(channels, channels, **options)
        self.conv2 = nn.Conv2d(channels, channels, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(out + x)


def _candidates(device_type: str) -> List[torch.dtype]:
    if device_type == 'cpu':
        return [torch.float32, torch.bfloat16]
    found = [torch.float32, torch.float16]
    if torch.cuda.is_bf16_supported():
        found.append(torch.bfloat16)
    return found


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _probe_inputs(device_type: str) -> Tuple[nn.Module, torch.Tensor]:
    """The probe block and its input, seeded, channels_last, on the device."""
    device = torch.device(device_type)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = _ProbeBlock(128, dilation=2).eval()
    block.to(device, memory_format=torch.channels_last)
    x = torch.randn(1, 128, 48, 48, generator=generator)
    return block, x.to(device, memory_format=torch.channels_last)


def _time_ms(block: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> float:
    """Milliseconds of one call of ``block(x)`` under autocast to ``dtype``."""
    cuda = x.device.type == 'cuda'
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(x.device.type, dtype, enabled=dtype != torch.float32):
        block(x)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def probe_precision(
    device_type: str = 'cpu',
    rounds: int = 7,
    budget_s: float = 0.2,
) -> Dict[str, float]:
    """Time the probe block in each precision the device can autocast to.

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'`` (the current device).
            Default: ``'cpu'``.
        rounds (int): Most timed rounds; each round runs every dtype once,
            in turn. Default: 7.
        budget_s (float): No new round starts after this many seconds (at
            least 3 rounds run, unless bfloat16 is found emulated).
            Default: 0.2.

    Returns:
        dict[str, float]: Best time per dtype name, in milliseconds;
        ``'float32'`` and ``'bfloat16'`` on CPU, plus ``'float16'`` on CUDA.

    Raises:
        ValueError: Unknown ``device_type``, or ``'cuda'`` without CUDA.
    """
    check_device_type(device_type)
    block, x = _probe_inputs(device_type)
    dtypes = _candidates(device_type)
    best = {dtype_name(d): float('inf') for d in dtypes}
    with torch.no_grad(), _one_thread():
        for dtype in dtypes:  # oneDNN/cuDNN kernel creation
            _time_ms(block, x, dtype)
        start = time.perf_counter()
        for index in range(rounds):
            for dtype in dtypes:
                name = dtype_name(dtype)
                best[name] = min(best[name], _time_ms(block, x, dtype))
            if index == 0 and device_type == 'cpu':
                if best['bfloat16'] > EMULATED_SLOWDOWN * best['float32']:
                    break
            if index >= 2 and time.perf_counter() - start > budget_s:
                break
    return best


def choose_dtype(
    times_ms: Dict[str, float], min_speedup: float = MIN_SPEEDUP
) -> torch.dtype:
    """The fastest precision, if it beats float32 by ``min_speedup``.

    Between bfloat16 and float16 (CUDA) bfloat16 is kept unless float16 is
    itself ``min_speedup`` times faster than it: bfloat16 has float32's
    range, so activations cannot overflow.

    Args:
        times_ms (dict[str, float]): Probe time per dtype name, with
            ``'float32'``.
        min_speedup (float): Default: :data:`MIN_SPEEDUP`.

    Returns:
        torch.dtype: float32, bfloat16 or float16.

    Raises:
        ValueError: ``times_ms`` lacks float32, names an unknown dtype or
            holds a time that is not positive.
    """
    if 'float32' not in times_ms or set(times_ms) - set(DTYPES):
        raise ValueError(
            f'times_ms must have float32 and only names from {sorted(DTYPES)}, '
            f'got {sorted(times_ms)}'
        )
    if not all(t > 0 for t in times_ms.values()):
        raise ValueError(f'times_ms must be positive, got {times_ms}')
    fp32 = times_ms['float32']
    fast = {name: t for name, t in times_ms.items() if t * min_speedup <= fp32}
    if not fast:
        return torch.float32
    if 'bfloat16' in fast and not (
        'float16' in fast and fast['float16'] * min_speedup <= fast['bfloat16']
    ):
        return torch.bfloat16
    return DTYPES[min(fast, key=fast.get)]


def _read_cache(path: str) -> Dict[str, dict]:
    if not osp.exists(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
        entries = data['entries']
        if not isinstance(entries, dict):
            raise TypeError('entries is not a mapping')
        return entries
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(
            f'ignoring the precision cache {path} ({type(error).__name__}: '
            f'{error}); measuring again and rewriting it',
            stacklevel=5,
        )
        return {}


def _valid_entry(entry: object) -> bool:
    try:
        choose_dtype(entry['times_ms'])
        return entry['dtype'] in DTYPES
    except (TypeError, KeyError, ValueError):
        return False


def _write_cache(path: str, entries: Dict[str, dict]) -> None:
    """Replace ``path`` atomically: readers see the old or the new file."""
    try:
        atomic_write(path, json.dumps(dict(entries=entries), indent=1, sort_keys=True))
    except OSError as error:
        warnings.warn(
            f'could not write the precision cache {path} ({error}); the '
            'decision holds for this process only',
            stacklevel=5,
        )


def _decide(device_type: str, ident: Dict[str, str], path: str, refresh: bool):
    """Read the decision for ``ident`` from the cache, or measure and cache it."""
    entries = _read_cache(path)
    entry = entries.get(ident['key'])
    if entry is not None and not _valid_entry(entry):
        warnings.warn(
            f'ignoring the malformed entry for this machine in the precision '
            f'cache {path}; measuring again',
            stacklevel=3,
        )
        entry = None
    if not refresh and entry is not None:
        times, source = dict(entry['times_ms']), 'cache'
        dtype = DTYPES[entry['dtype']]
    else:
        times, source = probe_precision(device_type), 'measured'
        dtype = choose_dtype(times)
        now = datetime.datetime.now(datetime.timezone.utc)
        entries[ident['key']] = dict(
            dtype=dtype_name(dtype),
            times_ms=times,
            device=ident['device'],
            torch=torch.__version__,
            measured_at=now.isoformat(timespec='seconds'),
        )
        _write_cache(path, entries)
    decision = PrecisionDecision(
        device_type, dtype, times, ident['device'], source, path
    )
    if source == 'measured':
        logger.info('precision: %s', decision.reason)
    return decision


def precision_decision(
    device_type: str = 'cpu', refresh: bool = False
) -> PrecisionDecision:
    """The precision to compute in on this machine (see the module docstring).

    Made once per process; read from the cache file when this machine and
    torch version were measured before; else measured with
    :func:`probe_precision` and cached.

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'`` (the current device).
            Default: ``'cpu'``.
        refresh (bool): Measure again, replacing the cached decision.
            Default: False.

    Returns:
        PrecisionDecision: The choice; its ``reason`` is one log line.

    Raises:
        ValueError: Unknown ``device_type``, or ``'cuda'`` without CUDA.

    Example:
        >>> decision = precision_decision('cpu')
        >>> decision.dtype in (torch.float32, torch.bfloat16)
        True
    """
    check_device_type(device_type)
    ident = _cache_key(device_type)
    path = precision_cache_file()
    memo_key = f'{path}|{ident["key"]}'
    if refresh or memo_key not in _DECISIONS:
        _DECISIONS[memo_key] = _decide(device_type, ident, path, refresh)
    return _DECISIONS[memo_key]
