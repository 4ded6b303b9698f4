"""mmdrn.deploy: every DRN family and every neck/head exports to ONNX and runs
in ONNX Runtime and OpenVINO with PyTorch's outputs; the timm recipe of the
README works, features_only models included."""

import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

for _name in ('onnx', 'onnxscript', 'onnxruntime', 'openvino'):
    pytest.importorskip(_name, reason="the deploy extra: pip install 'mmdrn[deploy]'")

import onnx  # noqa: E402
import openvino as ov  # noqa: E402

import mmdrn.openmmlab  # noqa: E402, F401  (registration)
from mmdrn.deploy import (  # noqa: E402
    ENGINES,
    ExportWrapper,
    build_engine,
    compare,
    convert_openvino,
    example_input,
    export_onnx,
)

# The bound of the deployment guarantee: fp32 engines vs PyTorch fp32.
TOLERANCE = 1e-4
SIZES = [(64, 64), (96, 128)]
BN = dict(type='BN', requires_grad=True)


def _fcn(channels: int) -> dict:
    return dict(
        type='FCNHead', in_channels=channels, channels=channels, num_convs=0,
        concat_input=False, dropout_ratio=0.0, num_classes=5, norm_cfg=BN,
        align_corners=False,
    )  # fmt: skip


def _segmentor(backbone: dict, head: dict, neck=None) -> dict:
    model = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        backbone=dict(backbone, init_cfg=None),
        decode_head=head,
        test_cfg=dict(mode='whole'),
    )
    return dict(model, neck=neck) if neck else model


D22 = dict(type='DRN_D', depth=22)
SEGMENTORS = {
    'drn-a-18+fcn': _segmentor(dict(type='DRN_A', depth=18), _fcn(512)),
    'drn-b-26+fcn': _segmentor(dict(type='DRN_B', depth=26), _fcn(512)),
    'drn-c-26+fcn': _segmentor(dict(type='DRN_C', depth=26), _fcn(512)),
    'drn-d-22+fcn': _segmentor(D22, _fcn(512)),
    'drn-d-22+aspp-neck': _segmentor(
        D22, _fcn(64), dict(type='ASPPNeck', in_channels=512, channels=64)
    ),
    'drn-d-22+context-head': _segmentor(
        D22, dict(type='ContextHead', in_channels=512, num_classes=5, num_layers=8)
    ),
    'drn-d-22+mmseg-aspp-head': _segmentor(
        D22,
        dict(
            type='ASPPHead',
            in_channels=512,
            channels=64,
            dilations=(1, 12, 24, 36),
            num_classes=5,
            norm_cfg=BN,
            align_corners=False,
        ),
    ),  # fmt: skip
}


def _randomise_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics, so that folding them in an engine is checked."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            shape = m.running_mean.shape
            m.running_mean.copy_(torch.rand(shape, generator=generator) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
    return model.eval()


def _build(cfg: dict, scope: str = 'mmseg') -> torch.nn.Module:
    from mmengine.registry import DefaultScope

    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        torch.manual_seed(0)
        return _randomise_norms(registry.build(cfg))


def _symbolic_dims(path) -> list:
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [bool(d.dim_param) for d in dims]


@pytest.mark.parametrize('name', list(SEGMENTORS))
def test_segmentor_exports_dynamic_and_engines_match_pytorch(name, tmp_path):
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    wrapper = ExportWrapper(_build(SEGMENTORS[name]))
    path = tmp_path / 'model.onnx'
    export_onnx(wrapper, example_input((64, 64)), path, dynamic=True)
    # batch, height and width are free; the channels are not
    assert _symbolic_dims(path) == [True, False, True, True]
    engines = {e: build_engine(e, path=path) for e in ('onnxruntime', 'openvino-f32')}
    # 100x70 is off the output-stride grid: the graph still computes PyTorch's
    # output (export.py refuses such a --shape for the labels' alignment only)
    for size in [*SIZES, (100, 70)]:
        x = example_input(size, seed=1)
        with torch.no_grad():
            reference = wrapper(x).numpy()
        assert reference.shape == (1, 5, *size)  # logits at the input size
        for engine, run in engines.items():
            result = compare(reference, run(x.numpy()))
            assert result['max_rel_diff'] <= TOLERANCE, (engine, size, result)
            assert result['agreement'] == 1.0, (engine, size, result)


def test_classifier_exports_with_a_dynamic_batch(tmp_path):
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='DRN_C', depth=26, out_indices=(7,)),
        head=dict(
            type='CAMHead', num_classes=10, in_channels=512, with_boxes=False,
            loss=dict(type='CrossEntropyLoss'),
        ),
    )  # fmt: skip
    wrapper = ExportWrapper(_build(cfg, 'mmpretrain'))
    path = tmp_path / 'cls.onnx'
    export_onnx(wrapper, example_input((64, 64)), path, dynamic=True)
    run = build_engine('onnxruntime', path=path)
    x = torch.cat([example_input((96, 80), seed=s) for s in (1, 2, 3)])
    with torch.no_grad():
        reference = wrapper(x).numpy()
    assert reference.shape == (3, 10)
    assert compare(reference, run(x.numpy()))['max_rel_diff'] <= TOLERANCE


def test_labels_output_is_the_argmax_in_every_engine(tmp_path):
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    model = _build(SEGMENTORS['drn-d-22+fcn'])
    path = tmp_path / 'labels.onnx'
    export_onnx(ExportWrapper(model, 'labels'), example_input((64, 64)), path)
    x = example_input((64, 64), seed=1)
    with torch.no_grad():
        expected = ExportWrapper(model)(x).argmax(1).numpy()
    labels = build_engine('onnxruntime', path=path)(x.numpy())
    assert labels.dtype == np.int64 and labels.shape == (1, 64, 64)
    np.testing.assert_array_equal(labels, expected)


def test_one_channel_segmentor_labels_threshold_the_sigmoid():
    class Binary(torch.nn.Module):
        data_preprocessor = None
        decode_head = type('Head', (), dict(align_corners=False, threshold=0.3))()

        def forward(self, x, mode='tensor'):
            return x[:, :1, ::8, ::8]

    x = torch.full((1, 3, 16, 16), -1.0)
    x[..., :8, :] = 0.0  # sigmoid 0.5 > 0.3 in the upper half, 0.27 below
    labels = ExportWrapper(Binary(), 'labels')(x)
    assert labels.shape == (1, 16, 16)
    assert labels[0, :4].eq(1).all() and labels[0, 12:].eq(0).all()


def test_openvino_ir_replaces_the_files_and_keeps_them_on_failure(tmp_path):
    model = timm.create_model('drn_d_22', num_classes=4).eval()
    onnx_path, xml = tmp_path / 'm.onnx', tmp_path / 'ir' / 'm.xml'
    export_onnx(model, example_input((32, 32)), onnx_path)
    xml.parent.mkdir()
    xml.write_text('old')
    (tmp_path / 'ir' / 'm.bin').write_text('old')
    convert_openvino(onnx_path, xml)
    assert sorted(os.listdir(xml.parent)) == ['m.bin', 'm.xml']  # no temporaries
    x = example_input((32, 32), seed=1)
    with torch.no_grad():
        reference = model(x).numpy()
    result = compare(reference, build_engine('openvino-f32', path=xml)(x.numpy()))
    assert result['max_rel_diff'] <= TOLERANCE

    before = xml.read_bytes(), xml.with_suffix('.bin').read_bytes()
    (tmp_path / 'broken.onnx').write_bytes(b'not a model')
    with pytest.raises(Exception, match='Cannot recognize input model'):
        convert_openvino(tmp_path / 'broken.onnx', xml)
    assert (xml.read_bytes(), xml.with_suffix('.bin').read_bytes()) == before
    with pytest.raises(ValueError, match=r'must end in \.xml'):
        convert_openvino(onnx_path, tmp_path / 'model.bin')


def test_failed_export_leaves_the_existing_file(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError('broken forward')

    path = tmp_path / 'model.onnx'
    path.write_bytes(b'previous model')
    with pytest.raises(Exception, match='broken forward'):
        export_onnx(Broken(), example_input((8, 8)), path)
    assert path.read_bytes() == b'previous model'
    assert os.listdir(tmp_path) == ['model.onnx']


def test_engine_and_output_names_are_checked():
    with pytest.raises(ValueError, match=r"engine must be one of .*'onnxruntime'"):
        build_engine('tensorrt', path='model.onnx')
    with pytest.raises(ValueError, match='pass model'):
        build_engine('torch-fast')
    with pytest.raises(ValueError, match='pass path'):
        build_engine('openvino-bf16')
    with pytest.raises(
        ValueError, match=r"output must be one of \('logits', 'labels'\)"
    ):
        ExportWrapper(torch.nn.Identity(), 'probs')
    assert set(ENGINES) == {
        'torch', 'torch-fast', 'torch-fast-bf16', 'onnxruntime', 'openvino-f32',
        'openvino-bf16',
    }  # fmt: skip


def test_compare_measures_relative_difference_and_agreement():
    reference = np.array([[[2.0, 0.0]], [[0.0, 1.0]]]).transpose(1, 0, 2)  # 1x2x2
    output = reference.copy()
    output[0, 1, 0] = 3.0  # flips the argmax of the first position
    result = compare(reference, output)
    assert result == dict(max_rel_diff=1.5, agreement=0.5)
    with pytest.raises(ValueError, match='differs'):
        compare(reference, output[:, :1])


def test_torch_engines_run_the_model_and_the_fast_path():
    model = timm.create_model('drn_d_22', num_classes=0, global_pool='').eval()
    x = example_input((32, 32), seed=2).numpy()
    eager = build_engine('torch', model)(x)
    fast = build_engine('torch-fast', model)(x)  # BN folded, channels_last, fp32
    assert eager.shape == fast.shape == (1, 512, 4, 4)
    assert compare(eager, fast)['max_rel_diff'] <= TOLERANCE


# --- the timm recipe (README "Deploy", docs/deploy.md) ----------------------
def test_timm_features_only_model_exports_with_dynamic_size(tmp_path):
    import onnxruntime as ort

    model = timm.create_model('drn_d_22', features_only=True, out_indices=(2, 4))
    model.eval()
    size = torch.export.Dim.DYNAMIC
    torch.onnx.export(
        model,
        (torch.randn(1, 3, 64, 64),),
        str(tmp_path / 'features.onnx'),
        dynamo=True,
        input_names=['input'],
        output_names=['level3', 'level5'],
        dynamic_shapes=({0: size, 2: size, 3: size},),
    )
    session = ort.InferenceSession(str(tmp_path / 'features.onnx'))
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        outputs = session.run(None, {'input': x.numpy()})
        with torch.no_grad():
            references = model(x)
        assert [o.shape for o in outputs] == [
            (2, 64, h // 4, w // 4),
            (2, 256, h // 8, w // 8),
        ]
        for ref, out in zip(references, outputs):
            assert compare(ref.numpy(), out)['max_rel_diff'] <= TOLERANCE


def test_timm_model_converts_to_openvino_from_torch_export():
    model = timm.create_model('drn_c_26', num_classes=10).eval()
    size = torch.export.Dim.DYNAMIC
    # an example batch of 2: torch.export specialises a dimension of size 1
    program = torch.export.export(
        model,
        (torch.randn(2, 3, 64, 64),),
        dynamic_shapes=({0: size, 2: size, 3: size},),
    )
    converted = ov.convert_model(program)
    assert str(converted.inputs[0].get_partial_shape()) == '[?,3,?,?]'
    compiled = ov.Core().compile_model(
        converted, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'}
    )
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            reference = model(x).numpy()
        assert compare(reference, compiled(x.numpy())[0])['max_rel_diff'] <= TOLERANCE


def test_deploy_extra_is_pinned_and_installed_by_the_install_script():
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]

    def lines(name: str) -> list:
        text = (root / 'requirements' / name).read_text().splitlines()
        return [
            line.split('#')[0].strip() for line in text if line.split('#')[0].strip()
        ]

    extra = {r.name: r.specifier for r in map(Requirement, lines('deploy.txt'))}
    assert set(extra) == {'onnx', 'onnxscript', 'onnxruntime', 'openvino'}
    pins = dict(line.split('==') for line in lines('stack.txt'))
    for name, specifier in extra.items():
        assert specifier.contains(pins[name]), (name, pins[name])
    assert (
        "'deploy': read_requirements('deploy.txt')" in (root / 'setup.py').read_text()
    )
    assert (
        '-e "$root[openmmlab,tests,deploy]"'
        in (root / 'scripts/install.sh').read_text()
    )
