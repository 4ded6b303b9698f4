"""The tiny datasets of the config tests (fake_datasets.py), once per session."""

import numpy as np
import pytest
from fake_datasets import (
    CITY_SPLITS,
    IMAGENET_TRAIN,
    IMAGENET_VAL,
    VOC_AUG,
    VOC_TRAIN,
    VOC_VAL,
    Fixtures,
    make_cityscapes,
    make_imagenet,
    make_voc,
)


@pytest.fixture(scope='session')
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """Generate the three tiny datasets once per session."""
    base = tmp_path_factory.mktemp('config_data')
    rng = np.random.default_rng(0)
    make_cityscapes(base / 'cityscapes', rng)
    make_voc(base / 'voc', rng)
    make_imagenet(base / 'imagenet', rng)
    counts = {
        'cityscapes/train': len(CITY_SPLITS['train']),
        'cityscapes/val': len(CITY_SPLITS['val']),
        'voc/train': len(VOC_TRAIN) + len(VOC_AUG),
        'voc/val': len(VOC_VAL),
        'imagenet/train': 2 * len(IMAGENET_TRAIN),
        'imagenet/val': len(IMAGENET_VAL),
    }
    return Fixtures(base / 'cityscapes', base / 'voc', base / 'imagenet', counts)


@pytest.fixture(autouse=True)
def _load_mmengine_checkpoints(mmengine_checkpoints):
    """The config runs save mmengine training checkpoints that tests read."""
    yield
