"""The compute precision of the running machine, chosen by measurement.

Whether bfloat16 pays on a CPU cannot be read from its flags: with AMX tiles
oneDNN's bfloat16 convolutions run several times faster than float32; on an
AMD Zen 4 host (AVX512-BF16, no AMX) DRN-C-26 ran 2.2x faster in bfloat16;
on an Intel Xeon with AVX512-BF16 but no AMX it ran at 0.88x. Without native
bfloat16 instructions oneDNN emulates it, many times slower. So the machine is
asked: :func:`probe_precision` times a DRN-like residual block (two dilated
3x3 convolutions with bias and ReLU, 128 channels, 48x48, batch 1,
channels_last, eval mode, no grad: what a folded DRN runs at output stride 8)
in float32 and under bfloat16 autocast (on CUDA also float16). The dtypes are
interleaved round by round, so that load from other processes hits all of
them alike, and each keeps its best time. On CPU the probe runs on one
thread: what it compares is the per-core speed of the two kernels, and a
single thread is time-sliced cleanly on a busy machine, where two OpenMP
threads waiting for each other at every barrier ran the block about 10x
slower than one thread, with float32/bfloat16 ratios scattered between 0.6
and 2.6 from run to run. It takes a few tenths of a second.

:func:`precision_decision` turns the times into a choice: a low precision is
chosen only when it ran at least :data:`MIN_SPEEDUP` times as fast as
float32, since a single block measured on a possibly busy machine is noisy
and a whole network gains less than its convolutions (pooling, upsampling,
casts and the head do not speed up). The decision is cached per machine in
``~/.cache/mmdrn/precision.json`` (``$XDG_CACHE_HOME`` is honoured; the
``MMDRN_PRECISION_CACHE`` environment variable names another file), keyed by
the CPU model and a hash of its flags (the GPU name and compute capability
on CUDA) and the torch version, so a new machine or a new torch (new oneDNN
kernels) is measured afresh.

No shortcut from CPU flags is taken: the flags that looked decisive (AMX,
AVX512-BF16) predicted the wrong answer on one of the hosts above, and the
measurement is cheap and made once. One case is decided early by the
measurement itself: when the first round already shows bfloat16 more than
:data:`EMULATED_SLOWDOWN` times slower (emulation), it is not repeated.
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
import tempfile
import time
import warnings
from typing import Callable, Dict, Iterator, List, Optional

import torch
from torch import nn

__all__ = [
    'MIN_SPEEDUP',
    'PrecisionDecision',
    'choose_dtype',
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
DTYPE_NAMES = {
    torch.float32: 'float32',
    torch.bfloat16: 'bfloat16',
    torch.float16: 'float16',
}
_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}
# Decisions made in this process, by cache key.
_DECISIONS: Dict[str, 'PrecisionDecision'] = {}


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
        return self.times_ms['float32'] / self.times_ms[DTYPE_NAMES[dtype]]

    @property
    def reason(self) -> str:
        """One line for the log: the choice and the measured speeds."""
        names = sorted(self.times_ms, key=lambda n: (n != 'float32', n))
        speeds = ', '.join(
            f'{n} {self.speedup(_BY_NAME[n]):.2f}x float32' for n in names[1:]
        )
        times = ', '.join(f'{n} {self.times_ms[n]:.2f} ms' for n in names)
        if self.dtype == torch.float32:
            verdict = f'float32: no lower precision ran >= {MIN_SPEEDUP}x faster'
        else:
            verdict = f'{DTYPE_NAMES[self.dtype]}: measured faster than float32'
        where = 'measured now' if self.source == 'measured' else 'cached'
        if self.cache_file:
            where += f' in {self.cache_file}'
        return (
            f'{verdict} on {self.device} ({speeds}; probe: {PROBE_TEXT}: '
            f'{times}; {where})'
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
    _check_device_type(device_type)
    device = torch.device(device_type)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = _ProbeBlock(128, dilation=2).eval()
    block.to(device, memory_format=torch.channels_last)
    x = torch.randn(1, 128, 48, 48, generator=generator).to(
        device, memory_format=torch.channels_last
    )
    sync: Callable[[], None] = (
        torch.cuda.synchronize if device_type == 'cuda' else lambda: None
    )
    dtypes = _candidates(device_type)

    def run(dtype: torch.dtype) -> float:
        sync()
        start = time.perf_counter()
        with torch.autocast(device_type, dtype, enabled=dtype != torch.float32):
            block(x)
        sync()
        return (time.perf_counter() - start) * 1e3

    best = {DTYPE_NAMES[d]: float('inf') for d in dtypes}
    with torch.no_grad(), _one_thread():
        for dtype in dtypes:  # oneDNN/cuDNN kernel creation
            run(dtype)
        start = time.perf_counter()
        for index in range(rounds):
            for dtype in dtypes:
                name = DTYPE_NAMES[dtype]
                best[name] = min(best[name], run(dtype))
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
    if 'float32' not in times_ms or set(times_ms) - set(_BY_NAME):
        raise ValueError(
            f'times_ms must have float32 and only names from {sorted(_BY_NAME)}, '
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
    return _BY_NAME[min(fast, key=fast.get)]


def _check_device_type(device_type: str) -> None:
    if device_type not in ('cpu', 'cuda'):
        raise ValueError(
            f"device_type must be one of ['cpu', 'cuda'], got {device_type!r}"
        )
    if device_type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            "device_type 'cuda' requested but CUDA is not available; use 'cpu'"
        )


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
            stacklevel=4,
        )
        return {}


def _valid_entry(entry: object) -> bool:
    try:
        times = entry['times_ms']
        choose_dtype(times)
        return entry['dtype'] in _BY_NAME
    except (TypeError, KeyError, ValueError):
        return False


def _write_cache(path: str, entries: Dict[str, dict]) -> None:
    """Replace ``path`` atomically: readers see the old or the new file."""
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=osp.dirname(osp.abspath(path)), prefix='.precision-', suffix='.tmp'
        )
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(dict(entries=entries), f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as error:
        warnings.warn(
            f'could not write the precision cache {path} ({error}); the '
            'decision holds for this process only',
            stacklevel=4,
        )


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
    _check_device_type(device_type)
    ident = _cache_key(device_type)
    path = precision_cache_file()
    memo_key = f'{path}|{ident["key"]}'
    if not refresh and memo_key in _DECISIONS:
        return _DECISIONS[memo_key]
    entries = _read_cache(path)
    entry = entries.get(ident['key'])
    if entry is not None and not _valid_entry(entry):
        warnings.warn(
            f'ignoring the malformed entry for this machine in the precision '
            f'cache {path}; measuring again',
            stacklevel=2,
        )
        entry = None
    if not refresh and entry is not None:
        decision = PrecisionDecision(
            device_type,
            _BY_NAME[entry['dtype']],
            dict(entry['times_ms']),
            ident['device'],
            'cache',
            path,
        )
    else:
        times = probe_precision(device_type)
        decision = PrecisionDecision(
            device_type, choose_dtype(times), times, ident['device'], 'measured', path
        )
        entries[ident['key']] = dict(
            dtype=DTYPE_NAMES[decision.dtype],
            times_ms=times,
            device=ident['device'],
            torch=torch.__version__,
            measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'
            ),
        )
        _write_cache(path, entries)
        logger.info('precision: %s', decision.reason)
    _DECISIONS[memo_key] = decision
    return decision
