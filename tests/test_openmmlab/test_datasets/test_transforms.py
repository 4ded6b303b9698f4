"""FixedCrop, and the 10-crop evaluation of configs/drn_cls/*-10crop.py."""

import copy
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from _config_utils import load as load_config
from fake_datasets import IMAGENET_VAL, make_imagenet
from mmcv.transforms import CenterCrop
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmdrn.openmmlab.datasets import POSITIONS, FixedCrop

REPO = Path(__file__).resolve().parents[3]
CLS_CONFIGS = REPO / 'configs' / 'drn_cls'
TENCROP_CONFIGS = sorted(CLS_CONFIGS.glob('*-10crop.py'))


# --- FixedCrop ------------------------------------------------------------

# 5 x 7 image whose pixel (y, x) holds 10 * y + x.
GRID = 10 * np.arange(5)[:, None] + np.arange(7)[None, :]


@pytest.mark.parametrize(
    'position, expected',
    [
        ('top_left', [[0, 1, 2], [10, 11, 12]]),
        ('top_right', [[4, 5, 6], [14, 15, 16]]),
        ('bottom_left', [[30, 31, 32], [40, 41, 42]]),
        ('bottom_right', [[34, 35, 36], [44, 45, 46]]),
        # x1 = round((7 - 3) / 2) = 2, y1 = round((5 - 2) / 2) = round(1.5) = 2
        ('center', [[22, 23, 24], [32, 33, 34]]),
    ],
)
def test_fixed_crop_takes_the_exact_pixels(position, expected):
    # three channels that differ, so a channel mix-up would show
    img = np.stack([GRID, GRID + 100, GRID + 200], axis=-1).astype(np.uint8)
    out = FixedCrop(crop_size=(3, 2), position=position)({'img': img})
    expected = np.array(expected)
    assert out['img'].shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(
            out['img'][..., channel], expected + 100 * channel
        )
    assert out['img_shape'] == (2, 3)


def test_fixed_crop_does_not_alias_the_input():
    img = GRID.copy()
    out = FixedCrop(2, 'top_left')({'img': img})
    out['img'][:] = -1
    np.testing.assert_array_equal(img, GRID)


@pytest.mark.parametrize('size', [(5, 7), (6, 9), (8, 8), (7, 10), (9, 6)])
@pytest.mark.parametrize('crop', [3, (4, 2), (5, 5)])
def test_center_position_matches_mmcv_center_crop(size, crop):
    # the 10-crop centre view is the 1-crop view of the CenterCrop pipeline
    img = np.random.default_rng(0).integers(0, 255, size + (3,), dtype=np.uint8)
    ours = FixedCrop(crop, 'center')({'img': img.copy()})
    theirs = CenterCrop(crop)({'img': img.copy()})
    np.testing.assert_array_equal(ours['img'], theirs['img'])
    assert ours['img_shape'] == theirs['img_shape']


def test_crop_larger_than_the_image_is_cut_to_it():
    # crop (w=10, h=3) on a 5 x 7 image: full width, 3 rows
    out = FixedCrop((10, 3), 'bottom_right')({'img': GRID.copy()})
    np.testing.assert_array_equal(out['img'], GRID[2:, :])
    assert out['img_shape'] == (3, 7)


def test_seg_map_and_boxes_follow_the_crop():
    boxes = np.array(
        [
            [4.0, 3.0, 6.0, 5.0],  # inside the bottom-right 3 x 2 crop
            [0.0, 0.0, 5.0, 4.0],  # overlaps it: clipped at the crop's edges
            [0.0, 0.0, 1.0, 1.0],  # outside: collapses onto the border
        ],
        dtype=np.float32,
    )
    results = {'img': GRID.copy(), 'gt_seg_map': GRID.copy(), 'gt_bboxes': boxes}
    out = FixedCrop((3, 2), 'bottom_right')(results)
    # crop offset (x1, y1) = (4, 3), size 3 x 2
    np.testing.assert_array_equal(out['gt_seg_map'], [[34, 35, 36], [44, 45, 46]])
    np.testing.assert_array_equal(
        out['gt_bboxes'],
        [[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
    )
    assert out['gt_bboxes'].dtype == np.float32


@pytest.mark.parametrize('position', ['middle', 'topleft', 'Center', None])
def test_bad_position_is_named(position):
    with pytest.raises(ValueError) as err:
        FixedCrop(4, position=position)
    message = str(err.value)
    assert f'got {position!r}' in message
    assert all(repr(p) in message for p in POSITIONS)


@pytest.mark.parametrize('crop_size', [0, -3, 2.5, True, (3,), (3, 0), (3, 4, 5), '4'])
def test_bad_crop_size_is_named(crop_size):
    with pytest.raises(ValueError, match='crop_size must be a positive int or a'):
        FixedCrop(crop_size)


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmseg'])
def test_fixed_crop_is_registered_in_both_scopes(scope):
    if scope == 'mmseg':
        from mmseg.registry import TRANSFORMS
    else:
        from mmpretrain.registry import TRANSFORMS
    crop = TRANSFORMS.build(dict(type='FixedCrop', crop_size=2, position='top_right'))
    assert isinstance(crop, FixedCrop)
    np.testing.assert_array_equal(crop({'img': GRID.copy()})['img'], GRID[:2, 5:])


# --- 10-crop configs ------------------------------------------------------


def test_every_classification_config_has_a_tencrop_twin():
    one_crop = sorted(p for p in CLS_CONFIGS.glob('*.py') if p not in TENCROP_CONFIGS)
    assert len(one_crop) == 8
    assert [p.name.replace('.py', '-10crop.py') for p in one_crop] == [
        p.name for p in TENCROP_CONFIGS
    ]


@pytest.fixture(scope='module')
def tencrop_cfgs():
    return {p: load_config(p) for p in TENCROP_CONFIGS}


def test_tencrop_configs_add_only_the_tta_pieces(tencrop_cfgs):
    # same model, training and 1-crop test as their 1-crop twin; the 10 views
    # are the paper's: resize 256 (as the 1-crop test), 5 crops of 224 x 2 flips
    for path, cfg in tencrop_cfgs.items():
        twin = load_config(path.with_name(path.name.replace('-10crop', '')))
        assert 'tta_model' not in twin and 'tta_pipeline' not in twin
        assert cfg.model == twin.model
        assert cfg.train_dataloader == twin.train_dataloader
        assert cfg.test_dataloader == twin.test_dataloader
        assert cfg.tta_model == dict(type='AverageClsScoreTTA')
        tta = cfg.tta_pipeline
        assert tta[:2] == twin.test_pipeline[:2]  # load, ResizeEdge 256 short
        assert twin.test_pipeline[2] == dict(type='CenterCrop', crop_size=224)
        crops, flips, pack = tta[2].transforms
        assert [(c.type, c.crop_size, c.position) for c in crops] == [
            ('FixedCrop', 224, p) for p in POSITIONS
        ]
        assert [(f.type, f.prob) for f in flips] == [
            ('RandomFlip', 0),
            ('RandomFlip', 1),
        ]
        assert pack == [twin.test_pipeline[-1]]


def _tta_dataset(cfg: Config, root: Path, resize: int = 256, crop: int = 224):
    """The test dataset as ``tools/test.py --tta`` builds it, on the fixture."""
    from mmpretrain.registry import DATASETS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    init_default_scope('mmpretrain')
    pipeline = copy.deepcopy(cfg.tta_pipeline)
    pipeline[1].scale = resize
    for t in pipeline[2].transforms[0]:
        t.crop_size = crop
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset.update(data_root=str(root), pipeline=pipeline)
    return DATASETS.build(dataset)


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp('tencrop') / 'imagenet'
    make_imagenet(root, np.random.default_rng(0))
    return root, IMAGENET_VAL


def _expected_views(path: Path, resize: int, crop: int):
    """The 10 views computed by hand: resize, slice, mirror (CHW tensors)."""
    img = mmcv.imread(str(path))  # BGR, as LoadImageFromFile reads it
    h, w = img.shape[:2]
    if w < h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    img = mmcv.imresize(img, size, interpolation='bilinear')
    h, w = img.shape[:2]
    starts = {
        'center': (round((h - crop) / 2), round((w - crop) / 2)),
        'top_left': (0, 0),
        'top_right': (0, w - crop),
        'bottom_left': (h - crop, 0),
        'bottom_right': (h - crop, w - crop),
    }
    views = []
    for position in POSITIONS:
        y, x = starts[position]
        view = img[y : y + crop, x : x + crop]
        for flipped in (view, view[:, ::-1]):
            views.append(torch.from_numpy(flipped.transpose(2, 0, 1).copy()))
    return views


def test_tta_pipeline_yields_the_ten_views(tencrop_cfgs, imagenet):
    root, val = imagenet
    cfg = tencrop_cfgs[CLS_CONFIGS / 'drn-c-26_8xb32_in1k-10crop.py']
    dataset = _tta_dataset(cfg, root)
    assert len(dataset) == len(val)
    for index, (name, label, (width, height)) in enumerate(val):
        sample = dataset[index]
        inputs, samples = sample['inputs'], sample['data_samples']
        assert len(inputs) == len(samples) == 10
        expected = _expected_views(root / 'val' / name, 256, 224)
        for k, (got, want) in enumerate(zip(inputs, expected)):
            assert got.shape == (3, 224, 224) and got.dtype == torch.uint8
            assert torch.equal(got, want), f'view {k} of {name}'
        assert [s.flip for s in samples] == [False, True] * 5
        for s in samples:
            assert int(s.gt_label) == label
            assert s.ori_shape == (height, width) and s.img_shape == (224, 224)
    # the 1-crop test view is the first of the ten
    one_crop = copy.deepcopy(cfg.test_dataloader.dataset)
    one_crop.data_root = str(root)
    from mmpretrain.registry import DATASETS

    assert torch.equal(DATASETS.build(one_crop)[0]['inputs'], dataset[0]['inputs'][0])


def test_tta_model_averages_the_ten_views_scores(tencrop_cfgs, imagenet):
    # A DRN-C-26 with 4 classes on 32x32 views (resize 36): the TTA model's
    # score per image is the mean of the 10 views' softmax scores.
    from mmpretrain.registry import MODELS

    root, val = imagenet
    cfg = tencrop_cfgs[CLS_CONFIGS / 'drn-c-26_8xb32_in1k-10crop.py']
    dataset = _tta_dataset(cfg, root, resize=36, crop=32)
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    module = copy.deepcopy(cfg.model)
    module.head.num_classes = 4
    preprocessor = dict(cfg.data_preprocessor, num_classes=4)
    torch.manual_seed(0)
    tta = MODELS.build(
        dict(cfg.tta_model, module=module, data_preprocessor=preprocessor)
    ).eval()
    model = tta.module
    calls = []
    model.head.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    with torch.no_grad():
        merged = tta.test_step(copy.deepcopy(batch))
        assert calls == [len(val)] * 10  # ten passes over the whole batch
        scores = []
        for inputs, samples in zip(batch['inputs'], batch['data_samples']):
            data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples))
            scores.append(model(data['inputs'], mode='tensor').softmax(dim=1))
    scores = torch.stack(scores)  # views x images x classes
    expected = scores.mean(dim=0)
    got = torch.stack([s.pred_score for s in merged])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    # the views disagree, so the mean is not any single view's score
    assert (scores - expected).abs().amax() > 1e-3
    assert [int(s.gt_label) for s in merged] == [label for _, label, _ in val]
