"""The drn:// checkpoint scheme, against a local HTTP server."""

import os

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from mmseg.registry import MODELS as SEG_MODELS
from weights_server import (
    X,
    assert_close,
    serve,
)

import mmdrn  # noqa: F401  (registers drn:// and the backbones)
from mmdrn import hub
from mmdrn.backbones.drn import DRN
from mmdrn.openmmlab.pretrained import load_from_drn, register_drn_scheme


def test_scheme_is_registered_once_and_idempotently():
    register_drn_scheme()
    register_drn_scheme()
    assert CheckpointLoader._get_checkpoint_loader('drn://drn_c_26') is load_from_drn


def test_checkpoint_loader_gives_fyu_keys_of_the_source_network(
    weights_http, hub_cache, published_weights
):
    osmr = published_weights['osmr']
    state = CheckpointLoader.load_checkpoint('drn://drn_d_22', map_location='cpu')
    model = DRN('D', 22).eval()
    assert set(state) == set(model.state_dict())  # pytorchcv keeps BN's counter
    load_checkpoint(model, 'drn://drn_d_22.osmr_in1k', strict=True)
    with torch.no_grad():
        assert_close(model(X), osmr.logits)
    # downloaded once: the second load read the cache
    assert weights_http.requests == ['/' + os.path.basename(osmr.path)]
    assert os.listdir(hub_cache) == [osmr.source.file_name]


@pytest.mark.parametrize(
    'name, key', [('drn_d_22', 'osmr'), ('drn_d_22.fyu_in1k', 'fyu')]
)
def test_mmseg_backbone_init_cfg(weights_http, hub_cache, published_weights, name, key):
    published = published_weights[key]
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
    assert weights_http.requests == ['/' + os.path.basename(published.path)]


def test_failures_name_every_url(hub_cache, monkeypatch, tmp_path):
    with serve(str(tmp_path)) as empty:
        monkeypatch.setenv(hub.MIRROR_ENV, empty.url)
        with pytest.raises(hub.DownloadError, match='HTTP 404') as info:
            CheckpointLoader.load_checkpoint('drn://drn_c_26.fyu_in1k')
    assert f'{empty.url}/drn_c_26-ddedf421.pth: HTTP 404' in str(info.value)
    assert str(hub_cache / 'drn_c_26-ddedf421.pth') in str(info.value)
