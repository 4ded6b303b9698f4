"""tools/model_converters/convert_checkpoint.py as users run it (separate
processes): every source layout, the three targets, DRNSeg segmentors with
fyu/drn's predictions, messages, never replacing a file by surprise, and the
converted files in tools/test.py.

Checkpoints are written by the tests from randomly initialised networks:
mmdrn's timm models saved as fyu/drn saves them (no BatchNorm counters,
optionally inside a DataParallel training checkpoint), fyu/drn's ``DRNSeg``
rebuilt in its own layout, or a pytorchcv ``drnc26`` (an independent
implementation).
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
import torch.nn.functional as F
from fake_datasets import IMAGENET_VAL, make_imagenet
from mmengine.config import Config
from tool_runner import check, run_tool
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)
from mmdrn.utils import load_file

REPO = Path(__file__).resolve().parents[2]
TOOL = 'model_converters/convert_checkpoint.py'
CLS_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k.py'
SEG_CONFIG = REPO / 'configs' / 'drn' / 'fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
FYU_CONFIG = 'configs/drn/fcn_drn-{}-d8_fyu-cityscapes-1024x2048.py'
TENCROP_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k-10crop.py'
X = helpers.X
# fyu/drn datasets/cityscapes/info.json: mean and std of the training images
FYU_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
FYU_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)


@pytest.fixture(scope='module')
def fyu_file(tmp_path_factory):
    """A drn_c_26 (random weights and BN statistics) saved as fyu/drn does."""
    torch.manual_seed(0)
    model = helpers.randomize_(timm.create_model('drn_c_26'))
    path = tmp_path_factory.mktemp('src') / 'drn_c_26-ddedf421.pth'
    torch.save(helpers.fyu_state(model), path)
    return model, path


def _convert(src, dst, target, *extra, cwd, model='drn_c_26'):
    args = [str(src), str(dst), '--target', target, '--model', model, *extra]
    return run_tool(TOOL, args, cwd=str(cwd))


def _convert_saved(tmp_path, checkpoint, target, model='drn_c_26'):
    """Save ``checkpoint``, convert it; (what was written, the tool's output)."""
    src, dst = tmp_path / f'src_{target}.pth', tmp_path / f'{target}.pth'
    torch.save(checkpoint, src)
    out = check(_convert(src, dst, target, cwd=tmp_path, model=model))
    return load_file(dst), out


@pytest.fixture(scope='module')
def converted(fyu_file, tmp_path_factory):
    """The fyu/drn file converted for mmpretrain, and the tool's output."""
    _, src = fyu_file
    dst = tmp_path_factory.mktemp('dst') / 'mmpretrain.pth'
    return dst, check(_convert(src, dst, 'mmpretrain', cwd=dst.parent))


def _build(config):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.default_scope)
    return cfg, revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


def _drnseg(name: str, classes: int = 19, seed: int = 0) -> helpers.FyuDRNSeg:
    torch.manual_seed(seed)
    drn = helpers.randomize_(timm.create_model(name, num_classes=0), seed)
    seg = helpers.FyuDRNSeg(drn, classes).eval()
    with torch.no_grad():
        seg.seg.weight.normal_(0, 0.1)
        seg.seg.bias.uniform_(-0.5, 0.5)
    return seg


def _drnseg_checkpoint(seg: helpers.FyuDRNSeg) -> dict:
    # segment.py saves DataParallel's state dict (module. prefix) with the
    # 2017 BatchNorm (no num_batches_tracked)
    return {
        f'module.{k}': v.clone()
        for k, v in seg.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }


def test_fyu_checkpoint_to_mmpretrain_has_the_same_logits(fyu_file, converted):
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
    _, classifier = _build(CLS_CONFIG)
    classifier.load_state_dict(saved['state_dict'], strict=True)
    with torch.no_grad():
        helpers.assert_close(classifier(X, mode='tensor'), model(X))


def test_up_kernel_is_bilinear_resize_inside_the_border():
    # Why MMSeg's bilinear resize reproduces DRNSeg: away from the 4-pixel
    # border the transposed convolution is F.interpolate(align_corners=False)
    up = nn.ConvTranspose2d(3, 3, 16, stride=8, padding=4, groups=3, bias=False)
    with torch.no_grad():
        up.weight.copy_(helpers.fyu_up_kernel()[None, None].expand(3, 1, 16, 16))
    x = torch.randn(1, 3, 6, 7)
    with torch.no_grad():
        ours, on_ones = up(x), up(torch.ones_like(x))
    resized = F.interpolate(x, scale_factor=8, mode='bilinear', align_corners=False)
    assert ours.shape == resized.shape == (1, 3, 48, 56)
    torch.testing.assert_close(ours[..., 4:-4, 4:-4], resized[..., 4:-4, 4:-4])
    # in the border: the resized values times one positive factor per pixel,
    # the same for every channel (the transposed convolution of ones)
    torch.testing.assert_close(ours, resized * on_ones)
    assert on_ones.min() > 0.3 and on_ones.max() < 1 + 1e-6
    assert torch.equal(on_ones, on_ones[:, :1].expand_as(on_ones))


@pytest.mark.parametrize('name, depth', [('drn_d_22', 'd-22'), ('drn_c_26', 'c-26')])
def test_drnseg_becomes_a_complete_segmentor_with_fyu_predictions(
    tmp_path, name, depth
):
    seg = _drnseg(name)
    saved, out = _convert_saved(tmp_path, _drnseg_checkpoint(seg), 'mmseg', name)
    assert f'(drnseg layout, {name})' in out
    assert 'for mmseg, 19 classes (decode_head.conv_seg)' in out
    assert saved['meta']['source_layout'] == 'drnseg'
    assert saved['meta']['num_classes'] == 19
    assert not any(
        k.startswith(('up.', 'fc.', 'backbone.fc')) for k in saved['state_dict']
    )
    cfg, segmentor = _build(REPO / FYU_CONFIG.format(depth))
    # complete: every key of the segmentor, nothing else
    segmentor.load_state_dict(saved['state_dict'], strict=True)
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.mean == pytest.approx([255 * v for v in FYU_MEAN])
    assert preprocessor.std == pytest.approx([255 * v for v in FYU_STD])
    assert preprocessor.bgr_to_rgb

    # one 48x64 image as LoadImageFromFile gives it (BGR, uint8)
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(1)
    rgb = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=gen)
    meta = dict(img_shape=(48, 64), ori_shape=(48, 64))
    data = dict(inputs=[rgb.flip(0)], data_samples=[SegDataSample(metainfo=meta)])
    with torch.no_grad():
        (out,) = segmentor.test_step(data)
        # fyu/drn: ToTensor (0-1), Normalize(info.json), DRNSeg, argmax
        x = rgb.float()[None] / 255
        x = (x - torch.tensor(FYU_MEAN).view(3, 1, 1)) / torch.tensor(FYU_STD).view(
            3, 1, 1
        )
        ref = seg(x)[0]
    logits = out.seg_logits.data
    assert logits.shape == ref.shape == (19, 48, 64)
    scale = ref.abs().max().item()
    torch.testing.assert_close(
        logits[:, 4:-4, 4:-4], ref[:, 4:-4, 4:-4], rtol=1e-4, atol=1e-4 * scale
    )
    assert torch.equal(out.pred_sem_seg.data[0], ref.argmax(0))


def test_drn_a_drnseg_classifier_becomes_a_convolution(tmp_path):
    seg = _drnseg('drn_a_18', classes=5)
    saved, _ = _convert_saved(tmp_path, _drnseg_checkpoint(seg), 'mmseg', 'drn_a_18')
    state = saved['state_dict']
    assert saved['meta']['classifier'] == 'decode_head.conv_seg'
    assert torch.equal(state['decode_head.conv_seg.weight'], seg.seg.weight)
    assert torch.equal(state['decode_head.conv_seg.bias'], seg.seg.bias)
    assert not any(k.startswith(('fc.', 'backbone.fc')) for k in state)


def test_drnseg_with_another_upsampling_is_refused(tmp_path):
    checkpoint = _drnseg_checkpoint(_drnseg('drn_d_22'))
    checkpoint['module.up.weight'] = torch.rand_like(checkpoint['module.up.weight'])
    src, dst = tmp_path / 'odd_up.pth', tmp_path / 'out.pth'
    torch.save(checkpoint, src)
    proc = _convert(src, dst, 'mmseg', cwd=tmp_path, model='drn_d_22')
    assert proc.returncode == 1 and not dst.exists()
    assert "up.weight is not fyu/drn's fixed bilinear kernel" in proc.stderr
    # the classification targets do not use up: converted as before
    check(_convert(src, dst, 'timm', cwd=tmp_path, model='drn_d_22'))
    assert load_file(dst)['fc.weight'].shape == (19, 512, 1, 1)


def test_imagenet_checkpoint_for_mmseg_is_the_backbone(fyu_file, tmp_path):
    model, src = fyu_file
    dst = tmp_path / 'mmseg.pth'
    out = check(_convert(src, dst, 'mmseg', cwd=tmp_path))
    assert 'classifier (1000 classes) dropped' in out
    saved = load_file(dst)
    assert saved['meta']['classifier'] == 'dropped'
    expected = {
        f'backbone.{k}': v for k, v in model.state_dict().items() if k[:3] != 'fc.'
    }
    assert saved['state_dict'].keys() == expected.keys()
    _, segmentor = _build(SEG_CONFIG)
    missing, unexpected = segmentor.load_state_dict(saved['state_dict'], strict=False)
    assert unexpected == [] and missing == [
        'decode_head.conv_seg.weight',
        'decode_head.conv_seg.bias',
    ]


def test_dataparallel_training_checkpoint_to_timm(fyu_file, tmp_path):
    model, _ = fyu_file
    state = {f'module.{k}': v for k, v in helpers.fyu_state(model).items()}
    checkpoint = dict(epoch=3, arch='drn_c_26', state_dict=state, best_prec1=1.5)
    saved, out = _convert_saved(tmp_path, checkpoint, 'timm')
    assert 'for timm, 1000 classes (fc)' in out
    assert saved.keys() == model.state_dict().keys()
    loaded = timm.create_model('drn_c_26')
    loaded.load_state_dict(saved)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(X), model(X))


def test_pytorchcv_checkpoint_to_mmpretrain_matches_pytorchcv(tmp_path):
    state, _, logits = helpers.pytorchcv_reference('drnc26')
    saved, out = _convert_saved(tmp_path, state, 'mmpretrain')
    assert '(pytorchcv layout, drn_c_26)' in out
    _, classifier = _build(CLS_CONFIG)
    classifier.load_state_dict(saved['state_dict'], strict=True)
    with torch.no_grad():
        helpers.assert_close(classifier(X, mode='tensor'), logits)


def test_headless_checkpoint_cannot_become_an_image_classifier(fyu_file, tmp_path):
    model, _ = fyu_file
    src, dst = tmp_path / 'headless.pth', tmp_path / 'out.pth'
    torch.save(
        {k: v for k, v in helpers.fyu_state(model).items() if k[:3] != 'fc.'}, src
    )
    proc = _convert(src, dst, 'mmpretrain', cwd=tmp_path)
    assert proc.returncode == 1 and not dst.exists()
    assert 'no classifier (fc), which an ImageClassifier needs; use --target mmseg' in (
        proc.stderr
    )
    out = check(_convert(src, dst, 'mmseg', cwd=tmp_path))  # the backbone is enough
    assert out.strip().endswith('for mmseg, no classifier')
    assert load_file(dst)['meta']['num_classes'] == 0


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
    # the weights of another network: the keys that do not fit are named
    proc = _convert(src, dst, 'timm', cwd=tmp_path, model='drn_c_42')
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'convert_checkpoint: error: checkpoint keys do not match' in proc.stderr
    assert 'missing: layer' in proc.stderr and not dst.exists()
    (tmp_path / 'folder').mkdir()
    proc = _convert(src, tmp_path / 'folder', 'timm', '--force', cwd=tmp_path)
    assert proc.returncode == 1 and 'is a directory; give a file name' in proc.stderr
    assert os.listdir(tmp_path / 'folder') == []


def test_command_line_usage_errors(tmp_path):
    proc = run_tool(TOOL, ['a.pth', 'b.pth'], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert 'the following arguments are required: --target, --model' in proc.stderr
    assert proc.stderr.startswith('usage: convert_checkpoint.py')
    proc = _convert('a.pth', 'b.pth', 'onnx', cwd=tmp_path)
    assert proc.returncode == 2
    assert "--target: invalid choice: 'onnx' (choose from " in proc.stderr
    assert 'mmpretrain' in proc.stderr


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
