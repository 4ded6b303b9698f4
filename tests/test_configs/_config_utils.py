"""Shared pieces of the config tests: the config list and scope handling."""

import copy
import functools
from pathlib import Path
from typing import Any, Iterator, List, Optional

import mmengine.config.utils
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs'
# ImageNet bounding-box XML fixture (owned by the CAM tests); the ImageNet
# fixture's val images match it.
IMAGENET_LOC_ANNS = REPO / 'tests' / 'data' / 'imagenet_loc'
# Every runnable config: everything under configs/ except the _base_ pieces.
CONFIGS: List[Path] = sorted(
    p
    for p in CONFIG_DIR.rglob('*.py')
    if '_base_' not in p.relative_to(CONFIG_DIR).parts
)
# The datasets with a fixture in conftest.py, by dataset type.
FIXTURE_DATASETS = {
    'CityscapesDataset': 'cityscapes',
    'PascalVOCDataset': 'voc',
    'ImageNet': 'imagenet',
}
# The smallest depth of each arch, for the training runs.
SMALL_DEPTH = {'DRN_A': 18, 'DRN_B': 26, 'DRN_C': 26, 'DRN_D': 22}
# Final-map channels of those small models.
SMALL_CHANNELS = {'DRN_A': 512, 'DRN_B': 512, 'DRN_C': 512, 'DRN_D': 512}


def config_id(path: Path) -> str:
    """Test id: the config's path below configs/."""
    return str(path.relative_to(CONFIG_DIR))


def _memoize_metainfo() -> None:
    """Resolve each ``mmseg::``/``mmpretrain::`` config path only once.

    mmengine looks an external path up by reading every metafile of the
    package (about 100 YAML files, 0.5 s) each time, and fails with
    ``ValueError`` for base configs, which have no metafile entry; the
    answer only depends on the arguments, so it is cached (errors included).
    Test-speed only: the resolved files are the same.
    """
    original = mmengine.config.utils._get_cfg_metainfo
    if getattr(original, 'memoized', False):
        return
    answers = {}

    def memoized(package_path: str, cfg_path: str) -> dict:
        key = (package_path, cfg_path)
        if key not in answers:
            try:
                answers[key] = (original(package_path, cfg_path), None)
            except ValueError as err:
                answers[key] = (None, err)
        value, err = answers[key]
        if err is not None:
            raise err
        return copy.deepcopy(value)

    memoized.memoized = True
    mmengine.config.utils._get_cfg_metainfo = memoized


_memoize_metainfo()


@functools.cache
def _load_once(path: Path) -> Config:
    # each config is parsed once per session
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    """Load a config file (a private copy, free to modify)."""
    return copy.deepcopy(_load_once(path))


def use_scope(cfg: Config) -> str:
    """Register the config's codebase and make it the default scope."""
    from mmengine.registry import init_default_scope

    scope = cfg.get('default_scope')
    if scope == 'mmseg':
        from mmseg.utils import register_all_modules
    elif scope == 'mmpretrain':
        from mmpretrain.utils import register_all_modules
    else:
        raise AssertionError(f'unexpected default_scope {scope!r}')
    register_all_modules(init_default_scope=False)
    init_default_scope(scope)
    return scope


def build_model(cfg: Config) -> Any:
    """Build ``cfg.model`` with the config's scope."""
    use_scope(cfg)
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg.model))


def leaf_datasets(dataset_cfg: dict) -> Iterator[dict]:
    """The dataset configs inside a (possibly concatenated) dataset config."""
    if dataset_cfg.get('type') == 'ConcatDataset':
        for sub in dataset_cfg['datasets']:
            yield from leaf_datasets(sub)
    else:
        yield dataset_cfg


def fixture_kind(cfg: Config) -> Optional[str]:
    """Which fixture a config's datasets need, or None for other datasets."""
    kinds = {
        FIXTURE_DATASETS.get(d.get('type'))
        for loader in ('train_dataloader', 'val_dataloader')
        if cfg.get(loader) is not None
        for d in leaf_datasets(cfg[loader]['dataset'])
    }
    if len(kinds) != 1:
        raise AssertionError(f'datasets from several fixtures or none: {kinds}')
    return kinds.pop()


def walk_dicts(node: Any) -> Iterator[dict]:
    """Every dict inside a config subtree, the node itself included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from walk_dicts(value)
