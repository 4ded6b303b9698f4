import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from mmdrn.datasets import CLASSES, PALETTE
from mmdrn.openmmlab.datasets import DRNDemoDataset

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


def _build(root, split='train', **kwargs):
    init_default_scope('mmseg')
    return DATASETS.build(
        dict(
            type='DRNDemoDataset',
            data_root=str(root),
            data_prefix=dict(
                img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'
            ),
            pipeline=PIPELINE,
            **kwargs,
        )
    )


def test_generates_on_first_use_and_loads_samples(tmp_path):
    root = tmp_path / 'demo'
    generate = dict(num_train=3, num_val=2, size=(32, 40))
    train = _build(root, 'train', generate=generate)
    val = _build(root, 'val', generate=generate)
    assert isinstance(train, DRNDemoDataset)
    assert (len(train), len(val)) == (3, 2)
    assert train.metainfo['classes'] == CLASSES
    assert [tuple(c) for c in train.metainfo['palette']] == list(PALETTE)
    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 40)
    seg = sample['data_samples'].gt_sem_seg.data.numpy()
    assert seg.shape == (1, 32, 40)
    # Labels are class indices as stored: no zero-label reduction, no 255.
    assert 0 <= seg.min() and seg.max() < len(CLASSES)
    assert np.isin(CLASSES.index('sky'), seg)


def test_without_generate_needs_existing_data(tmp_path):
    with pytest.raises(FileNotFoundError):
        _build(tmp_path / 'missing')


def test_generate_needs_data_root():
    with pytest.raises(ValueError, match='generate=True needs a data_root'):
        DRNDemoDataset(generate=True, pipeline=PIPELINE)
