"""The drn:// checkpoint scheme, against a local HTTP server."""

import os

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from mmseg.registry import MODELS as SEG_MODELS
from weights_server import (
    X,
    assert_close,
    point_hub_at,
    publish_fyu_d22,
    publish_osmr_d22,
    serve,
)

import mmdrn  # noqa: F401  (registers drn:// and the backbones)
from mmdrn import hub
from mmdrn.backbones.drn import DRN
from mmdrn.openmmlab.pretrained import load_from_drn, register_drn_scheme


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('published'))
    return {'osmr': publish_osmr_d22(root), 'fyu': publish_fyu_d22(root), 'root': root}


@pytest.fixture
def server(files, monkeypatch):
    point_hub_at(monkeypatch, {k: v for k, v in files.items() if k != 'root'})
    with serve(files['root']) as srv:
        monkeypatch.setenv(hub.MIRROR_ENV, srv.url)
        yield srv


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    return tmp_path / 'hub' / 'checkpoints'


def test_scheme_is_registered_once_and_idempotently():
    register_drn_scheme()
    register_drn_scheme()
    assert CheckpointLoader._get_checkpoint_loader('drn://drn_c_26') is load_from_drn


def test_checkpoint_loader_gives_fyu_keys_of_the_source_network(server, cache, files):
    osmr = files['osmr']
    state = CheckpointLoader.load_checkpoint('drn://drn_d_22', map_location='cpu')
    model = DRN('D', 22).eval()
    assert set(state) == set(model.state_dict())  # pytorchcv keeps BN's counter
    load_checkpoint(model, 'drn://drn_d_22.osmr_in1k', strict=True)
    with torch.no_grad():
        assert_close(model(X), osmr.logits)
    # downloaded once: the second load read the cache
    assert server.requests == ['/' + os.path.basename(osmr.path)]
    assert os.listdir(cache) == [osmr.source.file_name]


@pytest.mark.parametrize(
    'name, key', [('drn_d_22', 'osmr'), ('drn_d_22.fyu_in1k', 'fyu')]
)
def test_mmseg_backbone_init_cfg(server, cache, files, name, key):
    published = files[key]
    backbone = SEG_MODELS.build(
        dict(
            type='DRN_D',
            depth=22,
            out_indices=(7,),
            init_cfg=dict(type='Pretrained', checkpoint=f'drn://{name}'),
        )
    )
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        (features,) = backbone(X)
    assert_close(features, published.features)
    assert server.requests == ['/' + os.path.basename(published.path)]


def test_failures_name_every_url(cache, monkeypatch, tmp_path):
    with serve(str(tmp_path)) as empty:
        monkeypatch.setenv(hub.MIRROR_ENV, empty.url)
        with pytest.raises(hub.DownloadError, match='HTTP 404') as info:
            CheckpointLoader.load_checkpoint('drn://drn_c_26.fyu_in1k')
    assert f'{empty.url}/drn_c_26-ddedf421.pth: HTTP 404' in str(info.value)
    assert str(cache / 'drn_c_26-ddedf421.pth') in str(info.value)
