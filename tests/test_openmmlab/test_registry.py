"""Tests of the OpenMMLab layer's registration."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmdrn.openmmlab  # noqa: F401

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
def test_import_mmdrn_never_loads_the_openmmlab_layer(mmengine_first):
    first = 'import mmengine' if mmengine_first else ''
    result = _run(
        f"""
        import json, sys
        {first}
        import mmdrn
        print(json.dumps('mmdrn.openmmlab' in sys.modules))
        """
    )
    assert result is False


def test_config_custom_imports_register_drn(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text("custom_imports = dict(imports=['mmdrn.openmmlab'])\n")
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
    checks += ['add_data_checks']
    assert result['datasets'] == ['POSITIONS', 'FixedCrop', *checks] + demo
