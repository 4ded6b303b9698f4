"""Published ImageNet weights of the DRNs: sources, verified download, cache.

:data:`WEIGHTS` names every published file as timm does (``model.tag``); the
first tag of an architecture is its default. The README's "Pretrained
weights" section tabulates them with their errors and licences. Every file is
verified before it is used:

``osmr_in1k``
    osmr/imgclsmob's GitHub release assets (the weights pytorchcv downloads),
    ``{name}-{error}-{sha1}.pth.zip`` holding one ``.pth`` in pytorchcv's key
    layout; ``error`` is the top-5 error x 100 and ``sha1`` the first 8 hex
    digits of the SHA-1 of the unpacked ``.pth``, whose full SHA-1 pytorchcv
    lists and we check. The default wherever it exists: GitHub's release
    assets are the copies most likely to download, while ``dl.yf.io`` has
    been unreachable for long stretches.
``fyu_in1k`` / ``tv_in1k``
    fyu/drn's official files on ``http://dl.yf.io/drn/`` (the names fyu/drn's
    ``drn.py`` uses) and torchvision's ResNet files for DRN-A. The 8 hex
    digits in each name are the first 8 of the file's SHA-256: torch's model
    zoo convention, which ``torch.hub.download_url_to_file(hash_prefix=...)``
    checks (fyu/drn's ``torch.utils.model_zoo.load_url`` checked it too).

:func:`fetch` returns the verified ``.pth`` in ``torch.hub``'s cache,
downloading it once; ``MMDRN_WEIGHTS_MIRROR`` (or ``mirrors=``) replaces the
published URLs by base URLs that serve the files under their published names.

Example:
    >>> from mmdrn import hub
    >>> [s.name for s in hub.sources('drn_c_26')]
    ['drn_c_26.osmr_in1k', 'drn_c_26.fyu_in1k']
    >>> hub.sources('drn_c_26')[0].file_name
    'drnc26-0723-e7306483.pth'
"""

import contextlib
import hashlib
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import zipfile
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from .utils import CheckpointError
from .utils.validation import check_float

__all__ = [
    'SCHEME',
    'MIRROR_ENV',
    'WEIGHTS',
    'DownloadError',
    'WeightSource',
    'sources',
    'cache_path',
    'fetch',
]

SCHEME = 'drn://'
MIRROR_ENV = 'MMDRN_WEIGHTS_MIRROR'
TIMEOUT_S = 30.0
_logger = logging.getLogger(__name__)


class DownloadError(CheckpointError):
    """No source could provide verified weights."""


class WeightSource(NamedTuple):
    """One published weight file.

    ``hash`` is a full SHA-1 (40 hex digits) or a SHA-256 prefix (8).
    ``top1_err``/``top5_err`` are ImageNet-1k validation errors in percent,
    as the source publishes them (None where it publishes none).
    """

    model: str
    tag: str
    url: str
    hash: str
    layout: str  # 'pytorchcv' or 'drn' (see mmdrn.backbones.drn_weights)
    top1_err: Optional[float]
    top5_err: Optional[float]
    license: str
    origin_url: str
    description: str

    @property
    def name(self) -> str:
        """``model.tag``, timm's name of these weights."""
        return f'{self.model}.{self.tag}'

    @property
    def file_name(self) -> str:
        """Name of the (unpacked) ``.pth`` in the cache."""
        name = self.url.rsplit('/', 1)[-1]
        return name[: -len('.zip')] if name.endswith('.zip') else name

    @property
    def hash_name(self) -> str:
        """'sha1' (full digest) or 'sha256' (prefix)."""
        return 'sha1' if len(self.hash) == 40 else 'sha256'


# What every file of a tag shares.
_TAGS = {
    'osmr_in1k': dict(
        layout='pytorchcv',
        license='mit',
        origin_url='https://github.com/osmr/imgclsmob',
        description='Trained by osmr/imgclsmob in MXNet/Gluon, converted to '
        'PyTorch (pytorchcv layout).',
    ),
    'fyu_in1k': dict(
        layout='drn',
        license='bsd-3-clause',
        origin_url='https://github.com/fyu/drn',
        description='Official weights of Yu et al. (fyu/drn).',
    ),
    'tv_in1k': dict(
        layout='drn',
        license='bsd-3-clause',
        origin_url='https://github.com/pytorch/vision',
        description="torchvision's ResNet weights of the same depth (as fyu/drn's "
        'drn_a_50).',
    ),
}
_OSMR = 'https://github.com/osmr/imgclsmob/releases/download/'
_FYU = 'http://dl.yf.io/drn/'
_TV = 'https://download.pytorch.org/models/'

# pytorchcv 0.0.74's table (model, pytorchcv name, SHA-1 of the .pth, release)
# and the top-1 / top-5 error (%) of osmr/imgclsmob's PyTorch results table.
_OSMR_FILES = """
drn_c_26   drnc26   e7306483781db61f71302eda6769d7d9fd126bf6  v0.0.508  24.61  7.23
drn_c_42   drnc42   8817241f62263c6375ff3c17a9d34f42067a114d  v0.0.556  22.37  6.28
drn_c_58   drnc58   3f74be98f80db3273ed764ded5bcb5d8bdf0b907  v0.0.559  20.65  5.27
drn_d_22   drnd22   02cb44bdea9b05e988e65576f79f5f5c133f2664  v0.0.498  24.86  7.58
drn_d_38   drnd38   496f648b8b8427050ad3327077f9a9b7a07fbcc6  v0.0.552  22.94  6.43
drn_d_54   drnd54   caa3c85dbdb39397f049da649d196b15704427b3  v0.0.554  20.40  5.17
drn_d_105  drnd105  8dc6aa76c16cb1964929adf53183d1e0324ae051  v0.0.564  19.87  5.01
"""
# fyu/drn's drn.py file names (SHA-256 prefix) and its README's top-1 / top-5
# error (%), single 224x224 center crop of the 256-pixel resized image.
_FYU_FILES = {
    'drn_c_26': ('ddedf421', 24.9, 7.6),
    'drn_c_42': ('9d336e8c', 22.9, 6.6),
    'drn_c_58': ('0a53a92c', 21.7, 6.0),
    'drn_d_22': ('4bd2f8ea', 25.8, 8.2),
    'drn_d_38': ('eebb45f0', 23.8, 6.9),
    'drn_d_54': ('0e0534ff', 21.2, 5.9),
    'drn_d_105': ('12b40979', 20.6, 5.5),
}
# torchvision's ResNet files of the same depth (errors are published for the
# ResNets, not for the dilated DRN-A, so none are given).
_TV_FILES = {
    'drn_a_18': 'resnet18-5c106cde.pth',
    'drn_a_34': 'resnet34-333f7ec4.pth',
    'drn_a_50': 'resnet50-19c8e357.pth',
    'drn_a_101': 'resnet101-5d3b4d8f.pth',
}


def _table() -> Dict[str, WeightSource]:
    def add(model: str, tag: str, url: str, digest: str, *errors: float) -> None:
        top1_err, top5_err = errors or (None, None)
        table[f'{model}.{tag}'] = WeightSource(
            model, tag, url, digest, top1_err=top1_err, top5_err=top5_err, **_TAGS[tag]
        )

    table: Dict[str, WeightSource] = {}
    for model, file_name in _TV_FILES.items():
        add(model, 'tv_in1k', _TV + file_name, file_name[-12:-4])
    for row in _OSMR_FILES.strip().splitlines():
        model, pcv_name, sha1, release, top1, top5 = row.split()
        # osmr's file names carry the top-5 error x 100 as 4 digits; osmr
        # first: the default of each architecture
        stem = f'{pcv_name}-{round(float(top5) * 100):04d}-{sha1[:8]}'
        url = f'{_OSMR}{release}/{stem}.pth.zip'
        add(model, 'osmr_in1k', url, sha1, float(top1), float(top5))
        sha256, *errors = _FYU_FILES[model]
        add(model, 'fyu_in1k', f'{_FYU}{model}-{sha256}.pth', sha256, *errors)
    return table


#: Every published weight file, keyed by ``model.tag``; an architecture's
#: first entry is its default.
WEIGHTS: Dict[str, WeightSource] = _table()


def sources(name: str) -> List[WeightSource]:
    """The weight files a name asks for, in the order they are tried.

    Args:
        name (str): ``model.tag`` (e.g. ``'drn_c_26.fyu_in1k'``) for one
            file, or an architecture (``'drn_c_26'``) for all of its files,
            the default first. A leading ``drn://`` is ignored.

    Returns:
        list[WeightSource]: One or more sources.

    Raises:
        ValueError: No published weights carry this name.
    """
    if not isinstance(name, str):
        raise TypeError(f'name must be a str, got {type(name).__name__}')
    if name.startswith(SCHEME):
        name = name[len(SCHEME) :]
    if '.' in name:
        found = [WEIGHTS[name]] if name in WEIGHTS else []
    else:
        found = [s for s in WEIGHTS.values() if s.model == name]
    if not found:
        models = dict.fromkeys(s.model for s in WEIGHTS.values())
        raise ValueError(
            f'no published DRN weights named {name!r}; use an architecture '
            f'({", ".join(models)}) for its default weights, or one of: '
            f'{", ".join(WEIGHTS)}'
        )
    return found


def cache_path(source: WeightSource) -> str:
    """Where the verified ``.pth`` of ``source`` lives: torch.hub's cache."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', source.file_name)


def _mirror_list(mirrors: Union[None, str, Sequence[str]]) -> List[str]:
    if mirrors is None:
        mirrors = os.environ.get(MIRROR_ENV, '')
    if isinstance(mirrors, str):
        mirrors = re.split(r'[,\s]+', mirrors.strip())
    mirrors = [m for m in mirrors if m]
    bad = [m for m in mirrors if not m.startswith(('http://', 'https://', 'file://'))]
    if bad:
        raise ValueError(
            f'weight mirrors (mirrors= or ${MIRROR_ENV}) must be http://, https:// '
            f'or file:// base URLs, got {bad}'
        )
    return [m.rstrip('/') for m in mirrors]


def _hash_problem(path: str, source: WeightSource) -> Optional[str]:
    """None if the file is the published one, else what differs."""
    digest = hashlib.new(source.hash_name)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    got = digest.hexdigest()[: len(source.hash)]
    if got == source.hash:
        return None
    kind = 'SHA-1' if source.hash_name == 'sha1' else 'SHA-256 prefix'
    return f'{kind} mismatch: expected {source.hash}, got {got}'


def _unpack_single(archive: str, dst: str, expected: str) -> None:
    if not zipfile.is_zipfile(archive):
        raise OSError('not a zip archive')
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise OSError(
                f'the zip holds {len(members)} files, expected one ({expected})'
            )
        with zf.open(members[0]) as src, open(dst, 'wb') as out:
            shutil.copyfileobj(src, out, 1 << 20)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """New sockets give up after ``seconds`` without an answer, within the block.

    ``torch.hub.download_url_to_file`` takes no timeout and would wait for a
    stalled server forever; the default it would use is restored after the
    transfer.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(url: str, source: WeightSource, target: str, progress: bool) -> None:
    """Put the verified file of ``url`` at ``target``, or raise.

    ``torch.hub.download_url_to_file`` does the transfer into a temporary
    file, and for a SHA-256 prefix also the check; osmr's zips are unpacked
    and the SHA-1 of the ``.pth`` checked here.
    """
    if source.hash_name == 'sha256':
        torch.hub.download_url_to_file(
            url, target, hash_prefix=source.hash, progress=progress
        )
        return
    # in the cache folder, so that the final move is atomic
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as tmp:
        archive, pth = os.path.join(tmp, 'download.zip'), os.path.join(tmp, 'file')
        torch.hub.download_url_to_file(url, archive, progress=progress)
        _unpack_single(archive, pth, source.file_name)
        problem = _hash_problem(pth, source)
        if problem is not None:
            raise RuntimeError(problem)
        os.replace(pth, target)


def _try_url(
    url: str, source: WeightSource, target: str, progress: bool, timeout: float
) -> str:
    """Download ``url`` into ``target``: '' on success, else the reason."""
    try:
        with _socket_timeout(timeout):
            _download(url, source, target, progress)
        return ''
    except urllib.error.HTTPError as err:
        return f'HTTP {err.code} {err.reason}'
    except (TimeoutError, socket.timeout):
        return f'no answer within {timeout:g} s'
    except urllib.error.URLError as err:
        if isinstance(err.reason, (TimeoutError, socket.timeout)):
            return f'no answer within {timeout:g} s'
        return f'cannot connect ({err.reason})'
    except RuntimeError as err:  # the hash check (torch.hub's or ours)
        return f'{err}; the download was deleted'
    except (OSError, zipfile.BadZipFile) as err:
        return f'{type(err).__name__}: {err}'


def _cached(source: WeightSource) -> Optional[str]:
    path = cache_path(source)
    if not os.path.isfile(path):
        return None
    problem = _hash_problem(path, source)
    if problem is not None:
        raise CheckpointError(
            f'{path!r} is not the published {source.name} file ({problem}). '
            f'Delete it to download again, or replace it with the file from '
            f'{source.url}.'
        )
    return path


def _nothing_downloaded(
    name: str, candidates: List[WeightSource], tried: List[str]
) -> DownloadError:
    manual = [
        f'  {cache_path(s)}  ({s.name}'
        + (', the .pth inside the .zip' if s.url.endswith('.zip') else '')
        + ')'
        for s in candidates
    ]
    return DownloadError(
        f'could not download the weights {name!r}; every source failed:\n'
        + '\n'.join(tried)
        + '\nA copy downloaded by hand is verified and used from:\n'
        + '\n'.join(manual)
    )


def fetch(
    name: str,
    mirrors: Union[None, str, Sequence[str]] = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> Tuple[str, WeightSource]:
    """The verified local ``.pth`` of published weights, downloaded once.

    A cached file of any candidate (one put there by hand too) is verified
    and used without a request, and never replaced. Otherwise the URLs are
    tried in order; a failed download or check falls through to the next.

    Args:
        name (str): ``'drn_c_26'`` (default weights, others as fallback),
            ``'drn_c_26.fyu_in1k'`` (exactly these), with or without
            ``drn://``; see :func:`sources`.
        mirrors (str | Sequence[str], optional): Base URLs that replace the
            published ones. Default: None (``$MMDRN_WEIGHTS_MIRROR``, else the
            published URLs).
        progress (bool): Show a progress bar on stderr. Default: True.
        timeout (float): Seconds to wait for a server to connect or to send
            more data before trying the next URL. Default: 30.

    Returns:
        tuple[str, WeightSource]: The file (in ``torch.hub``'s cache) and the
        source it is.

    Raises:
        ValueError: Unknown name, a mirror that is not a URL, or a timeout
            that is not positive.
        DownloadError: No URL gave the published file; the message lists each
            URL with its reason and where a manual download is picked up.
        CheckpointError: A cached file differs from the published one.
    """
    candidates = sources(name)
    bases = _mirror_list(mirrors)
    # NaN and inf fail this too: the socket module refuses both
    if not 0 < check_float('timeout', timeout, '(0, inf)') < math.inf:
        raise ValueError(f'timeout must be a float in (0, inf), got {timeout!r}')
    for source in candidates:
        path = _cached(source)
        if path is not None:
            return path, source
    tried = []
    for source in candidates:
        target = cache_path(source)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        published = source.url.rsplit('/', 1)[-1]
        for url in [f'{b}/{published}' for b in bases] or [source.url]:
            _logger.info(f'downloading {source.name} from {url}')
            reason = _try_url(url, source, target, progress, timeout)
            if not reason:
                if source is not candidates[0]:
                    _logger.warning(
                        f'using {source.name}: the default weights '
                        f'{candidates[0].name} could not be downloaded'
                    )
                return target, source
            _logger.warning(f'{url}: {reason}')
            tried.append(f'  {url}: {reason}')
    raise _nothing_downloaded(name, candidates, tried)
