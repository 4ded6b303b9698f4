"""tools/analysis_tools/activation_maps.py on a checkpoint and an image."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrn.openmmlab.analysis.activation_maps import load_segmentor

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / 'tools' / 'analysis_tools' / 'activation_maps.py'
CONFIG = ROOT / 'configs' / 'demo' / 'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py'


def _tool():
    spec = importlib.util.spec_from_file_location('activation_maps_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('maps')
    checkpoint = root / 'drn_a_18.pth'
    torch.manual_seed(0)
    torch.save(dict(state_dict=load_segmentor(str(CONFIG)).state_dict()), checkpoint)
    image = root / 'scene.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(image)
    return root, checkpoint, image


def test_tool_draws_two_models_side_by_side(inputs, one_thread):
    root, checkpoint, image = inputs
    out = root / 'maps.png'
    args = ['--model', str(CONFIG), str(checkpoint)] * 2
    args += ['--labels', 'A', 'B', '--images', str(image), str(image)]
    args += ['--levels', '-1', '--out', str(out)]
    assert _tool().main(args) == str(out)
    with Image.open(out) as picture:
        width, height = picture.size
    # three columns (image, A, B) by two rows
    assert width > height > 0
    # an existing picture is kept unless --force
    with pytest.raises(SystemExit):
        _tool().main(args)
    _tool().main(args + ['--force'])


def test_tool_names_bad_arguments(inputs, capsys):
    root, checkpoint, image = inputs
    args = ['--model', str(CONFIG), str(checkpoint), '--labels', 'A', 'B']
    with pytest.raises(SystemExit):
        _tool().main(args + ['--images', str(image), '--out', str(root / 'x.png')])
    assert '--labels needs one name per --model: 1 models, 2 labels' in (
        capsys.readouterr().err
    )
