"""Published-weight files made from random networks, served on 127.0.0.1.

The tests of :mod:`mmdrn.hub` and of the ``drn://`` scheme download these
instead of the real files: DRN-D-22 in osmr's form (a zip holding a
pytorchcv ``.pth``) and in fyu/drn's form (a plain ``.pth``), each named and
hashed as the real ones are, with :data:`mmdrn.hub.WEIGHTS` pointed at them.
"""

import contextlib
import hashlib
import http.server
import os
import socket
import threading
import zipfile
from typing import Dict, Iterator, List, NamedTuple

import torch
from pytorchcv.model_provider import get_model as pytorchcv_model
from torch import nn

from mmdrn import hub
from mmdrn.backbones.drn import DRN

X = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))


class Published(NamedTuple):
    source: hub.WeightSource  # WEIGHTS entry naming the file below
    path: str  # the file as the server has it (zip for osmr)
    logits: torch.Tensor  # the source network's output on X
    features: torch.Tensor  # its last feature map on X


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics and biases, so any mis-mapped tensor shows."""
    gen = torch.Generator().manual_seed(seed)

    def rand(n: int, offset: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) + offset

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(rand(m.num_features, -0.5))
                m.running_var.copy_(rand(m.num_features, 0.5))
                m.weight.copy_(rand(m.num_features, 0.5))
                m.bias.copy_(rand(m.num_features, -0.5))
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(rand(m.bias.numel(), -0.5).view_as(m.bias))
    return model.eval()


def _digest(path: str, hash_name: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.new(hash_name, f.read()).hexdigest()


def _rename(source: hub.WeightSource, digest: str) -> hub.WeightSource:
    """The source as if the file were the one just made (name and hash)."""
    url = source.url.replace(source.hash[:8], digest[:8])
    return source._replace(url=url, hash=digest[: len(source.hash)])


def publish_osmr_d22(root: str) -> Published:
    """pytorchcv's DRN-D-22 (random weights), zipped as osmr releases it."""
    torch.manual_seed(1)
    net = _randomize(pytorchcv_model('drnd22', pretrained=False), seed=1)
    with torch.no_grad():
        features = net.features[:-1](X)  # its 28x28 pool fits only 224 inputs
        logits = net.output(features.mean((2, 3), keepdim=True)).flatten(1)
    pth = os.path.join(root, 'drnd22.pth')
    torch.save(net.state_dict(), pth)
    source = _rename(hub.WEIGHTS['drn_d_22.osmr_in1k'], _digest(pth, 'sha1'))
    archive = os.path.join(root, source.url.rsplit('/', 1)[-1])
    with zipfile.ZipFile(archive, 'w', zipfile.ZIP_STORED) as zf:
        zf.write(pth, source.file_name)
    os.remove(pth)
    return Published(source, archive, logits, features)


def publish_fyu(
    root: str, arch: str = 'D', depth: int = 22, seed: int = 2
) -> Published:
    """Our DRN (random weights) saved in fyu/drn's keys, as fyu names it."""
    net = _randomize(DRN(arch, depth), seed=seed)
    with torch.no_grad():
        features = net.forward_features(X)
        logits = net.forward_head(features)
    state = {
        k: v
        for k, v in net.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    pth = os.path.join(root, f'drn_{arch.lower()}_{depth}.pth')
    torch.save(state, pth)
    name = f'drn_{arch.lower()}_{depth}.fyu_in1k'
    source = _rename(hub.WEIGHTS[name], _digest(pth, 'sha256'))
    path = os.path.join(root, source.file_name)
    os.replace(pth, path)
    return Published(source, path, logits, features)


def publish_fyu_d22(root: str) -> Published:
    """Our DRN-D-22 (random weights) saved in fyu/drn's keys, as fyu names it."""
    return publish_fyu(root, 'D', 22, seed=2)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: str) -> Iterator['http.server.ThreadingHTTPServer']:
    """Serve ``root`` on 127.0.0.1; ``server.url``, ``server.requests``."""

    def handler(*args, **kwargs):
        return _Handler(*args, directory=root, **kwargs)

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    server.requests: List[str] = []
    server.url = f'http://127.0.0.1:{server.server_address[1]}'
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(
        actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item()
    )


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}'


def point_hub_at(monkeypatch, published: Dict[str, Published]) -> None:
    """Make :data:`mmdrn.hub.WEIGHTS` name the files made here."""
    for item in published.values():
        monkeypatch.setitem(hub.WEIGHTS, item.source.name, item.source)
