"""tools/deployment/export.py, run as a user runs it, on a short-trained demo
model; and OpenVINO bf16 on that model's predictions of the demo scenes.

The demo model is DRN-C-26 trained for 30 iterations of 4 scenes by
tools/train.py: enough to predict the large regions of the scenes (sky,
ground, buildings), not the thin classes. Its bf16 agreement therefore says
that bf16 rounding does not move those boundaries; a fully trained model
(the demo's 1,000 iterations) has more boundaries between more classes.
"""

import os
import re

import numpy as np
import pytest
import torch
from tool_runner import REPO, check, run_tool

for _name in ('onnx', 'onnxscript', 'onnxruntime', 'openvino'):
    pytest.importorskip(_name, reason="the deploy extra: pip install 'mmdrn[deploy]'")

import onnx  # noqa: E402

EXPORT = 'deployment/export.py'
DEMO = os.path.join(
    REPO, 'configs', 'demo', 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
)
DEMO_D22 = os.path.join(
    REPO, 'configs', 'demo', 'fcn_drn-d-22-d8_1xb8-1k_drn-demo-64x64.py'
)
CLASSIFIER = os.path.join(REPO, 'configs', 'drn_cls', 'drn-c-26_8xb32_in1k.py')
ROW = re.compile(
    r'verify +(?P<engine>[\w-]+) 1x3x(?P<h>\d+)x(?P<w>\d+): max relative difference '
    r'(?P<diff>[0-9.e+-]+|n/a \(labels\)), argmax agreement (?P<agree>[0-9.]+)%'
)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """The demo config trained 30 iterations; returns (work folder, checkpoint)."""
    cwd = tmp_path_factory.mktemp('demo_export')
    options = [
        'train_cfg.max_iters=30',
        'train_dataloader.batch_size=4',
        'default_hooks.checkpoint.interval=30',
        'default_hooks.logger.interval=10',
        'val_dataloader.dataset.indices=4',  # the check after training
    ]
    args = [DEMO, '--work-dir', 'work', '--cfg-options', *options]
    check(run_tool('train.py', args, str(cwd), env=dict(OMP_NUM_THREADS='2')))
    return cwd, str(cwd / 'work' / 'iter_30.pth')


def _rows(out: str) -> list:
    rows = [m.groupdict() for m in ROW.finditer(out)]
    assert rows, out[-3000:]
    return rows


def test_onnx_dynamic_export_matches_pytorch_at_two_sizes(demo_run, tmp_path):
    _, ckpt = demo_run
    out_file = tmp_path / 'deploy' / 'demo.onnx'
    args = [DEMO, ckpt, '--format', 'onnx', '--out', str(out_file)]
    out = check(run_tool(EXPORT, args + ['--dynamic', '--verify'], str(tmp_path)))
    rows = _rows(out)
    assert [(r['engine'], r['h'], r['w']) for r in rows] == [
        ('onnxruntime', '64', '64'),  # the config's crop_size
        ('onnxruntime', '72', '80'),  # one output-stride step larger
    ]
    for row in rows:
        assert float(row['diff']) <= 1e-4, row
        assert float(row['agree']) == 100.0, row
    model = onnx.load(str(out_file))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['mean'] == '[123.675, 116.28, 103.53]' and meta['output'] == 'logits'
    assert meta['bgr_to_rgb'] == 'True'
    assert os.listdir(out_file.parent) == ['demo.onnx']


# the labels output is a default-suite test of tests/test_deploy in every engine
@pytest.mark.slow
def test_openvino_export_with_labels(demo_run, tmp_path):
    _, ckpt = demo_run
    xml = tmp_path / 'demo.xml'
    args = [DEMO, ckpt, '--format', 'openvino', '--out', str(xml), '--verify']
    rows = _rows(check(run_tool(EXPORT, args + ['--output', 'labels'], str(tmp_path))))
    assert [r['engine'] for r in rows] == ['openvino-f32', 'openvino-bf16']
    assert rows[0]['agree'] == '100.00'
    assert sorted(os.listdir(tmp_path)) == ['demo.bin', 'demo.xml']


def test_openvino_bf16_agrees_with_pytorch_on_the_demo_scenes(demo_run, tmp_path):
    """>= 99.5% of the pixels of the 100 demo validation scenes get the same label."""
    import openvino as ov
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    from mmdrn.deploy import (
        ExportWrapper,
        build_engine,
        compare,
        convert_openvino,
        example_input,
        export_onnx,
    )
    from mmdrn.openmmlab.checkpoint import load_checkpoint_strict

    cwd, ckpt = demo_run
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DEMO)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        load_checkpoint_strict(model, ckpt)
        cfg.test_dataloader.dataset.data_root = str(cwd / 'data' / 'drn_demo')
        loader = Runner.build_dataloader(cfg.test_dataloader)
    model.eval()
    wrapper = ExportWrapper(model)
    export_onnx(wrapper, example_input((64, 64)), tmp_path / 'demo.onnx', dynamic=True)
    convert_openvino(tmp_path / 'demo.onnx', tmp_path / 'demo.xml')
    images = torch.cat([model.data_preprocessor(b, False)['inputs'] for b in loader])
    assert images.shape == (100, 3, 64, 64)
    with torch.no_grad():
        reference = wrapper(images).numpy()
    assert len(np.unique(reference.argmax(1))) >= 3  # not a constant prediction
    result = {}
    for engine in ('openvino-f32', 'openvino-bf16'):
        result[engine] = compare(
            reference, build_engine(engine, path=tmp_path / 'demo.xml')(images.numpy())
        )
    assert result['openvino-f32']['max_rel_diff'] <= 1e-4
    assert result['openvino-bf16']['agreement'] >= 0.995, result
    if 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        # bf16 really ran (a CPU without bf16 runs the hint in f32)
        assert result['openvino-bf16']['max_rel_diff'] > 1e-4, result


# classifier export is a default-suite test of tests/test_deploy; the tool's
# segmentor exports are default-suite tests here
@pytest.mark.slow
def test_mmpretrain_classifier_exports(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(CLASSIFIER)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'cls.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    args = [CLASSIFIER, str(ckpt), '--format', 'onnx', '--out', 'cls.onnx']
    out = check(run_tool(EXPORT, args + ['--verify', '--dynamic'], str(tmp_path)))
    rows = _rows(out)
    assert [(r['h'], r['w']) for r in rows] == [('224', '224'), ('232', '240')]
    assert all(float(r['diff']) <= 1e-4 for r in rows), rows
    meta = {
        p.key: p.value for p in onnx.load(str(tmp_path / 'cls.onnx')).metadata_props
    }
    assert meta['std'] == '[58.395, 57.12, 57.375]'


def test_unknown_format_is_refused(tmp_path):
    proc = run_tool(
        EXPORT, [DEMO, 'x.pth', '--format', 'tflite', '--out', 'm'], str(tmp_path)
    )
    assert proc.returncode == 2
    assert "invalid choice: 'tflite' (choose from 'onnx', 'openvino')" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_checkpoint_of_another_model_is_refused(demo_run, tmp_path):
    _, ckpt = demo_run
    args = [DEMO_D22, ckpt, '--format', 'onnx', '--out', 'model.onnx']
    proc = run_tool(EXPORT, args, str(tmp_path))
    assert proc.returncode == 1
    assert 'does not fit the model of the config' in proc.stderr
    assert 'backbone.layer0.0.weight' in proc.stderr  # a D-22 key C-26 lacks
    assert os.listdir(tmp_path) == []


def test_shape_off_the_output_stride_is_refused_and_nothing_is_written(
    demo_run, tmp_path
):
    _, ckpt = demo_run
    (tmp_path / 'model.onnx').write_bytes(b'previous export')
    args = [
        DEMO,
        ckpt,
        '--format',
        'onnx',
        '--out',
        'model.onnx',
        '--shape',
        '60',
        '64',
    ]
    proc = run_tool(EXPORT, args, str(tmp_path))
    assert proc.returncode == 1
    assert 'height and width must each be a multiple of 8' in proc.stderr
    assert 'e.g. --shape 64 64' in proc.stderr
    assert (tmp_path / 'model.onnx').read_bytes() == b'previous export'
    assert os.listdir(tmp_path) == ['model.onnx']
    # and the file name must fit the format
    args = [DEMO, ckpt, '--format', 'openvino', '--out', 'model.onnx']
    proc = run_tool(EXPORT, args, str(tmp_path))
    assert proc.returncode == 1 and 'writes a .xml file' in proc.stderr
