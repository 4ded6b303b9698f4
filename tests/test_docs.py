"""The README's Python snippets run as written.

Every ```python block of README.md is executed in order in one namespace, as
a reader pasting them into one session would, in a temporary working folder.
What the snippets need from outside is provided the way a user has it:
published weights come from a local server standing in for the real hosts
(random networks, named and hashed as the published files,
``MMDRN_WEIGHTS_MIRROR``), and a file a snippet names on disk is written
first. Each model or backbone config a block assigns is then built with the
registry of its codebase and run on a tiny input.
"""

import ast
import re
from pathlib import Path

import pytest
import timm
import torch
from weights_server import point_hub_at, publish_fyu, serve

import mmdrn.openmmlab  # noqa: F401  (registers the config type names)
from mmdrn import hub

REPO = Path(__file__).resolve().parents[1]
README = REPO / 'README.md'
BLOCK = re.compile(r'^```python\n(.*?)^```', re.S | re.M)


def python_blocks(text: str) -> list:
    return [m.group(1) for m in BLOCK.finditer(text)]


def config_assignments(code: str) -> dict:
    """``name = dict(type=...)`` statements of a block, evaluated one by one
    (a block may assign the same name twice to show alternatives)."""
    found = []
    for node in ast.parse(code).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, 'id', None) == 'dict'
            and any(k.arg == 'type' for k in node.value.keywords)
        ):
            value = eval(compile(ast.Expression(node.value), '<README>', 'eval'))
            found.append((node.targets[0].id, value))
    return found


def build(cfg: dict) -> torch.nn.Module:
    scope, _, name = cfg['type'].rpartition('.')
    if scope == 'mmpretrain' or name in ('ImageClassifier',):
        from mmpretrain.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg)


@pytest.fixture
def published(tmp_path, monkeypatch):
    """drn_c_26's fyu file on a local server; torch.hub's cache in tmp."""
    root = tmp_path / 'published'
    root.mkdir()
    item = publish_fyu(str(root), 'C', 26, seed=3)
    point_hub_at(monkeypatch, {'fyu': item})
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    with serve(str(root)) as server:
        monkeypatch.setenv(hub.MIRROR_ENV, server.url)
        yield item


def test_readme_has_python_snippets():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 4
    assert any('timm.create_model' in b for b in blocks)
    assert any("type='DRN_C'" in b for b in blocks)


def test_readme_python_snippets_run(published, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    work = tmp_path / 'work'
    work.mkdir()
    monkeypatch.chdir(work)
    text = README.read_text()
    # Files the snippets read from disk, in fyu/drn's layout.
    for name in set(re.findall(r"file='([^']+\.pth)'", text)):
        torch.save(torch.load(published.path, weights_only=True), work / name)

    weights = torch.load(published.path, weights_only=True)
    namespace: dict = {}
    built = []
    for index, code in enumerate(python_blocks(text)):
        try:
            exec(compile(code, f'README.md python block {index}', 'exec'), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f'README python block {index} fails: {error!r}\n{code}')
        for name, cfg in config_assignments(code):
            model = build(cfg)
            if 'drn://' in str(cfg):
                model.init_weights()
                backbone = getattr(model, 'backbone', model)
                assert torch.equal(backbone.conv1.weight, weights['conv1.weight'])
            built.append((index, name, cfg['type'], model))

    # The timm snippet's model and the downloaded weights are real.
    assert isinstance(namespace['model'], torch.nn.Module)
    fetched = timm.create_model('drn_c_26', pretrained=True)
    assert torch.equal(fetched.conv1.weight, weights['conv1.weight'])
    # Each config the README shows builds and runs.
    assert {t for _, _, t, _ in built} >= {'EncoderDecoder', 'DRN_C'}
    x = torch.rand(2, 3, 64, 64)
    for index, name, kind, model in built:
        model.eval()
        with torch.no_grad():
            if kind == 'EncoderDecoder':
                out = model(x, mode='tensor')
                assert out.shape[:2] == (2, 19), (index, name)
            else:
                out = model(x)
                assert isinstance(out, (tuple, list)) and out, (index, name)
