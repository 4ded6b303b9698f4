"""mmdrn.visualization: the CAM picture (map colours and box lines)."""

import numpy as np
import torch
from PIL import Image

from mmdrn.visualization import render_cam


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
