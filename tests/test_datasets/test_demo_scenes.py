import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from mmdrn.datasets.demo_scenes import (
    CLASSES,
    PALETTE,
    draw_scene,
    generate_demo_scenes,
)


def _digest(root):
    sha = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            sha.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as f:
                sha.update(f.read())
    return sha.hexdigest()


def test_classes_and_palette_match():
    assert len(CLASSES) == len(PALETTE) == 7
    assert len(set(PALETTE)) == len(PALETTE)


def test_draw_scene_shapes_and_label_range():
    image, label = draw_scene(3, size=(48, 80))
    assert image.shape == (48, 80, 3) and image.dtype == np.uint8
    assert label.shape == (48, 80) and label.dtype == np.uint8
    assert label.max() < len(CLASSES)


def test_draw_scene_is_deterministic_and_seed_dependent():
    a_img, a_lab = draw_scene((0, 0, 5))
    b_img, b_lab = draw_scene((0, 0, 5))
    c_img, c_lab = draw_scene((0, 0, 6))
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_lab, c_lab)


def test_scenes_contain_every_class_and_thin_objects():
    labels = np.stack([draw_scene(i)[1] for i in range(30)])
    counts = np.bincount(labels.ravel(), minlength=len(CLASSES))
    assert (counts > 0).all(), dict(zip(CLASSES, counts))
    # Thin and small classes stay rare: they are what the demo is about.
    frac = counts / counts.sum()
    for name in ('pole', 'wire', 'sign'):
        assert frac[CLASSES.index(name)] < 0.05, (name, frac)
    # Poles are at most 3 px wide: no row of a pole-only scene part has a
    # run of more than 3 pole pixels unless two poles touch, which is rare.
    pole = labels == CLASSES.index('pole')
    widths = pole.sum(axis=2)[pole.any(axis=2)]
    assert np.median(widths) <= 3


def test_colour_alone_does_not_determine_the_class():
    # Instance colours are drawn from overlapping ranges: the mean colour of
    # vehicles varies a lot across scenes.
    means = []
    for i in range(30):
        image, label = draw_scene(i)
        mask = label == CLASSES.index('vehicle')
        if mask.sum() > 20:
            means.append(image[mask].mean(axis=0))
    assert len(means) >= 10
    assert np.ptp(np.stack(means), axis=0).max() > 100


def test_draw_scene_rejects_bad_size():
    with pytest.raises(
        ValueError, match=r'size must be \(height, width\).*got \(8, 8\)'
    ):
        draw_scene(0, size=(8, 8))
    with pytest.raises(ValueError, match='size must be'):
        draw_scene(0, size=(32, 32, 3))


def test_generate_writes_mmseg_layout_deterministically(tmp_path):
    root = tmp_path / 'demo'
    meta = generate_demo_scenes(
        str(root), num_train=3, num_val=2, size=(32, 48), seed=1
    )
    assert meta['num_train'] == 3 and meta['size'] == [32, 48]
    for split, num in (('train', 3), ('val', 2)):
        imgs = sorted(os.listdir(root / 'img_dir' / split))
        anns = sorted(os.listdir(root / 'ann_dir' / split))
        assert imgs == anns == [f'scene_{i:05d}.png' for i in range(num)]
    img = Image.open(root / 'img_dir' / 'train' / 'scene_00000.png')
    ann = Image.open(root / 'ann_dir' / 'train' / 'scene_00000.png')
    assert img.mode == 'RGB' and img.size == (48, 32)
    assert ann.mode == 'L' and np.asarray(ann).max() < len(CLASSES)
    assert json.loads((root / 'meta.json').read_text()) == meta
    # No temporary directories are left next to the data.
    assert os.listdir(tmp_path) == ['demo']

    again = tmp_path / 'again'
    generate_demo_scenes(str(again), num_train=3, num_val=2, size=(32, 48), seed=1)
    assert _digest(root) == _digest(again)


def test_generate_is_a_no_op_when_present_and_refuses_other_data(tmp_path):
    root = str(tmp_path / 'demo')
    generate_demo_scenes(root, num_train=2, num_val=1, size=(32, 32))
    stamp = os.path.getmtime(os.path.join(root, 'meta.json'))
    generate_demo_scenes(root, num_train=2, num_val=1, size=(32, 32))
    assert os.path.getmtime(os.path.join(root, 'meta.json')) == stamp
    with pytest.raises(ValueError, match='exists but does not hold the demo data'):
        generate_demo_scenes(root, num_train=5, num_val=1, size=(32, 32))
    other = tmp_path / 'other'
    other.mkdir()
    with pytest.raises(ValueError, match='found None'):
        generate_demo_scenes(str(other), num_train=2, num_val=1, size=(32, 32))


@pytest.mark.parametrize('name', ['num_train', 'num_val'])
def test_generate_rejects_bad_counts(tmp_path, name):
    kwargs = dict(num_train=2, num_val=1)
    kwargs[name] = 0
    with pytest.raises(ValueError, match=f'{name} must be an int >= 1, got 0'):
        generate_demo_scenes(str(tmp_path / 'x'), **kwargs)
