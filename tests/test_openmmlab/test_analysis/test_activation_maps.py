"""Channel-mean activation maps and the loading of segmentors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mmdrn.openmmlab.analysis.activation_maps import (
    activation_maps,
    level_names,
    load_segmentor,
)
from mmdrn.openmmlab.analysis.figures import plot_activation_maps

REPO = Path(__file__).resolve().parents[3]
DRN_A = REPO / 'configs' / 'demo' / 'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py'
R18 = REPO / 'configs' / 'demo' / 'fcn_r18-d8_1xb8-1k_drn-demo-64x64.py'


@pytest.fixture(scope='module')
def drn_a():
    torch.manual_seed(0)
    return load_segmentor(str(DRN_A))


def _image(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_maps_are_the_channel_means_of_the_backbone_levels(drn_a):
    image = _image(64, 64)
    maps = activation_maps(drn_a, image, levels=(-2, -1))
    assert [name for name, _ in maps] == ['layer3', 'layer4']
    # the same preprocessing by hand: BGR -> RGB, ImageNet mean/std
    rgb = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1).float()
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    with torch.no_grad():
        outputs = drn_a.backbone(((rgb - mean) / std)[None])
    for (_, activation), output in zip(maps, outputs[-2:]):
        assert activation.shape == (8, 8)
        np.testing.assert_allclose(
            activation, output[0].mean(0).numpy(), rtol=1e-5, atol=1e-6
        )


def test_maps_cover_only_the_image_not_the_padding(drn_a):
    # 40x48 is padded to the preprocessor's 64x64; the maps keep the
    # ceil(40/8) x ceil(48/8) cells over the image.
    maps = activation_maps(drn_a, _image(40, 48), levels=(-1,))
    assert maps[0][1].shape == (5, 6)
    enlarged = activation_maps(drn_a, _image(64, 64), levels=(-1,), scale=2.0)
    assert enlarged[0][1].shape == (16, 16)


def test_level_names_of_other_backbones():
    model = load_segmentor(str(R18))
    assert level_names(model.backbone) == ['out0', 'out1', 'out2', 'out3']
    maps = activation_maps(model, _image(64, 64), levels=(0, -1))
    assert [name for name, _ in maps] == ['out0', 'out3']
    assert maps[0][1].shape == (16, 16) and maps[1][1].shape == (8, 8)


def test_bad_arguments_are_named(drn_a):
    with pytest.raises(ValueError, match=r'level -5 is out of range.*4 outputs'):
        activation_maps(drn_a, _image(64, 64), levels=(-5,))
    with pytest.raises(ValueError, match=r'image must be an \(H, W, 3\) uint8'):
        activation_maps(drn_a, np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match='scale must be > 0'):
        activation_maps(drn_a, _image(64, 64), scale=0.0)


def test_load_segmentor_loads_every_key(tmp_path, drn_a):
    state = {
        k: v + 1 if v.is_floating_point() else v for k, v in drn_a.state_dict().items()
    }
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict=state), path)
    loaded = load_segmentor(str(DRN_A), str(path))
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not loaded.training
    del state['decode_head.conv_seg.bias']
    torch.save(dict(state_dict=state), path)
    with pytest.raises(RuntimeError, match='decode_head.conv_seg.bias'):
        load_segmentor(str(DRN_A), str(path))


def test_the_picture_is_written(tmp_path, drn_a):
    images = [_image(64, 64), _image(40, 48)]
    maps = {'DRN-A-18': [activation_maps(drn_a, i[..., ::-1].copy()) for i in images]}
    out = plot_activation_maps(images, maps, str(tmp_path / 'maps.png'))
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size[0] > picture.size[1] > 0
    with pytest.raises(ValueError, match='has maps for 1 of 2 images'):
        plot_activation_maps(
            images, {'x': maps['DRN-A-18'][:1]}, str(tmp_path / 'y.png')
        )
