"""mmdrn.visualization: the CAM picture (map colours and box lines), label
maps, grids of pictures and bar charts."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrn.visualization import bar_chart, colorize, render_cam, tile


def test_render_draws_valid_box_green_and_fallback_dashed_red():
    image = Image.new('RGB', (40, 20), (0, 0, 0))
    prob_map = torch.zeros(4, 8)
    prob_map[1:3, 2:4] = 1.0
    out = np.asarray(render_cam(image, prob_map, [10.0, 5.0, 20.0, 15.0], True))
    assert out.shape == (20, 40, 3)
    assert tuple(out[5, 15]) == (0, 255, 0)  # top edge of the box
    assert tuple(out[10, 10]) == (0, 255, 0)  # left edge
    assert tuple(out[10, 30]) != (0, 255, 0)  # outside the box
    # the hot cells get the warm end of the colour map, cold ones the blue end
    assert out[8, 17, 0] > out[8, 17, 2] and out[18, 38, 2] > out[18, 38, 0]
    fallback = np.asarray(render_cam(image, prob_map, [0.0, 0.0, 40.0, 20.0], False))
    # line width 2, dashes 8 px long every 16 px along the top edge
    assert tuple(fallback[0, 4]) == (255, 0, 0)
    assert tuple(fallback[0, 12]) != (255, 0, 0)
    assert tuple(fallback[0, 20]) == (255, 0, 0)


def test_render_keeps_the_image_size_and_mode():
    image = Image.new('RGB', (33, 17), (200, 100, 50))
    out = render_cam(image, torch.rand(3, 5), [0.0, 0.0, 33.0, 17.0], True)
    assert out.size == (33, 17) and out.mode == 'RGB'


def test_colorize_paints_classes_and_blacks_out_the_rest():
    palette = [(10, 20, 30), (40, 50, 60)]
    out = colorize(np.array([[0, 1], [255, 7]], np.uint8), palette)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [40, 50, 60]
    # ignored pixels and labels without a colour are black
    assert out[1].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_tile_draws_a_grid_and_leaves_the_backend_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    rgb = np.zeros((8, 8, 3), np.uint8)
    rows = [[rgb, np.random.rand(4, 4)], [rgb, np.random.rand(2, 3)]]
    out = tile(rows, ['image', 'a long model name\nlevel7'], str(tmp_path / 't.png'))
    with Image.open(out) as picture:
        # two columns of 1.6 inches, two rows, at 120 dpi
        assert picture.size == (round(2 * 1.6 * 120), round((2 * 1.6 + 0.4) * 120))
    assert matplotlib.get_backend() == backend
    with pytest.raises(
        ValueError, match=r'rows need 2 pictures \(titles\), got \[2, 1\]'
    ):
        tile([rows[0], [rgb]], ['a', 'b'], str(tmp_path / 'u.png'))


def test_bar_chart_writes_bars_with_and_without_spread(tmp_path):
    bars = {'A': ([50.0, 60.0], [1.0, None]), 'B': ([40.0, float('nan')], [None, None])}
    out = bar_chart(['x', 'mIoU'], bars, str(tmp_path / 'c.png'), title='t')
    with Image.open(out) as picture:
        assert picture.size == (8 * 120, round(4.2 * 120))
    with pytest.raises(ValueError, match="'A' needs one mean and spread per group"):
        bar_chart(['x'], bars, str(tmp_path / 'd.png'))
