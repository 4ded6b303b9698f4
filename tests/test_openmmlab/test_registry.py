"""Tests of the OpenMMLab layer's registration and its process-wide changes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmdrn.openmmlab
from mmdrn.openmmlab.engine.atomic_io import AtomicLocalBackend
from mmdrn.openmmlab.mmengine_compat import (
    history_buffer_method,
    load_from_local_weights_only,
)

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)

sys.meta_path.insert(0, Blocker())
"""


def _run(code: str, blocked=(), **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    script = BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, '-c', script],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('registry', [SEG_MODELS, PRETRAIN_MODELS])
def test_drn_c_builds_in_both_registries(registry):
    assert mmdrn.openmmlab.SCOPES == ('mmseg', 'mmpretrain')
    backbone = registry.build(dict(type='DRN_C', depth=26, out_indices=2)).eval()
    with torch.no_grad():
        outs = backbone(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 512, 4, 4), (1, 512, 4, 4)]


def test_timm_backbone_wrappers_build_drn_and_run():
    """The README's TIMMBackbone snippets, as written."""
    seg = SEG_MODELS.build(
        dict(
            type='mmseg.TIMMBackbone',
            model_name='drn_c_26',
            pretrained=False,
            output_stride=8,
            out_indices=(3, 7),
        )
    ).eval()
    cls = PRETRAIN_MODELS.build(
        dict(type='mmpretrain.TIMMBackbone', model_name='drn_c_26')
    )
    cls.eval()  # mmpretrain's backbones' train() returns None
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        seg_outs = seg(x)
        cls_outs = cls(x)
    assert [tuple(o.shape) for o in seg_outs] == [(1, 128, 4, 4), (1, 512, 4, 4)]
    assert [tuple(o.shape) for o in cls_outs] == [(1, 512, 4, 4)]
    # the same network as DRN_C: same parameter names under timm_model.
    drn_keys = set(SEG_MODELS.build(dict(type='DRN_C', depth=26)).state_dict())
    timm_keys = {k.split('timm_model.', 1)[1] for k in cls.state_dict()}
    assert drn_keys == timm_keys


@pytest.mark.parametrize('mmengine_first', [False, True])
def test_import_mmdrn_loads_the_openmmlab_layer_only_after_mmengine(mmengine_first):
    first = 'import mmengine' if mmengine_first else ''
    result = _run(
        f"""
        import json, sys
        {first}
        import mmdrn
        print(json.dumps('mmdrn.openmmlab' in sys.modules))
        """
    )
    assert result is mmengine_first


@pytest.mark.parametrize('module', ['mmdrn', 'mmdrn.openmmlab'])
def test_config_custom_imports_register_drn(tmp_path, module):
    config = tmp_path / 'cfg.py'
    config.write_text(f'custom_imports = dict(imports=[{module!r}])\n')
    result = _run(
        f"""
        import json
        from mmengine.config import Config
        from mmseg.registry import MODELS
        Config.fromfile({str(config)!r})
        print(json.dumps(MODELS.get('DRN_C') is not None))
        """
    )
    assert result is True


@pytest.mark.parametrize(
    'blocked, scopes, heads',
    [
        ('mmseg', ['mmpretrain'], ['CAMHead']),
        ('mmpretrain', ['mmseg'], ['CAMSegHead', 'ContextHead']),
    ],
)
def test_registers_into_whichever_codebase_is_installed(blocked, scopes, heads):
    result = _run(
        """
        import json
        import mmdrn.openmmlab as om
        from mmdrn.openmmlab import datasets, heads
        registry = __import__(om.SCOPES[0] + '.registry', fromlist=['MODELS'])
        print(json.dumps(dict(
            scopes=list(om.SCOPES),
            heads=heads.__all__,
            datasets=datasets.__all__,
            drn_c=registry.MODELS.get('DRN_C') is not None,
        )))
        """,
        blocked=(blocked,),
    )
    assert result['scopes'] == scopes
    assert result['heads'] == heads
    assert result['drn_c'] is True
    demo = ['DRNDemoDataset'] if 'mmseg' in scopes else []
    checks = ['BadSampleError', 'CheckSegLabels', 'CheckedDataset']
    checks += ['add_data_checks', 'check_class_weights']
    assert result['datasets'] == ['POSITIONS', 'FixedCrop', *checks] + demo


def test_process_wide_changes_are_on_by_default():
    assert CheckpointLoader._schemes[''] is load_from_local_weights_only
    assert type(get_file_backend('work_dirs/iter_1.pth')) is AtomicLocalBackend
    names = [
        g[1] for g in torch.serialization.get_safe_globals() if isinstance(g, tuple)
    ]
    assert 'builtins.getattr' in names


def test_each_process_wide_change_can_be_undone_and_redone():
    om = mmdrn.openmmlab
    om.unregister_mmengine_loader()
    om.disable_atomic_checkpoints()
    om.disallow_mmengine_checkpoints()
    try:
        assert CheckpointLoader._schemes[''] is not load_from_local_weights_only
        assert type(get_file_backend('work_dirs/iter_1.pth')) is LocalBackend
        allowed = torch.serialization.get_safe_globals()
        assert (history_buffer_method, 'builtins.getattr') not in allowed
    finally:
        om.register_mmengine_loader()
        om.enable_atomic_checkpoints()
        om.allow_mmengine_checkpoints()
    test_process_wide_changes_are_on_by_default()


def test_environment_variables_switch_each_change_off():
    code = """
        import json, torch
        import mmdrn.openmmlab
        from mmengine.fileio import get_file_backend
        from mmengine.runner.checkpoint import CheckpointLoader
        names = [g[1] for g in torch.serialization.get_safe_globals()
                 if isinstance(g, tuple)]
        print(json.dumps(dict(
            loader=CheckpointLoader._schemes[''].__module__,
            backend=type(get_file_backend('work_dirs/iter_1.pth')).__name__,
            allowlist='builtins.getattr' in names,
        )))
        """
    off = _run(
        code,
        MMDRN_SAFE_LOAD='0',
        MMDRN_ATOMIC_CHECKPOINTS='0',
        MMDRN_MMENGINE_ALLOWLIST='0',
    )
    assert off == dict(
        loader='mmengine.runner.checkpoint', backend='LocalBackend', allowlist=False
    )
    on = _run(code)
    assert on == dict(
        loader='mmdrn.openmmlab.mmengine_compat',
        backend='AtomicLocalBackend',
        allowlist=True,
    )


def test_a_switch_other_than_0_or_1_is_refused():
    proc = subprocess.run(
        [sys.executable, '-c', 'import mmdrn.openmmlab'],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), MMDRN_SAFE_LOAD='off'),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert (
        "ValueError: MMDRN_SAFE_LOAD must be '0' (off) or '1' (on, the default), "
        "got 'off'"
    ) in proc.stderr
