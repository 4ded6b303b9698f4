"""The compute precision of the running machine, chosen by measurement.

Whether bfloat16 pays on a CPU cannot be read from its flags (several times
faster than float32 with AMX, slower on some CPUs with AVX512-BF16 alone), so
the machine is asked: :func:`probe_precision` times a folded DRN block in each
precision, :func:`choose_dtype` decides with a margin, and
:func:`precision_decision` caches the decision per machine and torch version.
docs/precision.md describes the probe, the margin and the cache, and has the
hosts and the numbers.
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
from typing import Dict, Iterator, List, Optional

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
#: The probe runs at most this many rounds, and no new one after
#: PROBE_BUDGET_S seconds once 3 have run.
PROBE_ROUNDS = 7
PROBE_BUDGET_S = 0.2
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
# Decisions made in this process, by cache file and key.
_DECISIONS: Dict[str, 'PrecisionDecision'] = {}


def dtype_name(dtype: torch.dtype) -> str:
    """The name of a dtype in :data:`DTYPES`: ``torch.bfloat16`` -> ``'bfloat16'``."""
    return str(dtype).replace('torch.', '')


@dataclasses.dataclass(frozen=True)
class PrecisionDecision:
    """The precision chosen for a device, and the measurement behind it.

    Attributes:
        dtype (torch.dtype): The chosen compute dtype.
        times_ms (dict[str, float]): Best time of the probe per dtype name
            (``'float32'``, ``'bfloat16'``, ``'float16'``), in ms.
        device (str): The CPU model or GPU name.
        source (str): ``'measured'`` (in this process) or ``'cache'``.
        cache_file (str | None): Where the decision is cached.
    """

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


def _machine(device_type: str) -> Dict[str, str]:
    """The cache key of this machine and torch version, and the device's name."""
    if device_type == 'cuda':
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        hardware = 'sm_{}{}'.format(*torch.cuda.get_device_capability(index))
    else:
        info: Dict[str, str] = {}
        with contextlib.suppress(OSError), open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                info.setdefault(key.strip(), value.strip())
        name = info.get('model name') or platform.processor() or platform.machine()
        # x86 lists 'flags', ARM 'Features'
        flags = sorted((info.get('flags') or info.get('Features', '')).split())
        hardware = f'flags {hashlib.sha256(" ".join(flags).encode()).hexdigest()[:12]}'
    key = f'{device_type}|{name}|{hardware}|torch {torch.__version__}'
    return dict(key=f'{key}|probe {PROBE_VERSION}', device=name)


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


def probe_precision(device_type: str = 'cpu') -> Dict[str, float]:
    """Time the probe block in each precision the device can autocast to.

    The dtypes run in turn, round by round, so that load from other
    processes hits them alike; each keeps its best time. On CPU the probe
    runs on one thread (docs/precision.md says why).

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'`` (the current device).
            Default: ``'cpu'``.

    Returns:
        dict[str, float]: Best time per dtype name, in milliseconds;
        ``'float32'`` and ``'bfloat16'`` on CPU, plus ``'float16'`` on CUDA.

    Raises:
        ValueError: Unknown ``device_type``, or ``'cuda'`` without CUDA.
    """
    check_device_type(device_type)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = _ProbeBlock(128, dilation=2).eval()
        x = torch.randn(1, 128, 48, 48)
    block.to(device_type, memory_format=torch.channels_last)
    x = x.to(device_type, memory_format=torch.channels_last)
    dtypes = _candidates(device_type)
    best = {dtype_name(d): float('inf') for d in dtypes}
    with torch.no_grad(), _one_thread():
        for dtype in dtypes:  # oneDNN/cuDNN kernel creation
            _time_ms(block, x, dtype)
        start = time.perf_counter()
        for index in range(PROBE_ROUNDS):
            for dtype in dtypes:
                name = dtype_name(dtype)
                best[name] = min(best[name], _time_ms(block, x, dtype))
            if index == 0 and device_type == 'cpu':
                if best['bfloat16'] > EMULATED_SLOWDOWN * best['float32']:
                    break
            if index >= 2 and time.perf_counter() - start > PROBE_BUDGET_S:
                break
    return best


def choose_dtype(times_ms: Dict[str, float]) -> torch.dtype:
    """The fastest precision, if it beats float32 by :data:`MIN_SPEEDUP`.

    Between bfloat16 and float16 (CUDA) bfloat16 is kept unless float16 is
    itself :data:`MIN_SPEEDUP` times faster than it: bfloat16 has float32's
    range, so activations cannot overflow.

    Args:
        times_ms (dict[str, float]): Probe time per dtype name, with
            ``'float32'``.

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
    fast = {name: t for name, t in times_ms.items() if t * MIN_SPEEDUP <= fp32}
    if not fast:
        return torch.float32
    if 'bfloat16' in fast and not (
        'float16' in fast and fast['float16'] * MIN_SPEEDUP <= fast['bfloat16']
    ):
        return torch.bfloat16
    return DTYPES[min(fast, key=fast.get)]


def _read_cache(path: str) -> Dict[str, dict]:
    if not osp.exists(path):
        return {}
    try:
        with open(path) as f:
            entries = json.load(f)['entries']
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
    try:
        atomic_write(path, json.dumps(dict(entries=entries), indent=1, sort_keys=True))
    except OSError as error:
        warnings.warn(
            f'could not write the precision cache {path} ({error}); the '
            'decision holds for this process only',
            stacklevel=5,
        )


def _decide(
    device_type: str, machine: Dict[str, str], path: str, refresh: bool
) -> PrecisionDecision:
    """Read the decision for ``machine`` from the cache, or measure and cache it."""
    entries = _read_cache(path)
    entry = entries.get(machine['key'])
    if entry is not None and not _valid_entry(entry):
        warnings.warn(
            f'ignoring the malformed entry for this machine in the precision '
            f'cache {path}; measuring again',
            stacklevel=3,
        )
        entry = None
    source = 'cache'
    if refresh or entry is None:
        source, times = 'measured', probe_precision(device_type)
        now = datetime.datetime.now(datetime.timezone.utc)
        entry = entries[machine['key']] = dict(
            dtype=dtype_name(choose_dtype(times)),
            times_ms=times,
            device=machine['device'],
            torch=torch.__version__,
            measured_at=now.isoformat(timespec='seconds'),
        )
        _write_cache(path, entries)
    decision = PrecisionDecision(
        DTYPES[entry['dtype']],
        dict(entry['times_ms']),
        machine['device'],
        source,
        path,
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
    machine, path = _machine(device_type), precision_cache_file()
    memo_key = f'{path}|{machine["key"]}'
    if refresh or memo_key not in _DECISIONS:
        _DECISIONS[memo_key] = _decide(device_type, machine, path, refresh)
    return _DECISIONS[memo_key]
