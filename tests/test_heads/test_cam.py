"""Dense class activation maps and the DRN box rule on hand-built inputs."""

import pytest
import torch
from torch import nn

from mmdrn.heads.cam import (
    DEFAULT_THRESHOLD,
    cam_boxes,
    cam_localize,
    cam_probs,
    dense_logits,
)


def _one_hot_map(labels, num_classes=3):
    """Probability maps that are one-hot at every pixel (h x w int labels)."""
    labels = torch.as_tensor(labels)
    return nn.functional.one_hot(labels, num_classes).permute(2, 0, 1)[None].float()


def _reference_box(probs, label, threshold):
    """Slow per-image version of the rule, for comparison with the batched one."""
    keep = (probs.argmax(0) == label) & (probs[label] > threshold)
    ys, xs = keep.nonzero(as_tuple=True)
    if ys.numel() == 0:
        return None
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_default_threshold_is_documented_value():
    assert DEFAULT_THRESHOLD == 0.1


def test_dense_logits_conv_and_linear_agree():
    torch.manual_seed(0)
    feats = torch.randn(2, 8, 5, 7)
    conv = nn.Conv2d(8, 4, 1)
    linear = nn.Linear(8, 4)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.flatten(1))
        linear.bias.copy_(conv.bias)
    expected = conv(feats)
    torch.testing.assert_close(dense_logits(feats, conv), expected)
    torch.testing.assert_close(dense_logits(feats, linear), expected)
    # the linear classifier applied to every position by hand
    by_hand = linear(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(dense_logits(feats, linear), by_hand)


def test_dense_logits_average_equals_pooled_classification():
    torch.manual_seed(1)
    feats = torch.randn(3, 16, 6, 6)
    conv = nn.Conv2d(16, 10, 1)
    pooled = conv(feats.mean(dim=(2, 3), keepdim=True)).flatten(1)
    averaged = dense_logits(feats, conv).mean(dim=(2, 3))
    torch.testing.assert_close(averaged, pooled, rtol=1e-5, atol=1e-6)


def test_dense_logits_without_bias():
    feats = torch.ones(1, 2, 1, 1)
    conv = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(3.0)
    assert dense_logits(feats, conv).item() == 6.0


def test_dense_logits_rejects_bad_classifier():
    feats = torch.randn(1, 4, 2, 2)
    with pytest.raises(
        TypeError, match='classifier must be an nn.Conv2d.*got Identity'
    ):
        dense_logits(feats, nn.Identity())
    with pytest.raises(ValueError, match=r'classifier must be a 1x1 Conv2d.*\(3, 3\)'):
        dense_logits(feats, nn.Conv2d(4, 2, 3))
    with pytest.raises(
        ValueError, match='feats has 4 channels but the classifier expects 5'
    ):
        dense_logits(feats, nn.Conv2d(5, 2, 1))
    with pytest.raises(
        ValueError, match=r'feats must be a 4-D .*got shape \(4, 2, 2\)'
    ):
        dense_logits(feats[0], nn.Conv2d(4, 2, 1))


def test_cam_probs_sum_to_one_over_classes():
    torch.manual_seed(2)
    probs = cam_probs(torch.randn(2, 5, 4, 3) * 10)
    assert probs.shape == (2, 5, 4, 3)
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, 4, 3))
    with pytest.raises(ValueError, match=r'logits must be a 4-D .*got shape \(5, 4\)'):
        cam_probs(torch.randn(5, 4))


def test_single_pixel_box_uses_cell_edges():
    probs = _one_hot_map([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # 4x4 map on a 32x32 image: each cell is 8x8 pixels, cell (1, 2) -> x 16..24
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.5, img_size=(32, 32))
    assert out.boxes.tolist() == [[16.0, 8.0, 24.0, 16.0]]
    assert out.valid.tolist() == [True]
    assert out.labels.tolist() == [1]
    # map coordinates when no image size is given
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.5)
    assert out.boxes.tolist() == [[2.0, 1.0, 3.0, 2.0]]


def test_non_square_image_scales_each_axis():
    probs = _one_hot_map([[1, 0], [0, 0]])
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.0, img_size=(10, 30))
    assert out.boxes.tolist() == [[0.0, 0.0, 15.0, 5.0]]
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.0, img_size=16)
    assert out.boxes.tolist() == [[0.0, 0.0, 8.0, 8.0]]


def test_probability_equal_to_threshold_is_excluded():
    probs = torch.zeros(1, 2, 1, 3)
    probs[0, :, 0, 0] = torch.tensor([0.25, 0.75])  # passes t = 0.5
    probs[0, :, 0, 1] = torch.tensor([0.5, 0.5])  # argmax is class 0 (tie)
    probs[0, :, 0, 2] = torch.tensor([0.5, 0.5])
    # class 0 wins the ties at x = 1, 2, but 0.5 is not > 0.5
    out = cam_boxes(probs, torch.tensor([0]), threshold=0.5)
    assert out.valid.tolist() == [False]
    out = cam_boxes(probs, torch.tensor([0]), threshold=0.4999)
    assert out.valid.tolist() == [True]
    assert out.boxes.tolist() == [[1.0, 0.0, 3.0, 1.0]]
    # class 1 never wins a tie, so only x = 0 belongs to it
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.0)
    assert out.boxes.tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_pixel_must_be_argmax_not_only_above_threshold():
    probs = torch.zeros(1, 3, 1, 2)
    probs[0, :, 0, 0] = torch.tensor([0.0, 0.4, 0.6])  # class 1 above t, not argmax
    probs[0, :, 0, 1] = torch.tensor([0.1, 0.7, 0.2])
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.3)
    assert out.boxes.tolist() == [[1.0, 0.0, 2.0, 1.0]]


def test_several_blobs_give_one_enclosing_box():
    labels = [
        [0, 0, 0, 0, 0, 0],
        [0, 2, 0, 0, 0, 0],
        [0, 2, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 2, 2],
    ]
    probs = _one_hot_map(labels)
    out = cam_boxes(probs, torch.tensor([2]), threshold=0.9, img_size=(50, 60))
    # cells x 1..5, y 1..4 -> x edges 10..60, y edges 10..50
    assert out.boxes.tolist() == [[10.0, 10.0, 60.0, 50.0]]
    assert out.valid.tolist() == [True]


def test_empty_map_falls_back_to_whole_image():
    probs = _one_hot_map([[0, 0], [0, 0]])
    out = cam_boxes(probs, torch.tensor([1]), threshold=0.0, img_size=(20, 40))
    assert out.valid.tolist() == [False]
    assert out.boxes.tolist() == [[0.0, 0.0, 40.0, 20.0]]


def test_batch_mixes_valid_and_invalid_images():
    probs = torch.cat(
        [
            _one_hot_map([[1, 0], [0, 0]]),
            _one_hot_map([[0, 0], [0, 0]]),
            _one_hot_map([[0, 2], [0, 2]]),
        ]
    )
    out = cam_boxes(probs, torch.tensor([1, 1, 2]), threshold=0.5, img_size=(8, 8))
    assert out.valid.tolist() == [True, False, True]
    assert out.boxes.tolist() == [
        [0.0, 0.0, 4.0, 4.0],
        [0.0, 0.0, 8.0, 8.0],
        [4.0, 0.0, 8.0, 8.0],
    ]


def test_batched_rule_matches_per_image_reference():
    torch.manual_seed(3)
    probs = cam_probs(torch.randn(16, 4, 3, 4) * 3)
    labels = torch.randint(0, 4, (16,))
    out = cam_boxes(probs, labels, threshold=0.8)
    for n in range(16):
        expected = _reference_box(probs[n], labels[n], 0.8)
        assert out.valid[n].item() == (expected is not None)
        if expected is not None:
            assert out.boxes[n].tolist() == expected
    # the random maps exercise both outcomes
    assert out.valid.any() and not out.valid.all()


def test_cam_boxes_rejects_bad_arguments():
    probs = _one_hot_map([[0, 1]])
    with pytest.raises(ValueError, match=r'threshold must be in \[0, 1\), got 1.0'):
        cam_boxes(probs, torch.tensor([1]), threshold=1.0)
    with pytest.raises(ValueError, match=r'threshold must be in \[0, 1\), got -0.1'):
        cam_boxes(probs, torch.tensor([1]), threshold=-0.1)
    with pytest.raises(TypeError, match='threshold must be a float in .*of type str'):
        cam_boxes(probs, torch.tensor([1]), threshold='0.5')
    with pytest.raises(
        ValueError, match=r'labels must be in \[0, 3\), got values in \[3, 3\]'
    ):
        cam_boxes(probs, torch.tensor([3]))
    with pytest.raises(ValueError, match='labels must hold 1 class indices, got 2'):
        cam_boxes(probs, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r'img_size must be .*got \(0, 4\)'):
        cam_boxes(probs, torch.tensor([1]), img_size=(0, 4))
    with pytest.raises(
        ValueError, match=r'probs must be a 4-D .*got shape \(3, 1, 2\)'
    ):
        cam_boxes(probs[0], torch.tensor([1]))
    with pytest.raises(TypeError, match='probs must be a floating-point tensor'):
        cam_boxes(probs.long(), torch.tensor([1]))


class _ToyNet(nn.Module):
    """A stride-4 'network' with the timm DRN interface."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.body = nn.Conv2d(3, 6, 4, stride=4)
        self.fc = classifier

    def forward_features(self, x):
        return self.body(x)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        pooled = self.forward_features(x).mean(dim=(2, 3), keepdim=True)
        if isinstance(self.fc, nn.Linear):
            return self.fc(pooled.flatten(1))
        return self.fc(pooled).flatten(1)


@pytest.mark.parametrize('classifier', [nn.Conv2d(6, 5, 1), nn.Linear(6, 5)])
def test_cam_localize_on_toy_model(classifier):
    torch.manual_seed(4)
    model = _ToyNet(classifier).eval()
    images = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        out = cam_localize(model, images, threshold=0.0)
        logits = model(images)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-6)
    assert out.probs.shape == (2, 5, 4, 6)
    assert out.labels.tolist() == logits.argmax(1).tolist()
    expected = cam_boxes(out.probs, out.labels, 0.0, img_size=(16, 24))
    torch.testing.assert_close(out.boxes, expected.boxes)
    # boxes lie inside the 16 x 24 input on the 4-pixel cell grid
    assert (out.boxes[:, [0, 2]] <= 24).all() and (out.boxes[:, [1, 3]] <= 16).all()
    assert (out.boxes % 4 == 0).all()
    given = cam_localize(model, images, threshold=0.0, labels=torch.tensor([4, 4]))
    assert given.labels.tolist() == [4, 4]


def test_cam_localize_rejects_model_without_classifier():
    with pytest.raises(TypeError, match='model must expose .*got NoneType'):
        cam_localize(nn.Conv2d(3, 3, 1), torch.randn(1, 3, 8, 8))
    with pytest.raises(
        ValueError, match=r'images must be a 4-D .*got shape \(3, 8, 8\)'
    ):
        cam_localize(_ToyNet(nn.Conv2d(6, 5, 1)), torch.randn(3, 8, 8))
