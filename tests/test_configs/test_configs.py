"""Every config in configs/ loads, builds its model and its datasets.

The models are built from the configs as they are (a full DRN-D-105 included)
and run once, in eval mode, on one 32x32 image; the datasets are built
against the tiny fixtures of ``conftest.py`` (same directory layout as the
real datasets) and return one sample each.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from _config_utils import (
    CONFIG_DIR,
    CONFIGS,
    build_model,
    config_id,
    fixture_kind,
    leaf_datasets,
    load,
    use_scope,
    walk_dicts,
)

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)

LOADERS = (
    ('train_dataloader', 'train'),
    ('val_dataloader', 'val'),
    ('test_dataloader', 'val'),
)


def test_config_list_covers_every_family():
    # The glob must find the configs of every method folder.
    folders = {p.relative_to(CONFIG_DIR).parts[0] for p in CONFIGS}
    assert {'drn', 'context_module', 'deeplabv3', 'drn_cls', 'cam', 'demo'} <= folders
    assert len(CONFIGS) >= 29


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_loads_with_its_scope(path: Path):
    cfg = load(path)
    assert cfg.default_scope in ('mmseg', 'mmpretrain')
    imports = cfg.get('custom_imports', {}).get('imports', [])
    assert 'mmdrn.openmmlab' in imports, (
        'configs must import mmdrn.openmmlab (registration)'
    )
    assert cfg.model.backbone.type in ('DRN_A', 'DRN_B', 'DRN_C', 'DRN_D')
    if cfg.default_scope == 'mmseg' and path.relative_to(CONFIG_DIR).parts[0] != 'demo':
        # multi-GPU configs synchronise BN across GPUs (CPU runs revert it)
        norms = {
            d['norm_cfg']['type'] for d in walk_dicts(cfg.model) if d.get('norm_cfg')
        }
        assert norms == {'SyncBN'}


def _listed_parameters() -> dict:
    import yaml

    return {
        CONFIG_DIR.parent / model['Config']: model['Metadata']['Parameters']
        for metafile in CONFIG_DIR.glob('*/metafile.yaml')
        for model in yaml.safe_load(metafile.read_text())['Models']
    }


PARAMETERS = _listed_parameters()


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_model_and_runs_it(path: Path):
    cfg = load(path)
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32), mode='tensor')
    if cfg.default_scope == 'mmseg':
        # scores at the backbone's output stride, one channel per class
        stride = cfg.model.backbone.get('output_stride', 8)
        num_classes = cfg.model.decode_head.num_classes
        assert out.shape == (1, num_classes, 32 // stride, 32 // stride)
    else:
        assert out.shape == (1, cfg.model.head.num_classes)
    assert torch.isfinite(out).all()
    # the metafile's Parameters are this model's
    assert PARAMETERS[path] == sum(p.numel() for p in model.parameters())


def test_test_d8_configs_only_change_stride_and_rates():
    # The train-at-16 / test-at-8 pairs share every weight: only the
    # backbone's output stride (with train_output_stride=16, so the trained
    # function is sampled densely) and the ASPP rates (doubled) differ.
    pairs = [p for p in CONFIGS if '-d16-test-d8_' in p.name]
    assert len(pairs) == 4
    for test_path in pairs:
        train_path = test_path.with_name(test_path.name.replace('-test-d8', ''))
        train, test = load(train_path), load(test_path)
        assert train.model.backbone.output_stride == 16
        assert 'train_output_stride' not in train.model.backbone
        assert test.model.backbone.output_stride == 8
        assert test.model.backbone.train_output_stride == 16
        rates = train.model.neck.dilations
        assert tuple(test.model.neck.dilations) == tuple(
            1 if r == 1 else 2 * r for r in rates
        )
        for cfg in (train, test):
            del cfg.model.backbone['output_stride'], cfg.model.neck['dilations']
            cfg.model.backbone.pop('train_output_stride', None)
        assert train.model == test.model
        assert train.train_dataloader == test.train_dataloader
        assert train.test_dataloader == test.test_dataloader
        small_train, small_test = load(train_path), load(test_path)
        for cfg in (small_train, small_test):
            cfg.model.backbone.depth = 22
        a = build_model(small_train).state_dict()
        b = build_model(small_test).state_dict()
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def _dataset_key(path: Path) -> str:
    cfg = load(path)
    return repr([cfg[loader]['dataset'] for loader, _ in LOADERS])


FIXTURE_CONFIGS = [p for p in CONFIGS if fixture_kind(load(p)) is not None]
# Configs whose loaders are identical (e.g. the -test-d8 twins) are checked
# once: one representative per distinct set of dataset configs.
_BY_DATASETS = {}
for _path in FIXTURE_CONFIGS:
    _BY_DATASETS.setdefault(_dataset_key(_path), _path)
DATASET_CONFIGS = sorted(_BY_DATASETS.values())


def test_every_paper_config_has_a_fixture():
    # Only the embedded demo brings its own data; all others read a real
    # dataset that has a fixture here.
    others = [p for p in CONFIGS if p not in FIXTURE_CONFIGS]
    assert all(p.relative_to(CONFIG_DIR).parts[0] == 'demo' for p in others), others


def _build_dataset(cfg, loader: str, kind: str, fixtures):
    dataset_cfg = copy.deepcopy(cfg[loader]['dataset'])
    root = getattr(fixtures, kind)
    for leaf in leaf_datasets(dataset_cfg):
        leaf['data_root'] = str(
            root / 'VOCdevkit' / 'VOC2012' if kind == 'voc' else root
        )
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import DATASETS
    else:
        from mmpretrain.registry import DATASETS
    return DATASETS.build(dataset_cfg)


@pytest.mark.parametrize('path', DATASET_CONFIGS, ids=config_id)
def test_config_builds_datasets_on_real_layout(path: Path, fixtures):
    cfg = load(path)
    use_scope(cfg)
    kind = fixture_kind(cfg)
    for loader, split in LOADERS:
        dataset = _build_dataset(cfg, loader, kind, fixtures)
        assert len(dataset) == fixtures.counts[f'{kind}/{split}'], loader
        sample = dataset[0]
        inputs = sample['inputs']
        assert inputs.dtype == torch.uint8 and inputs.shape[0] == 3
        data_sample = sample['data_samples']
        if cfg.default_scope == 'mmseg':
            labels = data_sample.gt_sem_seg.data
            if split == 'train':  # cropped together with the image
                assert labels.shape[-2:] == inputs.shape[-2:]
                crop = cfg.model.data_preprocessor.size
                assert inputs.shape[1] <= crop[0] and inputs.shape[2] <= crop[1]
            else:  # evaluation compares with the label at its original size
                assert tuple(labels.shape[-2:]) == data_sample.ori_shape
            num_classes = cfg.model.decode_head.num_classes
            values = set(np.unique(labels.numpy()).tolist())
            assert values <= set(range(num_classes)) | {255}, values
            assert values - {255}, 'the sample holds no labelled pixel'
        else:
            assert tuple(inputs.shape[1:]) == (224, 224)
            # the first line of meta/train.txt and meta/val.txt
            assert int(data_sample.gt_label) == {'train': 0, 'val': 1}[split]


def _metafiles():
    import yaml

    return {
        path: yaml.safe_load(path.read_text())
        for path in sorted(CONFIG_DIR.glob('*/metafile.yaml'))
    }


# Metric names of OpenMMLab's model index (what `mim search` reads).
METRICS = {'Top 1 Accuracy', 'Top 5 Accuracy', 'mIoU'}


def test_metafiles_list_every_config_once_in_the_model_index_fields():
    listed = []
    for metafile, meta in _metafiles().items():
        assert set(meta) == {'Collections', 'Models'}, metafile
        collections = {c['Name']: c for c in meta['Collections']}
        for collection in collections.values():
            assert {'Name', 'Metadata', 'Paper', 'README'} <= set(collection)
            assert (CONFIG_DIR.parent / collection['README']).is_file()
            assert set(collection['Paper']) == {'Title', 'URL'}
        for model in meta['Models']:
            assert set(model) <= {
                'Name',
                'In Collection',
                'Config',
                'Metadata',
                'Results',
                'Weights',
            }, model['Name']
            path = CONFIG_DIR.parent / model['Config']
            assert path.is_file(), model['Config']
            assert path.parent == metafile.parent, model['Config']
            assert model['Name'] == path.stem
            assert model['In Collection'] in collections
            params = model['Metadata']['Parameters']
            assert isinstance(params, int) and params > 0, model['Name']
            assert all('(' not in key for key in model['Metadata']), model['Name']
            for result in model.get('Results', []):
                assert set(result) == {'Task', 'Dataset', 'Metrics'}
                assert set(result['Metrics']) <= METRICS, result['Metrics']
                for value in result['Metrics'].values():
                    assert 0 < value < 100
            listed.append(path)
    assert len(listed) == len(set(listed))
    assert set(listed) == set(CONFIGS)


# osmr/imgclsmob release assets that pytorchcv 0.0.74 downloads:
# (file name stem, release); the stem ends with the first 8 hex digits of
# the SHA-1 of the unpacked .pth.
OSMR_FILES = {
    'drn_c_26': ('drnc26-0723-e7306483', 'v0.0.508'),
    'drn_c_42': ('drnc42-0628-8817241f', 'v0.0.556'),
    'drn_c_58': ('drnc58-0527-3f74be98', 'v0.0.559'),
    'drn_d_22': ('drnd22-0758-02cb44bd', 'v0.0.498'),
    'drn_d_38': ('drnd38-0643-496f648b', 'v0.0.552'),
    'drn_d_54': ('drnd54-0517-caa3c85d', 'v0.0.554'),
    'drn_d_105': ('drnd105-0501-8dc6aa76', 'v0.0.564'),
}


def test_imagenet_metafile_weights_name_each_models_source():
    meta = _metafiles()[CONFIG_DIR / 'drn_cls' / 'metafile.yaml']
    for model in meta['Models']:
        backbone = load(CONFIG_DIR.parent / model['Config']).model.backbone
        arch = f'{backbone.type.lower()}_{backbone.depth}'
        if arch == 'drn_a_50':
            expected = 'https://download.pytorch.org/models/resnet50-19c8e357.pth'
        else:
            stem, release = OSMR_FILES[arch]
            expected = (
                'https://github.com/osmr/imgclsmob/releases/download/'
                f'{release}/{stem}.pth.zip'
            )
        assert model['Weights'] == expected, model['Name']


def test_every_config_folder_has_a_readme_with_paper_tag_and_bibtex():
    folders = {p.parent for p in CONFIGS}
    for folder in folders:
        text = (folder / 'README.md').read_text()
        assert '<!-- [ALGORITHM] -->' in text or '<!-- [BACKBONE] -->' in text, folder
        assert '```bibtex' in text and '@' in text, folder
        assert 'arxiv.org/abs/' in text, folder
        # the results table says for every config whether it was reproduced
        for path in folder.glob('*.py'):
            if '-10crop' not in path.name:
                assert path.name in text, path


PRETRAINED_CONFIGS = [
    p for p in CONFIGS if load(p).model.backbone.get('init_cfg') is not None
]
# Configs that start from a trained front-end instead (load_from).
TWO_STAGE_CONFIGS = [p for p in CONFIGS if load(p).get('load_from')]


def test_segmentation_configs_start_from_imagenet_weights_or_their_front_end():
    # Every MMSeg paper config (not the demo) fine-tunes ImageNet weights
    # through the drn:// scheme of its own arch and depth (DRN-A-50:
    # torchvision's ResNet-50), or, for the second stage of the
    # context-module recipe, loads the checkpoint that a front-end config of
    # this repository writes.
    seg = {
        p
        for p in CONFIGS
        if load(p).default_scope == 'mmseg'
        and p.relative_to(CONFIG_DIR).parts[0] != 'demo'
    }
    assert seg <= set(PRETRAINED_CONFIGS) | set(TWO_STAGE_CONFIGS)
    assert not set(PRETRAINED_CONFIGS) & set(TWO_STAGE_CONFIGS)
    for path in PRETRAINED_CONFIGS:
        backbone = load(path).model.backbone
        init = backbone.init_cfg
        assert init.type == 'Pretrained'
        if backbone.type == 'DRN_A':
            assert init.checkpoint == f'torchvision://resnet{backbone.depth}', path
        else:
            name = f'{backbone.type.lower()}_{backbone.depth}'
            assert init.checkpoint == f'drn://{name}', path
    assert len(TWO_STAGE_CONFIGS) == 3
    for path in TWO_STAGE_CONFIGS:
        cfg = load(path)
        work_dir, ckpt = Path(cfg.load_from).parts[-2:]
        front_end = next(p for p in CONFIGS if p.stem == work_dir)
        front = load(front_end)
        # the front-end's backbone is this config's, trained on the same data
        for key in ('type', 'depth', 'output_stride'):
            assert front.model.backbone[key] == cfg.model.backbone[key]
        assert front.train_dataloader.dataset == cfg.train_dataloader.dataset
        assert front.model.decode_head.num_classes == cfg.model.decode_head.num_classes
        # the checkpoint of the front-end's last iteration
        assert ckpt == f'iter_{front.train_cfg.max_iters}.pth'


def test_pretrained_init_cfg_loads_an_official_layout_checkpoint(tmp_path):
    # The init_cfg format of the configs works with the backbone: a checkpoint
    # in fyu/drn's layout (classifier included) ends up in the backbone.
    import timm

    reference = timm.create_model('drn_c_26', num_classes=1000)
    ckpt = tmp_path / 'drn_c_26-ddedf421.pth'
    torch.save(reference.state_dict(), ckpt)
    cfg = load(CONFIG_DIR / 'drn' / 'fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py')
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    model = build_model(cfg)
    model.init_weights()
    loaded = model.backbone.state_dict()
    expected = reference.state_dict()
    assert loaded.keys() == {k for k in expected if not k.startswith('fc.')}
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key
