"""tools/analysis_tools/activation_maps.py, run as a process on checkpoints
and images: the maps are the channel means of the backbone's levels (checked
against a computation by hand), cover the image and not its padding, and the
predictions are the model's; bad arguments and checkpoints are named."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tool_runner import REPO, check, run_tool

from mmdrn.datasets import PALETTE

TOOL = 'analysis_tools/activation_maps.py'
DRN_A = Path(REPO) / 'configs' / 'demo' / 'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py'
R18 = Path(REPO) / 'configs' / 'demo' / 'fcn_r18-d8_1xb8-1k_drn-demo-64x64.py'


def _model(config: Path, checkpoint: Path) -> torch.nn.Module:
    from mmseg.apis import init_model

    model = init_model(str(config), device='cpu')
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    return model.eval()


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """A checkpoint of each config (random weights), a 64x64 and a 40x48
    image and a label map."""
    from mmseg.apis import init_model

    root = tmp_path_factory.mktemp('maps')
    torch.manual_seed(0)
    for config in (DRN_A, R18):
        state = init_model(str(config), device='cpu').state_dict()
        torch.save(dict(state_dict=state), root / f'{config.stem}.pth')
    rng = np.random.default_rng(0)
    for name, size in (('square', (64, 64)), ('wide', (40, 48))):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / f'{name}.png')
    for name, size in (('gt', (64, 64)), ('gt_wide', (40, 48))):
        labels = rng.integers(0, 7, size, dtype=np.uint8)
        labels[:16, :16] = 255  # unlabelled pixels
        Image.fromarray(labels).save(root / f'{name}.png')
    return root


def _models(root: Path) -> list:
    return [
        a
        for c in (DRN_A, R18)
        for a in ('--model', str(c), str(root / f'{c.stem}.pth'))
    ]


@pytest.fixture(scope='module')
def drawn(inputs):
    """Both models, both images, the ground truth and the predictions."""
    args = _models(inputs) + ['--labels', 'A', 'R', '--levels', '-2', '-1']
    args += ['--images', str(inputs / 'square.png'), str(inputs / 'wide.png')]
    args += ['--ground-truth', str(inputs / 'gt.png'), str(inputs / 'gt_wide.png')]
    args += ['--predictions', '--out', str(inputs / 'maps.png')]
    check(run_tool(TOOL, args + ['--save-maps', str(inputs / 'maps.npz')], str(inputs)))
    return np.load(inputs / 'maps.npz'), inputs


def test_maps_are_the_channel_means_of_the_backbone_levels(drawn):
    maps, root = drawn
    model = _model(DRN_A, root / f'{DRN_A.stem}.pth')
    # the preprocessing by hand: the PNG is RGB, ImageNet mean/std
    rgb = torch.from_numpy(np.array(Image.open(root / 'square.png'))).permute(2, 0, 1)
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    with torch.no_grad():
        outputs = model.backbone(((rgb.float() - mean) / std)[None])
    for name, output in zip(('layer3', 'layer4'), outputs[-2:]):
        expected = output[0].mean(0).numpy()
        assert maps[f'A/0/{name}'].shape == (8, 8)
        np.testing.assert_allclose(maps[f'A/0/{name}'], expected, rtol=1e-4, atol=1e-5)


def test_maps_cover_the_image_not_the_padding_and_other_backbones_are_numbered(drawn):
    maps, _ = drawn
    # 40x48 is padded to the preprocessor's 64x64; the maps keep the
    # ceil(40/8) x ceil(48/8) cells over the image
    assert maps['A/1/layer4'].shape == (5, 6)
    # MMSeg's ResNetV1c names no levels: its outputs are numbered
    keys = [k for k in maps.files if k.startswith('R/0/')]
    assert sorted(keys) == ['R/0/out2', 'R/0/out3', 'R/0/prediction']
    assert maps['R/1/out3'].shape == (5, 6)


def test_the_picture_has_a_column_per_map_and_prediction(drawn):
    _, root = drawn
    with Image.open(root / 'maps.png') as picture:
        width, height = picture.size
    # image, ground truth, per model a prediction and two maps: 8 columns of
    # 1.6 inches, 2 rows at 120 dpi
    assert (width, height) == (round(8 * 1.6 * 120), round((2 * 1.6 + 0.4) * 120))
    # label maps are drawn in the dataset's colours, unlabelled pixels black
    with Image.open(root / 'maps.png') as picture:
        colours = set(map(tuple, np.asarray(picture.convert('RGB')).reshape(-1, 3)))
    assert set(PALETTE) | {(0, 0, 0)} <= colours


def test_predictions_are_the_models_argmax(drawn):
    maps, root = drawn
    model = _model(DRN_A, root / f'{DRN_A.stem}.pth')
    bgr = np.array(Image.open(root / 'square.png'))[..., ::-1].copy()
    inputs = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(bgr).permute(2, 0, 1)]), False
    )['inputs']
    with torch.no_grad():
        logits = model.encode_decode(
            inputs, [dict(img_shape=(64, 64), pad_shape=(64, 64))]
        )
    np.testing.assert_array_equal(maps['A/0/prediction'], logits.argmax(1)[0].numpy())
    assert maps['A/1/prediction'].shape == (40, 48)


# the maps themselves are checked at scale 1 above
@pytest.mark.slow
def test_enlarging_the_image_enlarges_the_maps(inputs, tmp_path):
    args = ['--model', str(DRN_A), str(inputs / f'{DRN_A.stem}.pth'), '--levels', '-1']
    args += ['--images', str(inputs / 'square.png'), '--scale', '2']
    args += ['--out', str(tmp_path / 'x.png'), '--save-maps', str(tmp_path / 'x.npz')]
    check(run_tool(TOOL, args, str(tmp_path)))
    assert np.load(tmp_path / 'x.npz')[
        'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64/0/layer4'
    ].shape == (16, 16)
    # an existing picture is kept unless --force
    proc = run_tool(TOOL, args, str(tmp_path))
    assert proc.returncode != 0 and 'x.png exists; pass --force' in proc.stderr


def test_bad_levels_and_checkpoints_are_named(inputs, tmp_path):
    base = ['--images', str(inputs / 'square.png'), '--out', str(tmp_path / 'y.png')]
    checkpoint = str(inputs / f'{DRN_A.stem}.pth')
    proc = run_tool(
        TOOL,
        ['--model', str(DRN_A), checkpoint, '--levels', '-5', *base],
        str(tmp_path),
    )
    assert proc.returncode != 0
    assert 'level -5 is out of range: the backbone returns 4 outputs' in proc.stderr
    # a checkpoint of another model is refused, naming what does not fit
    other = str(inputs / f'{R18.stem}.pth')
    proc = run_tool(TOOL, ['--model', str(DRN_A), other, *base], str(tmp_path))
    assert (
        proc.returncode != 0 and 'does not fit the model of the config' in proc.stderr
    )
    assert not (tmp_path / 'y.png').exists()


@pytest.mark.parametrize(
    'extra, message',
    [
        (['--labels', 'A', 'B'], '--labels needs one per --model: 1 given, 2 names'),
        (['--ground-truth', 'a.png', 'b.png'], '--ground-truth needs one per image'),
        (['--scale', '0'], '--scale must be > 0'),
    ],
)
def test_bad_arguments_are_named(extra, message, tmp_path):
    args = ['--model', 'C.py', 'C.pth', '--images', 'x.png', *extra]
    proc = run_tool(TOOL, args, str(tmp_path))
    assert proc.returncode != 0 and message in proc.stderr
