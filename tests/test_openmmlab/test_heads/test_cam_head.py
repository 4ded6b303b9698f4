"""CAMHead (mmpretrain): classifier/dense consistency, weights, boxes in predict."""

import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmdrn.heads import cam_boxes, cam_localize, image_classifier_keys
from mmdrn.openmmlab.heads import CAMHead


def _head(num_classes=5, in_channels=512, **kwargs):
    # CAMHead is an mmpretrain head: built in that scope whatever is current
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        head = MODELS.build(
            dict(
                type='CAMHead',
                num_classes=num_classes,
                in_channels=in_channels,
                **kwargs,
            )
        )
    head.init_weights()
    return head.eval()


@pytest.mark.parametrize('name', ['drn_a_18', 'drn_c_26', 'drn_d_22'])
def test_training_logits_equal_dense_logits_averaged_on_real_drn(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        feats = (model.forward_features(torch.randn(2, 3, 48, 64)),)
        head = _head(num_classes=7, in_channels=model.num_features)
        global_logits = head(feats)
        dense = head.forward_dense(feats)
    assert dense.shape == (2, 7, 6, 8)  # output stride 8
    torch.testing.assert_close(
        dense.mean(dim=(2, 3)), global_logits, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize('name', ['drn_a_18', 'drn_c_26'])
def test_official_fc_keys_load_and_reproduce_the_classifier(name):
    # fyu/drn names the classifier fc (Linear for DRN-A, 1x1 conv otherwise);
    # inside an ImageClassifier it is head.fc
    torch.manual_seed(1)
    model = timm.create_model(name, num_classes=6).eval()
    head = _head(num_classes=6, in_channels=model.num_features)
    fc_state = {k[3:]: v for k, v in model.state_dict().items() if k.startswith('fc.')}
    assert set(fc_state) == {'weight', 'bias'}
    head.load_state_dict({'fc.' + k: v for k, v in fc_state.items()})
    assert head.fc.weight.shape == (6, model.num_features, 1, 1)
    images = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        feats = (model.forward_features(images),)
        torch.testing.assert_close(head(feats), model(images), rtol=1e-5, atol=1e-5)


def test_loss_is_cross_entropy_of_pooled_logits():
    torch.manual_seed(2)
    head = _head(num_classes=4, in_channels=8)
    feats = (torch.randn(3, 8, 5, 5),)
    samples = [DataSample().set_gt_label(label) for label in (0, 3, 1)]
    loss = head.loss(feats, samples)['loss']
    expected = F.cross_entropy(head(feats), torch.tensor([0, 3, 1]))
    torch.testing.assert_close(loss, expected)


def _blob_features():
    """2 channels on a 4x4 map: class 1 wins a 2x2 blob, class 0 elsewhere."""
    feats = torch.zeros(1, 2, 4, 4)
    feats[0, 0] = 1.0
    feats[0, 0, 1:3, 1:3] = 0.0
    feats[0, 1, 1:3, 1:3] = 5.0
    return (feats,)


def _identity_head(**kwargs):
    head = _head(num_classes=2, in_channels=2, **kwargs)
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(2)[:, :, None, None])
        head.fc.bias.zero_()
    return head


def test_predict_attaches_boxes_in_original_coordinates():
    head = _identity_head()
    # mean logits: class 0 = 12/16, class 1 = 20/16 -> class 1 predicted
    sample = DataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(64, 128)))
    sample.set_gt_label(0)
    (out,) = head.predict(_blob_features(), [sample])
    assert out.pred_label.tolist() == [1]
    # cells 1..2 -> input pixels 8..24 -> x * 4, y * 2 in the 64 x 128 original
    assert out.pred_bbox.tolist() == [32.0, 16.0, 96.0, 48.0]
    assert out.pred_bbox_valid.item() is True
    # class 0 wins (p = 0.73 > 0.1) on the ring around the blob: whole image
    assert out.gt_known_bbox.tolist() == [0.0, 0.0, 128.0, 64.0]
    assert out.gt_known_bbox_valid.item() is True
    torch.testing.assert_close(out.pred_score.sum(), torch.tensor(1.0))


def test_predict_threshold_and_missing_metadata():
    head = _identity_head(threshold=0.995)
    sample = DataSample(metainfo=dict(img_shape=(32, 32)))
    (out,) = head.predict(_blob_features(), [sample])
    # softmax(0, 5)[1] = 0.9933 is not above 0.995: fallback, flagged
    assert out.pred_bbox_valid.item() is False
    assert out.pred_bbox.tolist() == [0.0, 0.0, 32.0, 32.0]
    assert 'gt_known_bbox' not in out  # no gt_label
    (bare,) = head.predict(_blob_features())
    assert 'pred_bbox' not in bare and bare.pred_label.tolist() == [1]
    quiet = _identity_head(with_boxes=False)
    (out,) = quiet.predict(
        _blob_features(), [DataSample(metainfo=dict(img_shape=(8, 8)))]
    )
    assert 'pred_bbox' not in out


def test_predict_boxes_of_a_padded_batch_are_clipped_to_each_image():
    head = _identity_head()
    feats = (torch.cat([_blob_features()[0]] * 2),)
    small = DataSample(metainfo=dict(img_shape=(16, 24), ori_shape=(16, 24)))
    large = DataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32)))
    out = head.predict(feats, [small, large])
    # the map covers the padded 32x32 batch; the blob is at 8..24
    assert out[1].pred_bbox.tolist() == [8.0, 8.0, 24.0, 24.0]
    assert out[0].pred_bbox.tolist() == [8.0, 8.0, 24.0, 16.0]


def test_cam_matches_timm_path_with_same_weights():
    torch.manual_seed(3)
    model = timm.create_model('drn_d_22', num_classes=5).eval()
    head = _head(num_classes=5, in_channels=512, threshold=0.3)
    head.load_state_dict({'fc.weight': model.fc.weight, 'fc.bias': model.fc.bias})
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        timm_out = cam_localize(model, images, threshold=0.3)
        head_out = head.cam((model.forward_features(images),), img_size=(64, 64))
    for field in ('logits', 'probs', 'boxes'):
        torch.testing.assert_close(getattr(head_out, field), getattr(timm_out, field))
    assert head_out.valid.tolist() == timm_out.valid.tolist()
    assert head_out.labels.tolist() == timm_out.labels.tolist()
    expected = cam_boxes(timm_out.probs, timm_out.labels, 0.3, img_size=64)
    torch.testing.assert_close(timm_out.boxes, expected.boxes)


def test_cam_head_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_classes must be an int >= 1, got 0'):
        CAMHead(num_classes=0, in_channels=4)
    with pytest.raises(TypeError, match="in_channels must be an int >= 1, got '4'"):
        CAMHead(num_classes=2, in_channels='4')
    with pytest.raises(ValueError, match=r'threshold must be in \[0, 1\), got 1.0'):
        CAMHead(num_classes=2, in_channels=4, threshold=1.0)
    head = CAMHead(num_classes=2, in_channels=4)
    with pytest.raises(ValueError, match=r'N x 4 x h x w, got shape \(1, 3, 2, 2\)'):
        head((torch.randn(1, 3, 2, 2),))
    with pytest.raises(ValueError, match=r'N x 4 x h x w, got shape \(1, 4\)'):
        head((torch.randn(1, 4),))


def test_image_classifier_keys_known_mapping():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    renamed = image_classifier_keys(
        {'fc.weight': a, 'fc.bias': b, 'layer1.0.weight': c}
    )
    assert renamed == {
        'head.fc.weight': a,
        'head.fc.bias': b,
        'backbone.layer1.0.weight': c,
    }


def _classifier(num_classes):
    # ImageClassifier builds its data preprocessor through the default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=dict(type='DRN_C', depth=26, out_indices=(7,)),
                head=dict(type='CAMHead', num_classes=num_classes, in_channels=512),
            )
        )
    return model.eval()


def test_image_classifier_with_fyu_keys_matches_timm_model():
    torch.manual_seed(4)
    model = timm.create_model('drn_c_26', num_classes=5).eval()
    classifier = _classifier(5)
    # fyu/drn (= timm DRN) keys: fc.* -> head.fc.*, everything else -> backbone.*
    # (strict loading: every key must match)
    classifier.load_state_dict(image_classifier_keys(model.state_dict()))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        timm_out = cam_localize(model, images)
        feats = classifier.extract_feat(images)
        head_out = classifier.head.cam(feats, img_size=(64, 64))
        logits = classifier(images, mode='tensor')
    torch.testing.assert_close(logits, model(images), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head_out.probs, timm_out.probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(head_out.boxes, timm_out.boxes)
    assert head_out.valid.tolist() == timm_out.valid.tolist()


def test_image_classifier_test_step_feeds_the_localization_metric():
    from pathlib import Path

    from mmdrn.openmmlab.evaluation import ImageNetLocMetric

    classifier = _classifier(3)
    with torch.no_grad():
        # class 1 wins every pixel with p ~ 1: its box is the whole image
        classifier.head.fc.weight.zero_()
        classifier.head.fc.bias.copy_(torch.tensor([0.0, 9.0, 0.0]))
    samples = []
    for name, label, (height, width) in (
        ('00000001', 1, (48, 64)),
        ('00000002', 2, (64, 64)),
    ):
        meta = dict(
            img_path=f'ILSVRC2012_val_{name}.JPEG',
            img_shape=(32, 32),
            ori_shape=(height, width),
        )
        samples.append(DataSample(metainfo=meta).set_gt_label(label))
    data = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)] * 2,
        data_samples=samples,
    )
    with torch.no_grad():
        outputs = classifier.test_step(data)
    assert outputs[0].pred_bbox.tolist() == [0.0, 0.0, 64.0, 48.0]
    assert outputs[1].gt_known_bbox_valid.item() is False  # class 2 never wins
    fixture = Path(__file__).parents[2] / 'data' / 'imagenet_loc'
    metric = ImageNetLocMetric(
        ann_dir=str(fixture), classes=['n01440764', 'n01443537', 'n01484850']
    )
    metric.process(data, [o.to_dict() for o in outputs])
    # image 1: right class, but IoU(whole 64x48 image, 32x24 box) = 0.25;
    # image 2: wrong class; GT-known boxes are whole images, IoU 0.25 each
    assert metric.evaluate(2) == {
        'loc/top1_loc_acc': 0.0,
        'loc/top1_cls_acc': 50.0,
        'loc/no_box_rate': 0.0,
        'loc/top1_loc_err': 100.0,
        'loc/gt_known_loc_acc': 0.0,
    }


def test_image_classifier_loss_trains_head_and_backbone():
    torch.manual_seed(5)
    classifier = _classifier(3).train()
    samples = [DataSample().set_gt_label(2)]
    losses = classifier.loss(torch.randn(1, 3, 32, 32), samples)
    assert set(losses) == {'loss'}
    losses['loss'].backward()
    assert classifier.head.fc.weight.grad.abs().sum() > 0
    assert classifier.backbone.conv1.weight.grad.abs().sum() > 0
