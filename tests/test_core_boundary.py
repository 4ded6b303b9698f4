"""The core needs only torch and timm; the OpenMMLab layer is separate.

Each test runs a fresh interpreter in which a ``sys.meta_path`` finder makes
the OpenMMLab stack unimportable, as in an environment where only torch and
timm are installed.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENMMLAB = ('mmcv', 'mmengine', 'mmseg', 'mmpretrain')

BLOCKER = """
import importlib.abc
import sys

BLOCKED = {blocked!r}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def _run(code: str, blocked=OPENMMLAB, env=None) -> dict:
    """Run ``code`` with ``blocked`` unimportable; it prints one JSON line."""
    script = BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, '-c', script],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', **env or {}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_works_without_the_openmmlab_stack():
    result = _run(
        """
        import importlib, json, pkgutil
        import timm, torch

        import mmdrn
        from mmdrn.heads import cam_localize
        from mmdrn.inference import optimize_for_inference
        from mmdrn.necks import ASPP, ContextModule

        out = {}
        for blocked in ('mmcv', 'mmengine', 'mmseg', 'mmpretrain'):
            try:
                importlib.import_module(blocked)
            except ImportError:
                out.setdefault('blocked', []).append(blocked)

        # every core module imports (all but mmdrn.openmmlab)
        modules = [
            info.name
            for info in pkgutil.walk_packages(mmdrn.__path__, 'mmdrn.')
            if not info.name.startswith('mmdrn.openmmlab')
        ]
        for name in modules:
            importlib.import_module(name)
        out['modules'] = sorted(modules)

        torch.manual_seed(0)
        features = timm.create_model('drn_c_26', features_only=True).eval()
        with torch.no_grad():
            maps = features(torch.rand(1, 3, 32, 32))
        out['features'] = [list(m.shape) for m in maps]

        names = timm.list_models('drn_*')
        out['models'] = names
        with torch.device('meta'):
            out['params'] = {
                name: sum(p.numel() for p in timm.create_model(name).parameters())
                for name in names
            }

        model = timm.create_model('drn_d_22', num_classes=5).eval()
        x = torch.rand(2, 3, 32, 32)
        with torch.no_grad():
            eager = model(x)
            fast = optimize_for_inference(model, dtype='float32')(x)
        out['fast_path_max_diff'] = (fast - eager).abs().max().item()

        with torch.no_grad():
            aspp_neck = ASPP(8, channels=4, dilations=(1, 2)).eval()
            (aspp,) = aspp_neck((torch.rand(2, 8, 32, 32),))
            (context,) = ContextModule(8, num_classes=3)((torch.rand(1, 8, 9, 9),))
        out['necks'] = [list(aspp.shape), list(context.shape)]

        cam = cam_localize(timm.create_model('drn_c_26', num_classes=5).eval(), x)
        out['cam'] = [list(cam.probs.shape), list(cam.boxes.shape)]
        out['loaded'] = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
        print(json.dumps(out))
        """
    )
    assert result['blocked'] == list(OPENMMLAB)
    assert result['loaded'] == []
    assert {'mmdrn.backbones.drn', 'mmdrn.necks.aspp', 'mmdrn.heads.cam'} <= set(
        result['modules']
    )
    assert {'mmdrn.inference.fast_path', 'mmdrn.utils.validation'} <= set(
        result['modules']
    )
    channels = [16, 32, 64, 128, 256, 512, 512, 512]
    sizes = [32, 16, 8, 4, 4, 4, 4, 4]
    assert result['features'] == [[1, c, s, s] for c, s in zip(channels, sizes)]
    assert len(result['models']) == 17
    # fyu/drn's published sizes (1000 classes): DRN-C-26 21.1M, DRN-D-105 54.8M
    assert round(result['params']['drn_c_26'] / 1e6, 1) == 21.1
    assert round(result['params']['drn_d_105'] / 1e6, 1) == 54.8
    assert result['fast_path_max_diff'] < 1e-4
    assert result['necks'] == [[2, 4, 32, 32], [1, 3, 9, 9]]
    assert result['cam'] == [[2, 5, 4, 4], [2, 4]]


def test_openmmlab_layer_without_mmseg_or_mmpretrain_says_what_to_install():
    result = _run(
        """
        import json
        import mmdrn
        try:
            import mmdrn.openmmlab
        except ImportError as err:
            print(json.dumps({'error': str(err)}))
        """
    )
    message = result['error']
    assert message.startswith(
        'mmdrn.openmmlab registers its components into MMSegmentation or '
        'mmpretrain, and neither can be imported'
    )
    assert "'pip install mmsegmentation' or 'pip install mmpretrain'" in message
    assert "'import mmdrn' needs only torch and timm" in message
