"""``tools/test.py --tta`` runs a segmentation config's multi-scale test.

The config's own ``tta_pipeline`` and ``tta_model`` on the tiny Cityscapes
fixture, in a separate process as a user runs it: the DRN config (fyu/drn's
``--ms`` scales, no flip) and a DeepLabv3 config (MMSeg's scales with
left-right flips, the DeepLabv3 paper's protocol). The prediction the tool
writes is checked against the views' softmax probabilities averaged here.
"""

import numpy as np
import pytest
import torch
from _config_utils import CONFIG_DIR, build_model, leaf_datasets, load, use_scope
from PIL import Image
from tool_runner import check, run_tool

import mmdrn  # noqa: F401  (registers the DRN components)

# config -> number of views per image (scales x flips)
CASES = {
    'drn/fcn_drn-d-22-d8_8xb2-46k_cityscapes-896x896.py': 6,
    'deeplabv3/deeplabv3_drn-d-54-d16_8xb2-90k_cityscapes-769x769.py': 12,
}


def _tiny(name: str, fixtures):
    cfg = load(CONFIG_DIR / name)
    cfg.model.backbone.depth = 22
    cfg.model.backbone.init_cfg = None
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        for leaf in leaf_datasets(cfg[loader].dataset):
            leaf.data_root = str(fixtures.cityscapes)
    return cfg


@pytest.mark.parametrize('name', sorted(CASES))
def test_tta_runs_the_configs_views_and_averages_them(name, fixtures, tmp_path):
    from mmseg.registry import DATASETS

    cfg = _tiny(name, fixtures)
    config = tmp_path / 'config.py'
    cfg.dump(str(config))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)

    out_dir = tmp_path / 'preds'
    log = check(
        run_tool(
            'test.py',
            [str(config), str(ckpt), '--tta', '--cpu', '--out', str(out_dir)]
            + ['--work-dir', str(tmp_path / 'work')],
            cwd=str(tmp_path),
        )
    )
    assert 'mIoU' in log
    [png] = sorted(out_dir.glob('*.png'))
    predicted = np.asarray(Image.open(png))

    # The same views, built from the config's tta_pipeline here, and their
    # probabilities averaged (SegTTAModel's rule) independently of the tool.
    use_scope(cfg)
    dataset_cfg = dict(cfg.test_dataloader.dataset, pipeline=cfg.tta_pipeline)
    sample = DATASETS.build(dataset_cfg)[0]
    views = list(zip(sample['inputs'], sample['data_samples']))
    assert len(views) == CASES[name]
    flips = {bool(ds.metainfo.get('flip')) for _, ds in views}
    assert flips == ({False, True} if CASES[name] == 12 else {False})
    probs = 0
    with torch.no_grad():
        for inputs, data_sample in views:
            data = model.data_preprocessor(
                dict(inputs=[inputs], data_samples=[data_sample]), False
            )
            [result] = model.predict(data['inputs'], data['data_samples'])
            probs = probs + result.seg_logits.data.softmax(dim=0)
    expected = (probs / len(views)).argmax(dim=0).numpy()
    assert predicted.shape == expected.shape == (32, 64)
    np.testing.assert_array_equal(predicted, expected)
