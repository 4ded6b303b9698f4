"""mmdrn.benchmark.agreement on the demo config (two generated scenes)."""

from pathlib import Path

import pytest
import torch

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)
from mmdrn.benchmark import agreement

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'


@pytest.fixture
def demo(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'data')
    cfg.test_dataloader.dataset.generate = dict(num_train=1, num_val=2)
    config = tmp_path / 'demo.py'
    cfg.dump(str(config))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return config, checkpoint


def test_agreement_of_the_fp32_fast_path(demo):
    config, checkpoint = demo
    result = agreement(str(config), str(checkpoint), dtype='fp32')
    assert result['images'] == 2 and result['pixels'] == 2 * 64 * 64
    assert result['folded'] == 30 and result['dtype'] == 'float32'
    # BN folding changes float32 results by rounding only
    assert result['agree'] >= 0.999
    assert result == agreement(str(config), str(checkpoint), dtype='fp32', limit=2)
    assert agreement(str(config), str(checkpoint), dtype='fp32', limit=1)['images'] == 1


def test_agreement_needs_an_mmseg_config(tmp_path):
    config = tmp_path / 'cls.py'
    config.write_text(
        f"_base_ = '{REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k.py'}'\n"
    )
    with pytest.raises(
        ValueError, match="needs an MMSeg config, got scope 'mmpretrain'"
    ):
        agreement(str(config), 'unused.pth')
