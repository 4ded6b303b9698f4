"""Test isolation shared by the whole suite."""

import os

import pytest
import torch


def _default_scope_restored():
    """Undo any mmengine default scope created while the generator is open.

    Runners and ``init_default_scope`` leave a process-wide current scope
    ('mmseg' or 'mmpretrain') behind; a later test building from the other
    codebase's registry would then look its types up in the wrong scope.
    """
    try:
        from mmengine.registry import DefaultScope
    except ImportError:  # a timm-only environment
        yield
        return
    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """The scopes a test creates end with the test."""
    yield from _default_scope_restored()


@pytest.fixture(autouse=True, scope='module')
def _restore_default_scope_of_module():
    """The scopes a module-scoped fixture creates (a shared Runner) end with
    the module, whichever test file runs next."""
    yield from _default_scope_restored()


@pytest.fixture(autouse=True, scope='session')
def _private_precision_cache(tmp_path_factory):
    """Keep the measured precision decisions (``dtype='auto'``, ``--amp``)
    out of the user's cache directory; tools run as subprocesses inherit
    the variable."""
    saved = os.environ.get('MMDRN_PRECISION_CACHE')
    path = tmp_path_factory.mktemp('precision') / 'precision.json'
    os.environ['MMDRN_PRECISION_CACHE'] = str(path)
    yield path
    if saved is None:
        os.environ.pop('MMDRN_PRECISION_CACHE', None)
    else:
        os.environ['MMDRN_PRECISION_CACHE'] = saved


@pytest.fixture
def fake_precision_probe(monkeypatch, tmp_path):
    """Decide precisions from given probe times instead of measuring.

    Call the fixture's value with times in ms per dtype name, e.g.
    ``fake_precision_probe(float32=10.0, bfloat16=5.0)``: a new process on a
    new machine (no decision in memory, the cache file ``.cache`` removed
    unless ``keep_cache=True``). ``.calls`` lists the probe runs.
    """
    from mmdrn.inference import precision

    calls = []

    def set_times(keep_cache: bool = False, **times_ms: float) -> None:
        monkeypatch.setattr(precision, '_DECISIONS', {})
        if not keep_cache and cache.exists():
            cache.unlink()

        def probe(device_type: str = 'cpu', **kwargs) -> dict:
            calls.append(device_type)
            return dict(times_ms)

        monkeypatch.setattr(precision, 'probe_precision', probe)

    cache = tmp_path / 'precision-cache' / 'precision.json'
    monkeypatch.setenv('MMDRN_PRECISION_CACHE', str(cache))
    set_times.calls = calls
    set_times.cache = cache
    return set_times


@pytest.fixture
def one_thread():
    """Run tiny test inputs on one thread.

    With several threads, OpenMP's busy-waiting makes small convolutions
    ~10x slower whenever other processes share the cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def published_weights(tmp_path_factory):
    """Random-weight DRN-D-22 files published the way osmr and fyu publish
    theirs, in one folder (``'root'``); see ``tests/weights_server.py``."""
    from weights_server import publish_fyu_d22, publish_osmr_d22

    root = str(tmp_path_factory.mktemp('published'))
    return {'osmr': publish_osmr_d22(root), 'fyu': publish_fyu_d22(root), 'root': root}


@pytest.fixture
def weights_http(published_weights, monkeypatch):
    """A server on 127.0.0.1 for ``published_weights``, with mmdrn.hub's
    table and mirror pointed at it; ``.requests`` lists the paths asked for."""
    from weights_server import point_hub_at, serve

    from mmdrn import hub

    point_hub_at(
        monkeypatch, {k: v for k, v in published_weights.items() if k != 'root'}
    )
    with serve(published_weights['root']) as srv:
        monkeypatch.setenv(hub.MIRROR_ENV, srv.url)
        yield srv


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """torch.hub's checkpoint directory, in a fresh temporary folder."""
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    return tmp_path / 'hub' / 'checkpoints'


@pytest.fixture
def mmengine_checkpoints():
    """mmengine's training checkpoints load with ``weights_only=True`` during
    the test (``mmdrn.openmmlab.compat``), as in a run whose config switches
    it on; the allow-list is restored afterwards."""
    from mmdrn.openmmlab.compat import mmengine_checkpoints_allowed

    with mmengine_checkpoints_allowed():
        yield
