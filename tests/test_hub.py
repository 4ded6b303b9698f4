"""mmdrn.hub and timm's pretrained=True, against a local HTTP server."""

import logging
import os
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest
import timm
import torch
from weights_server import (
    X,
    assert_close,
    closed_port_url,
)

import mmdrn  # noqa: F401  (registers the drn_* models)
from mmdrn import hub
from mmdrn.backbones.drn import DRN
from mmdrn.backbones.drn_weights import match_state_dict
from mmdrn.utils import CheckpointError

REPO = Path(__file__).resolve().parents[1]


def test_table_matches_the_published_names():
    osmr = hub.WEIGHTS['drn_c_26.osmr_in1k']
    assert osmr.url == (
        'https://github.com/osmr/imgclsmob/releases/download/v0.0.508/'
        'drnc26-0723-e7306483.pth.zip'
    )
    assert osmr.file_name == 'drnc26-0723-e7306483.pth'
    assert osmr.hash == 'e7306483781db61f71302eda6769d7d9fd126bf6'
    assert (osmr.top1_err, osmr.top5_err) == (24.61, 7.23)
    fyu = hub.WEIGHTS['drn_d_105.fyu_in1k']
    assert fyu.url == 'http://dl.yf.io/drn/drn_d_105-12b40979.pth'
    assert (fyu.hash, fyu.hash_name) == ('12b40979', 'sha256')
    assert [s.name for s in hub.sources('drn://drn_d_22')] == [
        'drn_d_22.osmr_in1k',
        'drn_d_22.fyu_in1k',
    ]
    assert [s.tag for s in hub.sources('drn_a_50')] == ['tv_in1k']


def test_unknown_names_and_bad_mirrors_are_refused():
    with pytest.raises(ValueError, match=r"named 'drn_b_26'.*drn_c_26.osmr_in1k"):
        hub.sources('drn_b_26')
    with pytest.raises(ValueError, match="named 'drn_c_26.imagenet'"):
        hub.sources('drn_c_26.imagenet')
    with pytest.raises(ValueError, match=r"file:// base URLs, got \['ftp://x'\]"):
        hub.fetch('drn_c_26', mirrors='ftp://x')


def test_timm_pretrained_downloads_unzips_verifies_converts(
    weights_http, hub_cache, published_weights
):
    osmr = published_weights['osmr']
    model = timm.create_model('drn_d_22', pretrained=True).eval()
    assert model.pretrained_cfg['tag'] == 'osmr_in1k'
    assert model.pretrained_cfg['file'] == str(hub_cache / osmr.source.file_name)
    with torch.no_grad():
        assert_close(model(X), osmr.logits)
    assert weights_http.requests == ['/' + os.path.basename(osmr.path)]
    # the unpacked, verified .pth only: no zip, no partial file
    assert os.listdir(hub_cache) == [osmr.source.file_name]

    again = timm.create_model('drn_d_22.osmr_in1k', pretrained=True).eval()
    assert len(weights_http.requests) == 1  # read from the cache
    with torch.no_grad():
        assert_close(again(X), osmr.logits)


def test_fyu_tag_and_features_only(weights_http, hub_cache, published_weights):
    fyu = published_weights['fyu']
    model = timm.create_model('drn_d_22.fyu_in1k', pretrained=True).eval()
    with torch.no_grad():
        assert_close(model(X), fyu.logits)
    features = timm.create_model(
        'drn_d_22.fyu_in1k', pretrained=True, features_only=True, out_indices=(-1,)
    ).eval()
    with torch.no_grad():
        assert_close(features(X)[0], fyu.features)
    assert weights_http.requests == ['/' + fyu.source.file_name]


def test_404_on_the_default_falls_through_to_the_next_source(
    weights_http, hub_cache, published_weights, monkeypatch, caplog
):
    osmr, fyu = published_weights['osmr'], published_weights['fyu']
    missing = osmr.source._replace(url=osmr.source.url.replace('.pth.zip', 'x.pth.zip'))
    monkeypatch.setitem(hub.WEIGHTS, missing.name, missing)
    with caplog.at_level(logging.WARNING, logger='mmdrn.hub'):
        model = timm.create_model('drn_d_22', pretrained=True).eval()
    assert weights_http.requests == [
        '/' + missing.url.rsplit('/', 1)[-1],
        '/' + fyu.source.file_name,
    ]
    assert 'HTTP 404' in caplog.text
    assert 'using drn_d_22.fyu_in1k' in caplog.text
    assert model.pretrained_cfg['tag'] == 'fyu_in1k'
    with torch.no_grad():
        assert_close(model(X), fyu.logits)


def test_mirrors_are_tried_in_order(weights_http, hub_cache, published_weights):
    path, source = hub.fetch(
        'drn_d_22.fyu_in1k', mirrors=[weights_http.url + '/elsewhere', weights_http.url]
    )
    assert source.tag == 'fyu_in1k' and path == str(hub_cache / source.file_name)
    assert weights_http.requests == [
        '/elsewhere/' + source.file_name,
        '/' + source.file_name,
    ]


def test_wrong_hash_is_refused_and_the_download_deleted(
    weights_http, hub_cache, published_weights, monkeypatch
):
    osmr = published_weights['osmr']
    actual = osmr.source.hash
    wrong = osmr.source._replace(hash='0' * 40)
    monkeypatch.setitem(hub.WEIGHTS, wrong.name, wrong)
    with pytest.raises(hub.DownloadError) as info:
        hub.fetch('drn_d_22.osmr_in1k', progress=False)
    message = str(info.value)
    assert f'SHA-1 mismatch: expected {"0" * 40}, got {actual}' in message
    assert 'the download was deleted' in message
    assert os.listdir(hub_cache) == []


def test_wrong_sha256_prefix_is_refused_by_torch_hub(
    weights_http, hub_cache, published_weights, monkeypatch
):
    fyu = published_weights['fyu'].source
    wrong = fyu._replace(hash='00000000')
    monkeypatch.setitem(hub.WEIGHTS, wrong.name, wrong)
    with pytest.raises(hub.DownloadError) as info:
        hub.fetch(wrong.name, progress=False)
    message = str(info.value)
    # torch.hub.download_url_to_file(hash_prefix=...) checked and deleted it
    assert f'invalid hash value (expected "00000000", got "{fyu.hash}' in message
    assert 'the download was deleted' in message
    assert weights_http.requests == ['/' + fyu.file_name]
    assert os.listdir(hub_cache) == []


def test_every_source_failing_gives_one_error_listing_them(
    weights_http, hub_cache, published_weights
):
    dead = closed_port_url()
    with pytest.raises(hub.DownloadError) as info:
        hub.fetch(
            'drn_d_22', mirrors=f'{weights_http.url}/none, {dead}', progress=False
        )
    lines = str(info.value).splitlines()
    osmr_name = published_weights['osmr'].source.url.rsplit('/', 1)[-1]
    fyu_name = published_weights['fyu'].source.file_name
    assert lines[0] == "could not download the weights 'drn_d_22'; every source failed:"
    assert lines[1] == f'  {weights_http.url}/none/{osmr_name}: HTTP 404 File not found'
    assert lines[2].startswith(f'  {dead}/{osmr_name}: cannot connect (')
    assert lines[3] == f'  {weights_http.url}/none/{fyu_name}: HTTP 404 File not found'
    assert lines[4].startswith(f'  {dead}/{fyu_name}: cannot connect (')
    assert lines[5] == 'A copy downloaded by hand is verified and used from:'
    assert lines[6] == (
        f'  {hub_cache / published_weights["osmr"].source.file_name}  '
        '(drn_d_22.osmr_in1k, the .pth inside the .zip)'
    )
    assert lines[7] == f'  {hub_cache / fyu_name}  (drn_d_22.fyu_in1k)'
    assert os.listdir(hub_cache) == []


def test_a_server_that_never_answers_times_out_and_the_next_url_is_tried(
    weights_http, hub_cache, published_weights
):
    # a listening socket that accepts connections and never sends a byte
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        stalled = f'http://127.0.0.1:{silent.getsockname()[1]}'
        before = socket.getdefaulttimeout()
        path, source = hub.fetch(
            'drn_d_22.fyu_in1k',
            mirrors=[stalled, weights_http.url],
            progress=False,
            timeout=0.5,
        )
    assert source.tag == 'fyu_in1k' and os.path.isfile(path)
    assert socket.getdefaulttimeout() == before
    os.remove(path)
    with socket.socket() as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(hub.DownloadError, match=r'no answer within 0\.5 s'):
            hub.fetch(
                'drn_d_22.fyu_in1k',
                mirrors=f'http://127.0.0.1:{port}',
                progress=False,
                timeout=0.5,
            )
    assert os.listdir(hub_cache) == []
    for bad in (0, -1.0, float('nan'), float('inf'), '30'):
        with pytest.raises((ValueError, TypeError), match='timeout must be a float'):
            hub.fetch('drn_d_22', timeout=bad)


def test_a_copy_put_in_the_cache_by_hand_is_used_without_a_request(
    weights_http, hub_cache, published_weights
):
    fyu = published_weights['fyu']
    hub_cache.mkdir(parents=True)
    (hub_cache / fyu.source.file_name).write_bytes(Path(fyu.path).read_bytes())
    path, source = hub.fetch('drn_d_22', mirrors=closed_port_url())
    assert source.tag == 'fyu_in1k' and path == str(hub_cache / fyu.source.file_name)
    assert weights_http.requests == []


def test_a_damaged_cached_file_is_reported_and_kept(
    weights_http, hub_cache, published_weights
):
    fyu = published_weights['fyu']
    hub_cache.mkdir(parents=True)
    damaged = hub_cache / fyu.source.file_name
    damaged.write_bytes(b'not the weights')
    with pytest.raises(CheckpointError, match='is not the published drn_d_22.fyu_in1k'):
        hub.fetch('drn_d_22.fyu_in1k')
    assert damaged.read_bytes() == b'not the weights'
    assert weights_http.requests == []


def test_a_zip_with_several_files_is_refused(
    weights_http, hub_cache, published_weights, monkeypatch
):
    osmr = published_weights['osmr'].source
    name = osmr.url.rsplit('/', 1)[-1].replace('.pth.zip', 'two.pth.zip')
    with zipfile.ZipFile(os.path.join(published_weights['root'], name), 'w') as zf:
        zf.writestr('a.pth', b'1')
        zf.writestr('b.pth', b'2')
    two = osmr._replace(url=osmr.url.rsplit('/', 1)[0] + '/' + name)
    monkeypatch.setitem(hub.WEIGHTS, two.name, two)
    with pytest.raises(hub.DownloadError, match='the zip holds 2 files, expected one'):
        hub.fetch(two.name, progress=False)
    assert os.listdir(hub_cache) == []


def test_missing_unused_projection_is_reported_not_an_error(caplog):
    # pytorchcv's DRN-C-58 has no layer7.0.downsample (never used, see drn.py)
    with torch.device('meta'):
        model = DRN('C', 58)
    state = {k: v for k, v in model.state_dict().items() if '7.0.downsample' not in k}
    with caplog.at_level(logging.WARNING):
        matched = match_state_dict(
            state, model.state_dict(), optional_keys=model.unused_keys()
        )
    assert set(matched) == set(model.state_dict())
    assert 'lacks 5 keys of parameters the forward pass never uses' in caplog.text
    assert 'layer7.0.downsample.0.weight' in caplog.text


def test_no_tracked_file_names_the_dead_host():
    dead = 'tig' + 'ress'  # not spelled out, so this file passes its own check
    try:
        tracked = subprocess.run(
            ['git', 'ls-files', '-z'], cwd=REPO, capture_output=True, check=True
        ).stdout.split(b'\0')
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    hits = [
        name.decode()
        for name in tracked
        if name
        and (REPO / name.decode()).is_file()
        and dead.encode() in (REPO / name.decode()).read_bytes().lower()
    ]
    assert hits == []
