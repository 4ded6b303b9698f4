"""tools/cam_demo.py end to end, with a checkpoint and an image the test writes."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools' / 'cam_demo.py'


def _run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=240,
    )


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'scene.jpg'
    yy, xx = np.mgrid[0:48, 0:80]
    pixels = np.stack([xx * 3, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_demo_with_imagenet_checkpoint(tmp_path, image):
    import timm

    import mmdrn  # noqa: F401

    model = timm.create_model('drn_d_22')
    # make 'tench' (class 0) win everywhere with probability ~1: known answer
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.bias[0] = 50.0
    ckpt = tmp_path / 'weights.pth'
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / 'cam.png'
    result = _run(
        image,
        '--model',
        'drn_d_22',
        '--checkpoint',
        ckpt,
        '--out',
        out,
        '--size',
        32,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f'top-5 classes for {image} (drn_d_22):'
    assert lines[1] == '  1. [0] tench, Tinca tinca: 1.0000'
    assert lines[2].startswith('  2. [')
    assert len([line for line in lines if line.startswith('  ')]) == 5
    # every pixel is class 0 with probability ~1: the box is the whole 80x48 image
    assert (
        'box for [0] tench, Tinca tinca (t=0.1): (0.0, 0.0, 80.0, 48.0)'
        in result.stdout
    )
    assert lines[-1] == f'wrote {out}'
    with Image.open(out) as png:
        assert png.format == 'PNG'
        assert png.size == (80, 48)
        rgb = np.asarray(png.convert('RGB'))
    # the green box is drawn along the image border
    assert tuple(rgb[0, 40]) == (0, 255, 0)
    assert tuple(rgb[24, 0]) == (0, 255, 0)


def _load_tool():
    """Import the tool as a module, to call main() without a new interpreter."""
    spec = importlib.util.spec_from_file_location('cam_demo', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_in_process_with_small_checkpoint_and_defaults(
    tmp_path, image, monkeypatch, capsys
):
    import timm

    torch.manual_seed(0)
    model = timm.create_model('drn_d_22', num_classes=3)
    ckpt = tmp_path / 'three.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    monkeypatch.chdir(tmp_path)
    argv = [str(image), '--model', 'drn_d_22', '--checkpoint', str(ckpt)]
    _load_tool().main(argv + ['--size', '32', '--threshold', '0.2'])
    stdout = capsys.readouterr().out
    # three classes: three ranked lines with generic names
    ranked = [line for line in stdout.splitlines() if line.startswith('  ')]
    assert len(ranked) == 3 and all('class ' in line for line in ranked)
    assert '(t=0.2)' in stdout
    # default output name, next to the working directory
    with Image.open(tmp_path / 'scene_cam.png') as png:
        assert png.size == (80, 48)


@pytest.mark.parametrize(
    'args, message',
    [
        (['--threshold', '1.5'], r'--threshold must be in [0, 1), got 1.5'),
        (['--size', '4'], '--size must be at least 8 (one output cell), got 4'),
        (['--model', 'resnet18'], "--model must be one of ['drn_a_18', 'drn_a_34'"),
    ],
)
def test_demo_rejects_bad_arguments(image, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        _load_tool().parse_args([str(image), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_rejects_missing_image(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _load_tool().parse_args([str(tmp_path / 'missing.jpg')])
    assert 'image file not found' in capsys.readouterr().err


def test_render_draws_valid_box_green_and_fallback_dashed_red():
    tool = _load_tool()
    image = Image.new('RGB', (40, 20), (0, 0, 0))
    prob_map = torch.zeros(4, 8)
    prob_map[1:3, 2:4] = 1.0
    out = np.asarray(tool.render(image, prob_map, [10.0, 5.0, 20.0, 15.0], True))
    assert tuple(out[5, 15]) == (0, 255, 0)  # top edge of the box
    assert tuple(out[10, 10]) == (0, 255, 0)  # left edge
    assert tuple(out[10, 30]) != (0, 255, 0)  # outside the box
    # the hot cells get the warm end of the colour map, cold ones the blue end
    assert out[8, 17, 0] > out[8, 17, 2] and out[18, 38, 2] > out[18, 38, 0]
    fallback = np.asarray(tool.render(image, prob_map, [0.0, 0.0, 40.0, 20.0], False))
    # line width 2, dashes 8 px long every 16 px along the top edge
    assert tuple(fallback[0, 4]) == (255, 0, 0)
    assert tuple(fallback[0, 12]) != (255, 0, 0)
    assert tuple(fallback[0, 20]) == (255, 0, 0)
