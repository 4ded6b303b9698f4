"""CheckedDataset / CheckSegLabels / add_data_checks: a broken or wrong
sample names its file and dataset index; skipping is opt-in and logged
(tools/train.py's class_weight check is in tests/test_tools/test_train_test.py)."""

import logging
import re
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image

from mmdrn.datasets import generate_demo_scenes
from mmdrn.openmmlab.datasets import checks as data_checks
from mmdrn.openmmlab.datasets.checks import (
    BadSampleError,
    CheckedDataset,
    CheckSegLabels,
    add_data_checks,
)

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


@pytest.fixture(scope='module')
def clean_data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('checks') / 'drn_demo')
    generate_demo_scenes(root, num_train=4, num_val=1, size=(24, 32))
    return root


@pytest.fixture
def data(clean_data, tmp_path) -> str:
    """A private copy each test may break."""
    return shutil.copytree(clean_data, tmp_path / 'drn_demo')


def _inner(root, test_mode=False):
    init_default_scope('mmseg')
    return DATASETS.build(
        dict(
            type='DRNDemoDataset',
            data_root=str(root),
            data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
            pipeline=PIPELINE,
            test_mode=test_mode,
        )
    )


def _checked(root, **kwargs):
    return CheckedDataset(_inner(root, kwargs.pop('test_mode', False)), **kwargs)


def _paths(dataset, idx):
    info = dataset.get_data_info(idx)
    return info['img_path'], info['seg_map_path']


def _truncate(path):
    content = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(content[: len(content) // 2])


def test_clean_samples_pass_unchanged(data):
    checked, plain = _checked(data), _inner(data)
    assert len(checked) == len(plain) == 4
    assert checked.metainfo == plain.metainfo
    assert checked.ignore_index == 255  # attributes of the wrapped dataset
    for idx in range(4):
        a, b = checked[idx], plain[idx]
        assert torch.equal(a['inputs'], b['inputs'])
        assert torch.equal(
            a['data_samples'].gt_sem_seg.data, b['data_samples'].gt_sem_seg.data
        )


def test_options_of_the_wrapped_config_go_to_the_dataset(data, tmp_path):
    # as --cfg-options train_dataloader.dataset.data_root=... on a wrapped config
    init_default_scope('mmseg')
    inner = dict(
        type='DRNDemoDataset',
        data_root=str(tmp_path / 'elsewhere'),
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=PIPELINE,
    )
    checked = DATASETS.build(dict(type='CheckedDataset', dataset=inner, data_root=data))
    assert len(checked) == 4 and checked.data_root == data
    with pytest.raises(TypeError, match=r"\['data_root'\], which only go to a"):
        CheckedDataset(_inner(data), data_root=data)


@pytest.mark.parametrize('which', ['image', 'label'])
@pytest.mark.parametrize(
    'fault, cause',
    [
        ('truncated', 'cannot be read or decoded'),
        ('empty', 'is empty (0 bytes)'),
        ('missing', 'does not exist'),
    ],
)
def test_unreadable_file_names_file_index_and_cause(data, which, fault, cause):
    dataset = _checked(data)
    img, seg = _paths(dataset, 2)
    path = img if which == 'image' else seg
    if fault == 'truncated':
        _truncate(path)
    elif fault == 'empty':
        open(path, 'wb').close()
    else:
        import os

        os.remove(path)
    with pytest.raises(BadSampleError) as info:
        dataset[2]
    message = str(info.value)
    assert message.startswith(f'dataset sample 2 (img_path={img}, seg_map_path={seg})')
    assert f'{path}' in message.split(')', 1)[1]
    assert cause in message
    loader = 'LoadImageFromFile' if which == 'image' else 'LoadAnnotations'
    assert f'[{loader}: ' in message
    dataset[1]  # the other samples still load


def test_mmseg_alone_does_not_name_an_empty_label_file(data):
    """Control: what MMSeg 1.2.2 raises for an empty label file (pillow's
    error about a BytesIO object: neither the file nor the index)."""
    plain = _inner(data)
    _, seg = _paths(plain, 2)
    open(seg, 'wb').close()
    with pytest.raises(Exception) as info:
        plain[2]
    assert 'cannot identify image file' in str(info.value)
    assert seg not in str(info.value)


def test_label_map_of_another_size_is_an_error(data):
    dataset = _checked(data)
    img, seg = _paths(dataset, 1)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(seg)
    with pytest.raises(BadSampleError) as info:
        dataset[1]
    assert str(info.value) == (
        f'dataset sample 1: label map {seg} is 16x16 (WxH) but its image {img} '
        f'is 32x24; a label map must have the size of its image'
    )


def test_label_values_outside_the_classes_are_an_error(data):
    dataset = _checked(data)
    _, seg = _paths(dataset, 0)
    labels = np.zeros((24, 32), np.uint8)
    labels[0, :3] = 7  # 7 classes: 0..6
    labels[1, 0] = 200
    labels[2, :] = 255  # the ignore index is fine
    Image.fromarray(labels).save(seg)
    with pytest.raises(BadSampleError) as info:
        dataset[0]
    assert str(info.value) == (
        f'dataset sample 0: label map {seg} holds values [7, 200] in 4 pixels; '
        f'labels must be 0..6 (7 classes) or the ignore index 255'
    )
    # Off by a setting: the map then loads as it is.
    sample = _checked(data, check_labels=False)[0]
    assert int(sample['data_samples'].gt_sem_seg.data.max()) == 255


def test_ignore_index_and_all_classes_pass(data):
    dataset = _checked(data)
    _, seg = _paths(dataset, 0)
    labels = np.tile(np.arange(7, dtype=np.uint8), (24, 5))[:, :32]
    labels[:, -1] = 255
    Image.fromarray(labels).save(seg)
    got = dataset[0]['data_samples'].gt_sem_seg.data.numpy()[0]
    np.testing.assert_array_equal(got, labels)


def test_check_seg_labels_arguments():
    with pytest.raises(ValueError, match='num_classes must be an int >= 1, got 0'):
        CheckSegLabels(0)
    with pytest.raises(TypeError, match='num_classes must be an int >= 1, got 2.5'):
        CheckSegLabels(2.5)
    with pytest.raises(ValueError, match='max_refetch must be an int >= 0, got -1'):
        CheckedDataset(dict(type='x'), max_refetch=-1)
    with pytest.raises(TypeError, match='ignore_index must be an int'):
        CheckSegLabels(3, ignore_index='255')
    with pytest.raises(TypeError, match='skip_unreadable must be True or False'):
        CheckedDataset(dict(type='x'), skip_unreadable=1)


def test_skip_unreadable_is_opt_in_and_counted_in_the_log(data, monkeypatch):
    logged = []
    monkeypatch.setattr(
        data_checks, 'print_log', lambda msg, logger, level: logged.append((msg, level))
    )
    dataset = _checked(data, skip_unreadable=True)
    img, seg = _paths(dataset, 3)
    open(seg, 'wb').close()
    np.random.seed(0)
    first = dataset[3]
    second = dataset[3]
    # Another sample came back, each skip was logged with a running count.
    for sample in (first, second):
        assert sample['data_samples'].seg_map_path != seg
    assert all(level == logging.WARNING for _, level in logged)
    messages = [message for message, _ in logged]
    # Each skip is logged; a replacement drawn at random may be sample 3 again.
    assert len(messages) == dataset.skipped >= 2
    start = f'skipped unreadable dataset sample 3 (img_path={img}'
    for count, message in enumerate(messages, 1):
        assert message.startswith(start)
        assert f'{seg} is empty (0 bytes)' in message
        assert re.search(
            rf'; {count} sample\(s\) skipped so far by process \d+$', message
        )


def test_evaluation_datasets_and_label_errors_are_never_skipped(data):
    dataset = _checked(data, skip_unreadable=True, test_mode=True)
    _, seg = _paths(dataset, 0)
    open(seg, 'wb').close()
    with pytest.raises(BadSampleError, match='is empty'):
        dataset[0]
    train = _checked(data, skip_unreadable=True)
    _, seg = _paths(train, 1)
    Image.fromarray(np.full((24, 32), 9, np.uint8)).save(seg)
    with pytest.raises(BadSampleError, match='holds values \\[9\\]'):
        train[1]


def test_add_data_checks_wraps_every_dataloader_and_reads_the_setting():
    dataset = dict(type='DRNDemoDataset', data_root='d')
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(type='RepeatDataset', times=2, dataset=dataset)
            ),
            val_dataloader=dict(dataset=dataset),
            test_dataloader=dict(
                dataset=dict(type='CheckedDataset', dataset=dataset, check_labels=False)
            ),
            data_checks=dict(skip_unreadable=True),
        )
    )
    assert add_data_checks(cfg)
    wrapped = cfg.train_dataloader.dataset.dataset
    assert wrapped.type == 'CheckedDataset' and wrapped.skip_unreadable
    assert wrapped.dataset.type == 'DRNDemoDataset'
    assert cfg.val_dataloader.dataset.type == 'CheckedDataset'
    assert cfg.test_dataloader.dataset.check_labels is False  # the config's own
    assert not add_data_checks(Config(dict(data_checks=dict(enabled=False))))
    with pytest.raises(ValueError, match="unknown keys \\['skip'\\]; allowed"):
        add_data_checks(Config(dict(data_checks=dict(skip=True))))
