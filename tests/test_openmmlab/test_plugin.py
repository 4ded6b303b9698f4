"""mmdrn is a plugin: importing it registers names and changes nothing else,
whatever was imported first, and MMSegmentation's own tools get the
reliability features from the config alone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mmseg
import pytest

from mmdrn.openmmlab.compat import mmengine_checkpoints_allowed
from mmdrn.utils import load_file

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
MMSEG_TRAIN = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'


def _python(script: str, cwd=None, timeout=300) -> str:
    proc = subprocess.run(
        [sys.executable, '-c', script],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


BUILD = """
from mmengine.config import Config
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
register_all_modules()
text = "custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)"
Config.fromstring(text, '.py')  # imports custom_imports, as fromfile does
backbone = MODELS.build(dict(type='DRN_C', depth=26))
neck = MODELS.build(dict(type='ContextNeck', in_channels=512, num_classes=19))
print(type(backbone).__name__, type(neck).__name__)
"""


@pytest.mark.parametrize(
    'first', ['import mmdrn\n', 'import mmengine, mmseg, mmseg.models\n']
)
def test_custom_imports_build_in_either_import_order(first):
    then = 'import mmengine, mmseg\n' if first == 'import mmdrn\n' else 'import mmdrn\n'
    assert _python(first + then + BUILD) == 'DRN_C ContextNeck'


SNAPSHOT = """
import json, torch
from mmengine.fileio.backends import registry_utils
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.runner import Runner
from mmseg.utils import register_all_modules
register_all_modules()

def runner_parts():
    import torch.nn as nn
    from mmengine.model import BaseModel
    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)
        def forward(self, x, mode='tensor'):
            return self.fc(x)
    import tempfile
    runner = Runner(model=Tiny(), work_dir=tempfile.mkdtemp(),
                    default_scope='mmseg')
    hooks = sorted(type(h).__name__ for h in runner.hooks)
    return hooks + [type(runner.model).__name__]

def snapshot():
    # private mmengine tables, read (never written) to see what changed
    schemes = {
        k: repr(v) for k, v in CheckpointLoader._schemes.items() if k != 'drn://'
    }
    return dict(
        safe_globals=sorted(repr(g) for g in torch.serialization.get_safe_globals()),
        schemes=schemes,
        backends={k: repr(v) for k, v in registry_utils.backends.items()},
        prefixes={k: repr(v) for k, v in registry_utils.prefix_to_backends.items()},
        runner=runner_parts(),
    )

before = snapshot()
import mmdrn.openmmlab
from mmengine.runner.checkpoint import CheckpointLoader as L
after = snapshot()
print(json.dumps(dict(before=before, after=after, drn='drn://' in L._schemes)))
"""


def test_import_changes_nothing_outside_mmdrn():
    result = json.loads(_python(SNAPSHOT))
    assert result['drn'], 'the drn:// scheme is registered'
    for key, value in result['before'].items():
        assert result['after'][key] == value, key


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    from mmdrn.datasets import generate_demo_scenes

    root = str(tmp_path_factory.mktemp('data') / 'drn_demo')
    generate_demo_scenes(root, num_train=8, num_val=2, size=(64, 64))
    return root


def _mmseg_train(work_dir, *extra, root):
    return [
        sys.executable,
        str(MMSEG_TRAIN),
        str(DEMO),
        '--work-dir',
        str(work_dir),
        *extra,
        '--cfg-options',
        'train_dataloader.batch_size=2',
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.generate=False',
        f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.dataset.generate=False',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'train_cfg.val_interval=100',
    ]


def _env():
    return dict(
        os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1'
    )


@pytest.mark.skipif(
    not MMSEG_TRAIN.is_file(), reason="mmseg's packaged tools are missing"
)
def test_mmsegs_own_train_tool_resumes_and_saves_on_sigterm(tmp_path, scenes):
    cwd = str(tmp_path)
    work = tmp_path / 'work'
    first = subprocess.run(
        _mmseg_train(work, root=scenes) + ['train_cfg.max_iters=2'],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (work / 'iter_2.pth').is_file()
    resumed = subprocess.run(
        _mmseg_train(work, '--resume', root=scenes) + ['train_cfg.max_iters=4'],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-4000:]
    assert 'resumed' in out.lower() and 'iter_2.pth' in out
    with mmengine_checkpoints_allowed():
        assert load_file(work / 'iter_4.pth')['meta']['iter'] == 4

    # SIGTERM mid-run: the config's PreemptionHook saves and exits with 75
    stopped = tmp_path / 'stopped'
    proc = subprocess.Popen(
        _mmseg_train(stopped, root=scenes) + ['train_cfg.max_iters=400'],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, deadline = [], time.monotonic() + 600
    for line in proc.stdout:
        lines.append(line)
        if 'Iter(train) [  3/400]' in line or 'Iter(train) [3/400]' in line:
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, ''.join(lines[-40:])
    rest, _ = proc.communicate(timeout=600)
    out = ''.join(lines) + rest
    assert proc.returncode == 75, out[-3000:]
    saved = [p.name for p in stopped.glob('iter_*.pth')]
    assert any(int(n[5:-4]) >= 3 for n in saved), saved
    assert 'SIGTERM received: saving the checkpoint' in out
    with mmengine_checkpoints_allowed():
        pointer = (stopped / 'last_checkpoint').read_text().strip()
        assert load_file(pointer)['meta']['iter'] >= 3
