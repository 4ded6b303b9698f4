"""tools/model_converters/convert_checkpoint.py as users run it (separate
processes): messages, files written, never replacing a file by surprise, and
the converted files in tools/test.py. The conversions themselves are tested
in tests/test_converters.py.
"""

import copy
import os
from pathlib import Path

import drn_checkpoint_helpers as helpers
import mmengine
import numpy as np
import pytest
import timm
import torch
from fake_datasets import IMAGENET_VAL, make_imagenet
from mmengine.config import Config
from tool_runner import check, run_tool

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)
from mmdrn.utils import load_file

REPO = Path(__file__).resolve().parents[2]
TOOL = 'model_converters/convert_checkpoint.py'
TENCROP_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k-10crop.py'


@pytest.fixture(scope='module')
def fyu_file(tmp_path_factory):
    """A drn_c_26 (random weights and BN statistics) saved as fyu/drn does."""
    torch.manual_seed(0)
    model = helpers.randomize_(timm.create_model('drn_c_26'))
    path = tmp_path_factory.mktemp('src') / 'drn_c_26-ddedf421.pth'
    torch.save(helpers.fyu_state(model), path)
    return model, path


def _convert(src, dst, target, *extra, cwd):
    args = [str(src), str(dst), '--target', target, '--model', 'drn_c_26', *extra]
    return run_tool(TOOL, args, cwd=str(cwd))


@pytest.fixture(scope='module')
def converted(fyu_file, tmp_path_factory):
    """The fyu/drn file converted for mmpretrain, and the tool's output."""
    _, src = fyu_file
    dst = tmp_path_factory.mktemp('dst') / 'mmpretrain.pth'
    return dst, check(_convert(src, dst, 'mmpretrain', cwd=dst.parent))


def test_fyu_checkpoint_to_mmpretrain(fyu_file, converted):
    model, src = fyu_file
    dst, out = converted
    assert (
        f'{src} (drn layout, drn_c_26) -> {dst}: {len(model.state_dict())} tensors '
        'for mmpretrain, '
        '1000 classes (head.fc)'
    ) in out
    saved = load_file(dst)
    assert saved['meta'] == dict(
        converted_from=src.name,
        model='drn_c_26',
        target='mmpretrain',
        source_layout='drn',
        num_classes=1000,
        classifier='head.fc',
    )
    assert torch.equal(saved['state_dict']['head.fc.weight'], model.fc.weight)


def test_drnseg_checkpoint_to_a_complete_segmentor(fyu_file, tmp_path):
    model, _ = fyu_file
    src, dst = tmp_path / 'drn_c_26_cityscapes.pth', tmp_path / 'mmseg.pth'
    state = helpers.drnseg_state(model, num_classes=19)
    from mmdrn.converters import bilinear_up_kernel

    state['up.weight'] = bilinear_up_kernel().expand(19, 1, 16, 16).clone()
    torch.save(state, src)
    out = check(_convert(src, dst, 'mmseg', cwd=tmp_path))
    assert '(drnseg layout, drn_c_26)' in out
    assert 'for mmseg, 19 classes (decode_head.conv_seg)' in out
    saved = load_file(dst)['state_dict']
    assert torch.equal(saved['decode_head.conv_seg.weight'], state['seg.weight'])
    assert not any(k.startswith('up.') for k in saved)


def test_existing_destination_is_never_replaced_without_force(fyu_file, tmp_path):
    model, src = fyu_file
    dst = tmp_path / 'precious.pth'
    dst.write_bytes(b'a file the user wants to keep')
    proc = _convert(src, dst, 'timm', cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"convert_checkpoint: error: '{dst}' exists; not replacing it "
        '(pass --force to overwrite)'
    )
    assert dst.read_bytes() == b'a file the user wants to keep'
    check(_convert(src, dst, 'timm', '--force', cwd=tmp_path))
    assert load_file(dst).keys() == model.state_dict().keys()
    assert sorted(os.listdir(tmp_path)) == ['precious.pth']  # no temporary file


def test_errors_are_one_line_and_write_nothing(fyu_file, tmp_path):
    _, src = fyu_file
    dst = tmp_path / 'o.pth'
    proc = _convert(src, dst, 'timm', '--arch', 'drn_c_27', cwd=tmp_path)
    assert proc.returncode == 1
    assert "model must be one of ['drn_a_18'" in proc.stderr
    assert "got 'drn_c_27'" in proc.stderr and 'Traceback' not in proc.stderr
    assert not dst.exists()
    (tmp_path / 'folder').mkdir()
    proc = _convert(src, tmp_path / 'folder', 'timm', '--force', cwd=tmp_path)
    assert proc.returncode == 1 and 'is a directory; give a file name' in proc.stderr
    assert os.listdir(tmp_path / 'folder') == []


def test_command_line_usage_error(tmp_path):
    proc = run_tool(TOOL, ['a.pth', 'b.pth'], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert 'the following arguments are required: --target, --model' in proc.stderr
    assert proc.stderr.startswith('usage: convert_checkpoint.py')


def test_converted_checkpoint_runs_in_tools_test_with_ten_crops(
    fyu_file, converted, tmp_path
):
    # The user's path: convert, then tools/test.py CONFIG CKPT --tta on the
    # 10-crop config (views shrunk to 32x32 for the CPU). Each dumped score
    # is the mean of the 10 views' softmax scores of the original network.
    model, _ = fyu_file
    dst, _ = converted
    root = tmp_path / 'imagenet'
    make_imagenet(root, np.random.default_rng(0))
    crops = [f'tta_pipeline.2.transforms.0.{i}.crop_size=32' for i in range(5)]
    args = [str(TENCROP_CONFIG), str(dst), '--tta', '--work-dir', str(tmp_path / 'wd')]
    args += ['--out', str(tmp_path / 'preds.pkl'), '--cfg-options']
    args += [f'test_dataloader.dataset.data_root={root}', 'tta_pipeline.1.scale=36']
    args += [
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
    ]
    check(run_tool('test.py', args + crops, cwd=str(tmp_path), timeout=600))
    preds = mmengine.load(tmp_path / 'preds.pkl')
    assert len(preds) == len(IMAGENET_VAL)

    # the same 10 views through the timm network with the original weights
    cfg = Config.fromfile(str(TENCROP_CONFIG))
    from mmpretrain.registry import DATASETS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=True)
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
