"""ImageNet bounding-box XML parsing and IoU scoring with hand-computed answers."""

from pathlib import Path

import pytest
import torch

from mmdrn.evaluation.imagenet_loc import box_iou, localized, parse_imagenet_xml

FIXTURE = Path(__file__).parents[1] / 'data' / 'imagenet_loc'


def test_parse_single_object_file():
    ann = parse_imagenet_xml(FIXTURE / 'ILSVRC2012_val_00000001.xml')
    assert (ann.width, ann.height) == (64, 48)
    assert ann.names == ['n01443537']
    # inclusive pixel indices 8..39 x 8..31 become edges 8..40 x 8..32
    assert ann.boxes.tolist() == [[8.0, 8.0, 40.0, 32.0]]
    assert ann.boxes.dtype == torch.float32


def test_parse_several_objects_and_float_coordinates():
    ann = parse_imagenet_xml(str(FIXTURE / 'ILSVRC2012_val_00000002.xml'))
    assert (ann.width, ann.height) == (64, 64)
    assert ann.names == ['n01484850', 'n01484850', 'n01440764']
    assert ann.boxes.tolist() == [
        [0.0, 0.0, 32.0, 32.0],
        [32.0, 32.0, 64.0, 64.0],
        [16.0, 16.0, 48.0, 48.0],
    ]


def _write(tmp_path, body):
    path = tmp_path / 'a.xml'
    path.write_text(body)
    return path


def test_parse_file_without_objects(tmp_path):
    path = _write(
        tmp_path,
        '<annotation><size><width>5</width><height>6</height></size></annotation>',
    )
    ann = parse_imagenet_xml(path)
    assert (ann.width, ann.height, ann.names) == (5, 6, [])
    assert ann.boxes.shape == (0, 4)


def test_parse_rejects_bad_files(tmp_path):
    with pytest.raises(
        FileNotFoundError, match='annotation file not found: .*nope.xml'
    ):
        parse_imagenet_xml(tmp_path / 'nope.xml')
    with pytest.raises(ValueError, match='a.xml: not well-formed XML'):
        parse_imagenet_xml(_write(tmp_path, '<annotation><size>'))
    with pytest.raises(ValueError, match='a.xml: <annotation> has no <size>'):
        parse_imagenet_xml(_write(tmp_path, '<annotation></annotation>'))
    size = '<size><width>9</width><height>9</height></size>'
    box = '<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>{}</xmax><ymax>2</ymax></bndbox>'
    with pytest.raises(ValueError, match='a.xml: <size> has no <height>'):
        parse_imagenet_xml(
            _write(tmp_path, '<annotation><size><width>9</width></size></annotation>')
        )
    with pytest.raises(ValueError, match="<xmax> must be a number, got 'x'"):
        obj = f'<object><name>n1</name>{box.format("x")}</object>'
        parse_imagenet_xml(_write(tmp_path, f'<annotation>{size}{obj}</annotation>'))
    with pytest.raises(ValueError, match=r"object 'n1' has an empty box \(xmin=1,"):
        obj = f'<object><name>n1</name>{box.format(0)}</object>'
        parse_imagenet_xml(_write(tmp_path, f'<annotation>{size}{obj}</annotation>'))
    with pytest.raises(ValueError, match='an <object> has no <name>'):
        obj = f'<object>{box.format(3)}</object>'
        parse_imagenet_xml(_write(tmp_path, f'<annotation>{size}{obj}</annotation>'))
    with pytest.raises(ValueError, match="object 'n1' has no <bndbox>"):
        obj = '<object><name>n1</name></object>'
        parse_imagenet_xml(_write(tmp_path, f'<annotation>{size}{obj}</annotation>'))


def test_box_iou_known_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # identical: 1
            [0.0, 0.0, 10.0, 5.0],  # half of a: 50 / 100
            [5.0, 0.0, 15.0, 10.0],  # 50 / 150
            [10.0, 0.0, 20.0, 10.0],  # touching edge: 0
            [20.0, 20.0, 30.0, 30.0],  # disjoint: 0
            [2.0, 2.0, 2.0, 8.0],  # zero area: 0
        ]
    )
    iou = box_iou(a, b)
    assert iou.shape == (1, 6)
    assert iou[0].tolist() == [1.0, 0.5, 1 / 3, 0.0, 0.0, 0.0]
    assert box_iou(b, a).shape == (6, 1)
    degenerate = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert box_iou(degenerate, degenerate).item() == 0.0


def test_box_iou_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r'boxes2 must be an N x 4 .*got shape \(4,\)'):
        box_iou(torch.zeros(1, 4), torch.zeros(4))


def test_localized_requires_iou_strictly_above_threshold():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    # IoU exactly 0.5 with the first box, 0 with the second: not localized
    assert not localized(torch.tensor([0.0, 0.0, 10.0, 5.0]), gt)
    assert localized(torch.tensor([0.0, 0.0, 10.0, 5.0]), gt, iou_thr=0.4999)
    # 51 / 100 > 0.5
    assert localized(torch.tensor([0.0, 0.0, 10.0, 5.1]), gt)
    # the best of several boxes counts
    assert localized(torch.tensor([50.0, 50.0, 60.0, 59.0]), gt)
    assert not localized(torch.tensor([0.0, 0.0, 10.0, 10.0]), torch.zeros(0, 4))
