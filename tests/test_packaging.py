"""The distribution: requirements, wheel contents, and mmdrn as an openmim codebase.

The wheel is built once from a copy of the checkout and installed into a
temporary directory that is put first on ``PYTHONPATH``, so the mim commands
below see what ``pip install mmdrn`` would install, not the checkout.
"""

import functools
import http.server
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
OPENMMLAB = {'mmcv', 'mmengine', 'mmsegmentation', 'mmpretrain'}
DEMO_CONFIG = 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
# Not needed to build the wheel (and large, or made by a build).
SKIP_IN_COPY = {
    '.git',
    '.venv',
    'tests',
    'docs',
    'data',
    'work_dirs',
    'build',
    'dist',
    '.ci',
}


def _copy_ignore(src: str, names: list) -> set:
    skip = {n for n in names if n == '__pycache__' or n.endswith('.egg-info')}
    if Path(src) == REPO:
        skip |= SKIP_IN_COPY & set(names)
    if Path(src) == REPO / 'mmdrn':
        skip.add('.mim')
    return skip


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the checkout."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    shutil.copytree(REPO, src, ignore=_copy_ignore, symlinks=True)
    subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', str(src), '--no-deps']
        + ['--no-build-isolation', '--disable-pip-version-check', '-q', '-w']
        + [str(tmp / 'dist')],
        check=True,
        capture_output=True,
        text=True,
    )
    (found,) = (tmp / 'dist').glob('mmdrn-*.whl')
    return found


@pytest.fixture(scope='module')
def metadata(wheel) -> dict:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith('.dist-info/METADATA')]
        return Parser().parsestr(zf.read(name).decode())


def requirements(metadata, extra=None) -> list:
    """Requirements of the wheel: the plain ones, or those of ``extra``."""
    reqs = [Requirement(r) for r in metadata.get_all('Requires-Dist')]
    if extra is None:
        return [r for r in reqs if r.marker is None]
    return [r for r in reqs if r.marker and r.marker.evaluate({'extra': extra})]


def stack_pins() -> dict:
    pins = {}
    for line in (REPO / 'requirements' / 'stack.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            name, version = line.split('==')
            pins[name.lower()] = version
    return pins


def metafile_models() -> dict:
    """``{model name: model entry}`` over every ``configs/*/metafile.yaml``."""
    models = {}
    for path in sorted(REPO.glob('configs/*/metafile.yaml')):
        for model in yaml.safe_load(path.read_text())['Models']:
            models[model['Name']] = model
    return models


def test_install_requires_are_ranges_without_the_openmmlab_stack(metadata):
    runtime = requirements(metadata)
    names = {r.name.lower() for r in runtime}
    assert names == {'torch', 'timm', 'numpy', 'pillow'}
    for req in runtime:
        assert all(s.operator != '==' for s in req.specifier), req
    assert not names & OPENMMLAB
    lower = {r.name: str(r.specifier) for r in runtime}
    assert lower['torch'] == '>=2.6' and lower['timm'] == '>=1.0.13'


def test_openmmlab_extra_matches_mmseg_and_mmpretrain_ranges(metadata):
    extra = {r.name.lower(): r.specifier for r in requirements(metadata, 'openmmlab')}
    assert OPENMMLAB <= set(extra)
    # MMSeg 1.2.2 asserts 2.0.0rc4 <= mmcv < 2.2.0, mmpretrain 1.2.0 accepts
    # 2.0.0 <= mmcv < 2.4.0: the extra admits exactly their intersection.
    mmcv = ('2.0.0rc4', '2.0.0', '2.1.0', '2.2.0')
    admitted = [extra['mmcv'].contains(v, prereleases=True) for v in mmcv]
    assert admitted == [False, True, True, False]
    assert extra['mmengine'].contains('0.8.3')
    assert not extra['mmengine'].contains('1.0.0')
    assert not any(s.operator == '==' for spec in extra.values() for s in spec)


def test_pinned_stack_lies_inside_the_declared_ranges(metadata):
    declared = requirements(metadata) + requirements(metadata, 'openmmlab')
    declared += requirements(metadata, 'tests')
    pins = stack_pins()
    checked = 0
    for req in declared:
        if req.name.lower() in pins:
            assert req.specifier.contains(pins[req.name.lower()]), (req, pins)
            checked += 1
    assert checked >= 9  # torch, timm, the four OpenMMLab packages, ...


def test_wheel_carries_mim_files_licenses_and_py_typed(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        index = yaml.safe_load(zf.read('mmdrn/.mim/model-index.yml'))
    tracked = [
        p.relative_to(REPO).as_posix()
        for pattern in ('configs/**/*.py', 'configs/**/*.yaml', 'tools/**/*.py')
        + ('tools/**/*.sh',)
        for p in REPO.glob(pattern)
        if '__pycache__' not in p.parts
    ]
    assert len(tracked) > 50
    missing = [p for p in tracked if f'mmdrn/.mim/{p}' not in names]
    assert missing == []
    for metafile in index['Import']:
        assert f'mmdrn/.mim/{metafile}' in names
    assert 'mmdrn/py.typed' in names
    dist_info = {n.split('/', 1)[1] for n in names if '.dist-info/' in n}
    assert {'licenses/LICENSE', 'licenses/NOTICE'} <= dist_info
    # nothing of the checkout's development files
    assert not [n for n in names if n.startswith(('tests/', 'configs/', 'tools/'))]


def test_model_index_imports_every_metafile():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    metafiles = sorted(
        p.relative_to(REPO).as_posix() for p in REPO.glob('configs/*/metafile.yaml')
    )
    assert sorted(index['Import']) == metafiles
    for name, model in metafile_models().items():
        assert (REPO / model['Config']).is_file(), name


def test_editable_mode_links_and_build_mode_copies(tmp_path):
    """setup.py's add_mim_extension, on a miniature checkout."""
    import runpy

    setup_py = runpy.run_path(str(REPO / 'setup.py'), run_name='setup')
    assert setup_py['mim_mode'](['editable_wheel', '--wheel-dir', 'x']) == 'link'
    assert setup_py['mim_mode'](['develop']) == 'link'
    assert setup_py['mim_mode'](['bdist_wheel']) == 'copy'
    assert setup_py['mim_mode'](['sdist']) == 'copy'
    assert setup_py['mim_mode'](['egg_info']) == 'none'

    root = tmp_path / 'checkout'
    for name in ('configs/a', 'tools', 'mmdrn'):
        (root / name).mkdir(parents=True)
    (root / 'configs/a/x.py').write_text('x = 1\n')
    (root / 'tools/train.py').write_text('')
    (root / 'model-index.yml').write_text('Import: []\n')
    setup_py['add_mim_extension']('link', root)
    mim = root / 'mmdrn/.mim'
    assert (mim / 'configs').is_symlink()
    assert os.readlink(mim / 'configs') == '../../configs'
    assert (mim / 'configs/a/x.py').read_text() == 'x = 1\n'
    # a later wheel build replaces the links by copies
    setup_py['add_mim_extension']('copy', root)
    assert not (mim / 'configs').is_symlink()
    assert (mim / 'configs/a/x.py').read_text() == 'x = 1\n'
    assert (mim / 'model-index.yml').read_text() == 'Import: []\n'


# --- mmdrn as an openmim codebase -----------------------------------------


@pytest.fixture(scope='module')
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed (without dependencies) into a directory of its own."""
    target = tmp_path_factory.mktemp('site')
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--no-deps', '-q']
        + ['--disable-pip-version-check', '--target', str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def mim(site: Path, *args: str, cwd: Path, timeout: int = 300):
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(site),
        HOME=str(cwd),  # mim keeps a cache in ~/.cache/mim
        OMP_NUM_THREADS='1',
        NO_PROXY='127.0.0.1',
        no_proxy='127.0.0.1',
    )
    proc = subprocess.run(
        [sys.executable, '-m', 'mim', *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_mim_search_lists_every_model(site, tmp_path):
    out = mim(site, 'search', 'mmdrn', '--field', 'config', cwd=tmp_path)
    listed = re.findall(r'^config id: (\S+)$', out, re.M)
    assert sorted(listed) == sorted(name.lower() for name in metafile_models())


def test_mim_train_and_test_run_the_packaged_demo_config(site, tmp_path):
    from mmdrn.datasets import generate_demo_scenes

    data = tmp_path / 'drn_demo'
    generate_demo_scenes(str(data), num_train=4, num_val=2)
    data_options = [
        f'{loader}.dataset.{key}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for key in (f'data_root={data}', 'generate=False')
    ]
    out = mim(
        site,
        'train',
        'mmdrn',
        DEMO_CONFIG,
        '--work-dir',
        str(tmp_path / 'train'),
        '--cfg-options',
        'train_cfg.max_iters=2',
        'train_dataloader.batch_size=2',
        *data_options,
        cwd=tmp_path,
    )
    # mim found the config and the training tool inside the installed package
    assert str(site / 'mmdrn' / '.mim' / 'tools' / 'train.py') in out
    assert f'.mim/configs/demo/{DEMO_CONFIG}' in out
    assert 'Iter(train) [2/2]' in out
    checkpoint = tmp_path / 'train' / 'iter_2.pth'
    assert checkpoint.is_file()

    out = mim(
        site,
        'test',
        'mmdrn',
        DEMO_CONFIG,
        '--checkpoint',
        str(checkpoint),
        '--work-dir',
        str(tmp_path / 'test'),
        '--cfg-options',
        *data_options,
        cwd=tmp_path,
    )
    assert str(site / 'mmdrn' / '.mim' / 'tools' / 'test.py') in out
    miou = re.search(r'Iter\(test\) \[2/2\].*mIoU: ([0-9.]+)', out)
    assert miou is not None, out[-2000:]
    assert 0.0 <= float(miou.group(1)) <= 100.0
    for name in ('sky', 'ground', 'building', 'vehicle', 'pole', 'wire', 'sign'):
        assert re.search(rf'\|\s+{name}\s+\|', out), name


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_mim_download_fetches_the_metafile_weights(site, tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    payload = os.urandom(4096)
    (served / 'drn_weights-0123abcd.pth').write_bytes(payload)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # Point one model's Weights at the local server, in the installed copy.
        metafile = site / 'mmdrn' / '.mim' / 'configs' / 'drn_cls' / 'metafile.yaml'
        meta = yaml.safe_load(metafile.read_text())
        model = meta['Models'][0]
        url = f'http://127.0.0.1:{server.server_port}/drn_weights-0123abcd.pth'
        model['Weights'] = url
        metafile.write_text(yaml.safe_dump(meta, sort_keys=False))
        dest = tmp_path / 'checkpoints'
        out = mim(
            site,
            'download',
            'mmdrn',
            '--config',
            model['Name'],
            '--dest',
            str(dest),
            cwd=tmp_path,
        )
    finally:
        server.shutdown()
        thread.join()
    assert (dest / 'drn_weights-0123abcd.pth').read_bytes() == payload
    dumped = dest / f'{model["Name"].lower()}.py'
    assert "type='DRN_" in dumped.read_text(), out
    assert osp.basename(url) in out


# --- the launchers' interpreter ---------------------------------------------


@pytest.mark.parametrize(
    'path_python, venv, expected',
    [
        ('with_torch', True, 'python'),
        ('without_torch', True, 'VENV'),
        (None, True, 'VENV'),
        ('without_torch', False, None),
    ],
)
def test_launchers_find_the_install_scripts_venv(tmp_path, path_python, venv, expected):
    """Right after `make demo`, tools/*.sh run without an activated venv."""
    tools = tmp_path / 'checkout' / 'tools'
    tools.mkdir(parents=True)
    shutil.copy(REPO / 'tools' / 'find_python.sh', tools)
    venv_python = tmp_path / 'checkout' / '.venv' / 'bin' / 'python'
    if venv:
        venv_python.parent.mkdir(parents=True)
        venv_python.write_text('#!/bin/sh\n')
        venv_python.chmod(0o755)
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    if path_python:
        # a `python` on PATH that does (exit 0) or does not (exit 1) have torch
        code = 0 if path_python == 'with_torch' else 1
        (bin_dir / 'python').write_text(f'#!/bin/sh\nexit {code}\n')
        (bin_dir / 'python').chmod(0o755)
    env = {'PATH': f'{bin_dir}:/usr/bin:/bin'}
    proc = subprocess.run(
        ['bash', '-c', f'source {tools}/find_python.sh && echo "$PYTHON"'],
        env=env,
        capture_output=True,
        text=True,
    )
    if expected is None:
        assert proc.returncode == 1
        assert 'no python with torch found' in proc.stderr
        assert 'PYTHON' in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        want = str(venv_python) if expected == 'VENV' else 'python'
        assert proc.stdout.strip() == want


def test_launchers_keep_an_explicit_python(tmp_path):
    proc = subprocess.run(
        ['bash', '-c', f'source {REPO}/tools/find_python.sh && echo "$PYTHON"'],
        env={'PATH': '/usr/bin:/bin', 'PYTHON': '/opt/my/python'},
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == '/opt/my/python'
