"""tools/convert_checkpoint.py: every source layout, the three targets, safety.

Checkpoints are written by the tests from randomly initialised networks:
mmdrn's timm ``drn_c_26`` saved as fyu/drn saves it (no BatchNorm counters,
optionally inside a DataParallel training checkpoint), renamed to DRNSeg's
keys, or a pytorchcv ``drnc26`` (an independent implementation).
"""

import copy
import importlib.util
import os
from pathlib import Path

import mmengine
import numpy as np
import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from tool_runner import run_tool

import mmdrn  # noqa: F401  (registers the DRN components)
from mmdrn.utils import load_file

REPO = Path(__file__).resolve().parents[2]
CLS_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k.py'
TENCROP_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k-10crop.py'
SEG_CONFIG = REPO / 'configs' / 'drn' / 'fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
X = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))


def _module(path: Path, name: str):
    # tools/ and the backbone tests' helpers are not packages
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert_tool = _module(REPO / 'tools' / 'convert_checkpoint.py', '_convert_tool')
ckpt_helpers = _module(
    REPO / 'tests' / 'test_backbones' / 'drn_checkpoint_helpers.py', '_ckpt_helpers'
)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny convolutions: threads only busy-wait on a shared 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def reference():
    """A drn_c_26 with random weights and BN statistics, and its logits on X."""
    torch.manual_seed(0)
    model = ckpt_helpers.randomize_(timm.create_model('drn_c_26'))
    with torch.no_grad():
        logits = model(X)
    return model, logits


def _convert(src: Path, dst: Path, target: str, *extra: str) -> dict:
    return convert_tool.main(
        [str(src), str(dst), '--target', target, '--model', 'drn_c_26', *extra]
    )


def _build(config: Path):
    cfg = Config.fromfile(str(config))
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model).eval()


def test_fyu_checkpoint_to_mmpretrain_loads_strictly_with_same_logits(
    reference, tmp_path
):
    model, logits = reference
    src, dst = tmp_path / 'drn_c_26-ddedf421.pth', tmp_path / 'mmpretrain.pth'
    torch.save(ckpt_helpers.fyu_state(model), src)
    _convert(src, dst, 'mmpretrain')
    saved = load_file(dst)
    assert saved['meta'] == dict(
        converted_from=src.name,
        model='drn_c_26',
        target='mmpretrain',
        source_layout='drn',
        num_classes=1000,
    )
    classifier = _build(CLS_CONFIG)
    assert saved['state_dict'].keys() == classifier.state_dict().keys()
    load_checkpoint(classifier, str(dst), strict=True)  # mmengine, as tools/ load
    with torch.no_grad():
        got = classifier(X, mode='tensor')
    ckpt_helpers.assert_close(got, logits)


def test_dataparallel_training_checkpoint_to_timm(reference, tmp_path):
    model, logits = reference
    src, dst = tmp_path / 'checkpoint.pth.tar', tmp_path / 'timm.pth'
    state = {f'module.{k}': v for k, v in ckpt_helpers.fyu_state(model).items()}
    torch.save(dict(epoch=3, arch='drn_c_26', state_dict=state, best_prec1=1.5), src)
    _convert(src, dst, 'timm')
    saved = load_file(dst)
    assert saved.keys() == model.state_dict().keys()  # a plain state dict
    loaded = timm.create_model('drn_c_26', checkpoint_path=str(dst)).eval()
    with torch.no_grad():
        ckpt_helpers.assert_close(loaded(X), logits)


def test_pytorchcv_checkpoint_to_mmpretrain_matches_pytorchcv(tmp_path):
    state, _, logits = ckpt_helpers.pytorchcv_reference('drnc26')
    src, dst = tmp_path / 'drnc26.pth', tmp_path / 'mmpretrain.pth'
    torch.save(state, src)
    out = _convert(src, dst, 'mmpretrain')
    assert out['meta']['source_layout'] == 'pytorchcv'
    classifier = _build(CLS_CONFIG)
    classifier.load_state_dict(load_file(dst)['state_dict'], strict=True)
    with torch.no_grad():
        ckpt_helpers.assert_close(classifier(ckpt_helpers.X, mode='tensor'), logits)


def test_drnseg_checkpoint_to_mmseg_fills_the_backbone_only(reference, tmp_path):
    model, _ = reference
    src, dst = tmp_path / 'drn_c_26_cityscapes.pth', tmp_path / 'mmseg.pth'
    torch.save(ckpt_helpers.drnseg_state(model, num_classes=19), src)
    out = _convert(src, dst, 'mmseg')
    assert out['meta']['source_layout'] == 'drnseg'
    assert out['meta']['num_classes'] == 19  # DRNSeg's seg layer, dropped
    saved = load_file(dst)['state_dict']
    expected = {
        f'backbone.{k}': v for k, v in model.state_dict().items() if k[:3] != 'fc.'
    }
    assert saved.keys() == expected.keys()
    segmentor = _build(SEG_CONFIG)
    missing, unexpected = segmentor.load_state_dict(saved, strict=False)
    assert unexpected == []
    assert missing and all(k.startswith('decode_head.') for k in missing)
    for key, value in segmentor.state_dict().items():
        if key in expected and not key.endswith('num_batches_tracked'):
            assert torch.equal(value, expected[key]), key
    # the other documented use: the backbone's init_cfg with prefix='backbone.'
    backbone = _build(SEG_CONFIG).backbone
    backbone.init_cfg = dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, expected[f'backbone.{key}']), key


def test_converted_checkpoint_runs_in_tools_test_with_ten_crops(reference, tmp_path):
    # The user's path: convert, then tools/test.py CONFIG CKPT --tta on the
    # 10-crop config (views shrunk to 32x32 for the CPU). Each dumped score
    # is the mean of the 10 views' softmax scores of the original network.
    model, _ = reference
    src, dst = tmp_path / 'fyu.pth', tmp_path / 'mmpretrain.pth'
    torch.save(ckpt_helpers.fyu_state(model), src)
    _convert(src, dst, 'mmpretrain')
    fixtures = _module(REPO / 'tests' / 'test_configs' / 'conftest.py', '_fixtures')
    root = tmp_path / 'imagenet'
    fixtures._make_imagenet(root, np.random.default_rng(0))
    test_tool = _module(REPO / 'tools' / 'test.py', '_test_tool')
    crops = [f'tta_pipeline.2.transforms.0.{i}.crop_size=32' for i in range(5)]
    test_tool.main(
        [str(TENCROP_CONFIG), str(dst), '--tta', '--work-dir', str(tmp_path / 'wd')]
        + ['--out', str(tmp_path / 'preds.pkl'), '--cfg-options']
        + [f'test_dataloader.dataset.data_root={root}', 'tta_pipeline.1.scale=36']
        + ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
        + crops
    )
    preds = mmengine.load(tmp_path / 'preds.pkl')
    assert len(preds) == len(fixtures.IMAGENET_VAL)

    # the same 10 views through the timm network with the original weights
    cfg = Config.fromfile(str(TENCROP_CONFIG))
    from mmpretrain.registry import DATASETS

    pipeline = copy.deepcopy(cfg.tta_pipeline)
    pipeline[1].scale = 36
    for t in pipeline[2].transforms[0]:
        t.crop_size = 32
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset.update(data_root=str(root), pipeline=pipeline)
    dataset = DATASETS.build(dataset)
    mean = torch.tensor(cfg.data_preprocessor.mean).view(3, 1, 1)
    std = torch.tensor(cfg.data_preprocessor.std).view(3, 1, 1)
    for pred, sample in zip(preds, dataset):
        views = torch.stack(sample['inputs'])[:, [2, 1, 0]].float()  # BGR -> RGB
        with torch.no_grad():
            scores = model((views - mean) / std).softmax(dim=1)
        torch.testing.assert_close(
            pred['pred_score'], scores.mean(dim=0), rtol=1e-4, atol=1e-6
        )


def test_existing_destination_is_never_replaced_without_force(
    reference, tmp_path, capsys
):
    model, _ = reference
    src, dst = tmp_path / 'fyu.pth', tmp_path / 'precious.pth'
    torch.save(ckpt_helpers.fyu_state(model), src)
    dst.write_bytes(b'a file the user wants to keep')
    with pytest.raises(SystemExit) as err:
        _convert(src, dst, 'timm')
    assert 'precious.pth' in str(err.value) and '--force' in str(err.value)
    assert dst.read_bytes() == b'a file the user wants to keep'
    _convert(src, dst, 'timm', '--force')
    assert load_file(dst).keys() == model.state_dict().keys()
    assert sorted(os.listdir(tmp_path)) == ['fyu.pth', 'precious.pth']  # no temp
    (tmp_path / 'folder').mkdir()
    with pytest.raises(SystemExit, match='is a directory'):
        _convert(src, tmp_path / 'folder', 'timm', '--force')
    assert os.listdir(tmp_path / 'folder') == []


def test_save_new_refuses_a_file_that_appears_during_the_write(tmp_path, monkeypatch):
    # The check before converting cannot see a file created meanwhile; the
    # final step (a hard link) still refuses to replace it.
    from mmdrn.openmmlab.engine import atomic_io

    dst = tmp_path / 'out.pth'
    real_save = atomic_io.atomic_save

    def save_then_race(obj, path):
        real_save(obj, path)
        dst.write_bytes(b'written by someone else meanwhile')

    monkeypatch.setattr(atomic_io, 'atomic_save', save_then_race)
    with pytest.raises(FileExistsError, match='out.pth'):
        convert_tool.save_new({'w': torch.ones(1)}, str(dst))
    assert dst.read_bytes() == b'written by someone else meanwhile'
    assert os.listdir(tmp_path) == ['out.pth']


def test_save_new_without_hard_links_still_refuses_and_writes(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, 'Operation not permitted')

    monkeypatch.setattr(os, 'link', no_links)
    dst = tmp_path / 'out.pth'
    convert_tool.save_new({'w': torch.ones(1)}, str(dst))
    assert torch.equal(load_file(dst)['w'], torch.ones(1))
    with pytest.raises(FileExistsError, match='--force'):
        convert_tool.save_new({'w': torch.zeros(1)}, str(dst))
    assert torch.equal(load_file(dst)['w'], torch.ones(1))
    assert os.listdir(tmp_path) == ['out.pth']


def test_bad_target_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        convert_tool.main(['a.pth', 'b.pth', '--target', 'onnx', '--model', 'drn_c_26'])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "argument --target: invalid choice: 'onnx'" in message
    assert "'mmpretrain', 'mmseg', 'timm'" in message
    with pytest.raises(ValueError, match=r"target must be one of \['mmpretrain', "):
        convert_tool.convert({}, 'drn_c_26', 'onnx')


def test_bad_model_is_named(reference, tmp_path):
    model, _ = reference
    src = tmp_path / 'fyu.pth'
    torch.save(ckpt_helpers.fyu_state(model), src)
    with pytest.raises(SystemExit) as err:
        convert_tool.main(
            [
                str(src),
                str(tmp_path / 'o.pth'),
                '--target',
                'timm',
                '--arch',
                'drn_c_27',
            ]
        )
    message = str(err.value)
    assert 'model must be one of [' in message and "got 'drn_c_27'" in message
    assert "'drn_c_26'" in message and "'drn_d_105'" in message
    assert not (tmp_path / 'o.pth').exists()


def test_wrong_network_for_the_weights_is_refused(reference, tmp_path):
    # DRN-C-26 weights named as DRN-C-42: the converter's key check names
    # the keys the checkpoint lacks
    model, _ = reference
    src = tmp_path / 'fyu.pth'
    torch.save(ckpt_helpers.fyu_state(model), src)
    with pytest.raises(SystemExit, match='missing: .*layer'):
        convert_tool.main(
            [
                str(src),
                str(tmp_path / 'o.pth'),
                '--target',
                'timm',
                '--model',
                'drn_c_42',
            ]
        )
    assert not (tmp_path / 'o.pth').exists()


def test_headless_checkpoint_cannot_become_an_image_classifier(reference, tmp_path):
    model, _ = reference
    src = tmp_path / 'backbone.pth'
    state = ckpt_helpers.fyu_state(model)
    torch.save({k: v for k, v in state.items() if not k.startswith('fc.')}, src)
    with pytest.raises(SystemExit, match='no classifier .*--target mmseg'):
        _convert(src, tmp_path / 'cls.pth', 'mmpretrain')
    out = _convert(src, tmp_path / 'seg.pth', 'mmseg')  # the backbone is enough
    assert out['meta']['num_classes'] == 0


def test_command_line_usage_error(tmp_path):
    # as a user runs it (a separate process): argparse's exit status and usage
    proc = run_tool('convert_checkpoint.py', ['a.pth', 'b.pth'], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert 'the following arguments are required: --target, --model' in proc.stderr
    assert proc.stderr.startswith('usage: convert_checkpoint.py')
