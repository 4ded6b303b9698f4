"""tools/analysis_tools/cam_demo.py end to end, with a checkpoint and an image
the test writes (separate processes, as users run it)."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from tool_runner import check, run_tool

import mmdrn  # noqa: F401

TOOL = 'analysis_tools/cam_demo.py'


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'scene.jpg'
    yy, xx = np.mgrid[0:48, 0:80]
    pixels = np.stack([xx * 3, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_demo_with_imagenet_checkpoint(tmp_path, image):
    model = timm.create_model('drn_d_22')
    # make 'tench' (class 0) win everywhere with probability ~1: known answer
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.bias[0] = 50.0
    ckpt = tmp_path / 'weights.pth'
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / 'cam.png'
    args = [str(image), '--model', 'drn_d_22', '--checkpoint', str(ckpt)]
    proc = run_tool(TOOL, args + ['--out', str(out), '--size', '32'], cwd=str(tmp_path))
    check(proc)
    lines = proc.stdout.splitlines()
    assert lines[0] == f'top-5 classes for {image} (drn_d_22):'
    assert lines[1] == '  1. [0] tench, Tinca tinca: 1.0000'
    assert lines[2].startswith('  2. [')
    assert len([line for line in lines if line.startswith('  ')]) == 5
    # every pixel is class 0 with probability ~1: the box is the whole 80x48 image
    assert 'box for [0] tench, Tinca tinca (t=0.1): (0.0, 0.0, 80.0, 48.0)' in lines[6]
    assert lines[-1] == f'wrote {out}'
    with Image.open(out) as png:
        assert png.format == 'PNG'
        assert png.size == (80, 48)
        rgb = np.asarray(png.convert('RGB'))
    # the green box is drawn along the image border
    assert tuple(rgb[0, 40]) == (0, 255, 0)
    assert tuple(rgb[24, 0]) == (0, 255, 0)


def test_fallback_box_is_dashed_red_and_a_weak_map_is_scaled_to_show(tmp_path, image):
    model = timm.create_model('drn_d_22')
    # every class has probability 1/1000 everywhere: no pixel passes t = 0.1
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
    ckpt = tmp_path / 'uniform.pth'
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / 'cam.png'
    args = [str(image), '--model', 'drn_d_22', '--checkpoint', str(ckpt)]
    proc = run_tool(TOOL, args + ['--out', str(out), '--size', '32'], cwd=str(tmp_path))
    expected = 'no pixel passed; whole-image fallback box for [0] tench, Tinca tinca'
    assert f'{expected} (t=0.1): (0.0, 0.0, 80.0, 48.0)' in check(proc)
    with Image.open(out) as png:
        rgb = np.asarray(png.convert('RGB')).astype(int)
    # line width 2 (1% of 48 px, at least 2), dashes 8 px long every 16 px
    assert tuple(rgb[0, 4]) == (255, 0, 0) and tuple(rgb[0, 20]) == (255, 0, 0)
    assert tuple(rgb[0, 12]) != (255, 0, 0)
    # the flat 0.001 map is scaled to its maximum: the warm end of jet, not
    # the cold one, is blended in (the image itself is bluish there)
    red, _, blue = rgb[24, 40]
    assert red > blue + 30


def test_default_output_goes_next_to_the_image(tmp_path, image):
    # a 3-class checkpoint inside a training checkpoint; run from another
    # folder: the PNG lands beside the image, nothing in the working folder
    torch.manual_seed(0)
    model = timm.create_model('drn_d_22', num_classes=3)
    ckpt = tmp_path / 'three.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir()
    args = [str(image), '--model', 'drn_d_22', '--checkpoint', str(ckpt)]
    proc = run_tool(TOOL, args + ['--size', '32', '--threshold', '0.2'], cwd=str(cwd))
    check(proc)
    # three classes: three ranked lines with generic names
    ranked = [line for line in proc.stdout.splitlines() if line.startswith('  ')]
    assert len(ranked) == 3 and all('class ' in line for line in ranked)
    assert '(t=0.2)' in proc.stdout
    expected = image.parent / 'scene_cam.png'
    assert proc.stdout.splitlines()[-1] == f'wrote {expected}'
    with Image.open(expected) as png:
        assert png.size == (80, 48)
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    'args, message',
    [
        (['--threshold', '1.5'], '--threshold must be in [0, 1), got 1.5'),
        (['--size', '4'], '--size must be at least 8 (one output cell), got 4'),
        (['--model', 'resnet18'], "--model must be one of ['drn_a_18', 'drn_a_34'"),
    ],
)
def test_demo_rejects_bad_arguments(tmp_path, image, args, message):
    proc = run_tool(TOOL, [str(image), *args], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr


def test_demo_rejects_missing_image(tmp_path):
    proc = run_tool(TOOL, [str(tmp_path / 'missing.jpg')], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert 'image file not found' in proc.stderr
