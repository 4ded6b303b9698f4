"""mmdrn.converters: every source layout, the three targets, DRNSeg segmentors.

Checkpoints are written by the tests from randomly initialised networks:
mmdrn's timm models saved as fyu/drn saves them (no BatchNorm counters,
optionally inside a DataParallel training checkpoint), fyu/drn's ``DRNSeg``
rebuilt here in its own layout, or a pytorchcv ``drnc26`` (an independent
implementation).
"""

import math
from pathlib import Path

import drn_checkpoint_helpers as helpers
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)
from mmdrn.converters import bilinear_up_kernel, convert, load_timm_drn
from mmdrn.utils import CheckpointError

REPO = Path(__file__).resolve().parents[1]
CLS_CONFIG = REPO / 'configs' / 'drn_cls' / 'drn-c-26_8xb32_in1k.py'
SEG_CONFIG = REPO / 'configs' / 'drn' / 'fcn_drn-c-26-d8_8xb2-46k_cityscapes-896x896.py'
FYU_CONFIG = 'configs/drn/fcn_drn-{}-d8_fyu-cityscapes-1024x2048.py'
X = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
# fyu/drn datasets/cityscapes/info.json: mean and std of the training images
FYU_MEAN = (0.29010095242892997, 0.32808144844279574, 0.28696394422942517)
FYU_STD = (0.1829540508368939, 0.18656561047509476, 0.18447508988480435)


@pytest.fixture(scope='module')
def reference():
    """A drn_c_26 with random weights and BN statistics, and its logits on X."""
    torch.manual_seed(0)
    model = helpers.randomize_(timm.create_model('drn_c_26'))
    with torch.no_grad():
        logits = model(X)
    return model, logits


def _build(config):
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    if cfg.default_scope == 'mmseg':
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    else:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.default_scope)
    return cfg, revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


# --------------------------------------------------------------------------
# fyu/drn's DRNSeg, in its own layout
# --------------------------------------------------------------------------
class FyuDRNSeg(nn.Module):
    """fyu/drn segment.py's ``DRNSeg`` around an mmdrn DRN.

    ``base`` is ``nn.Sequential`` of the classification network's children
    without pooling and classifier (fyu/drn's indices: ``base.N``), ``seg`` a
    1x1 convolution and ``up`` the fixed bilinear transposed convolution
    (kernel 16, stride 8, padding 4, one group per class). The kernel is
    written here from fyu/drn's formula, independently of the converter.
    Returns the logits at full resolution (fyu/drn's log-softmax of them has
    the same argmax).
    """

    def __init__(self, drn: nn.Module, classes: int) -> None:
        super().__init__()
        self.base = nn.Sequential(*drn.stem(), *drn.levels())
        self.seg = nn.Conv2d(drn.num_features, classes, 1)
        self.up = nn.ConvTranspose2d(
            classes, classes, 16, stride=8, padding=4, groups=classes, bias=False
        )
        f = math.ceil(16 / 2)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        with torch.no_grad():
            for i in range(16):
                for j in range(16):
                    value = (1 - abs(i / f - c)) * (1 - abs(j / f - c))
                    self.up.weight[:, 0, i, j] = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.seg(self.base(x)))


def _drnseg(name: str, classes: int = 19, seed: int = 0) -> FyuDRNSeg:
    torch.manual_seed(seed)
    drn = helpers.randomize_(timm.create_model(name, num_classes=0), seed)
    seg = FyuDRNSeg(drn, classes).eval()
    with torch.no_grad():
        seg.seg.weight.normal_(0, 0.1)
        seg.seg.bias.uniform_(-0.5, 0.5)
    return seg


def _drnseg_checkpoint(seg: FyuDRNSeg) -> dict:
    # segment.py saves DataParallel's state dict (module. prefix) with the
    # 2017 BatchNorm (no num_batches_tracked)
    return {
        f'module.{k}': v.clone()
        for k, v in seg.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }


def test_up_kernel_is_bilinear_resize_inside_the_border():
    # Why MMSeg's bilinear resize reproduces DRNSeg: away from the 4-pixel
    # border the transposed convolution is F.interpolate(align_corners=False)
    up = nn.ConvTranspose2d(3, 3, 16, stride=8, padding=4, groups=3, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_up_kernel()[None, None].expand(3, 1, 16, 16))
    x = torch.randn(1, 3, 6, 7)
    with torch.no_grad():
        ours, on_ones = up(x), up(torch.ones_like(x))
    resized = F.interpolate(x, scale_factor=8, mode='bilinear', align_corners=False)
    assert ours.shape == resized.shape == (1, 3, 48, 56)
    torch.testing.assert_close(ours[..., 4:-4, 4:-4], resized[..., 4:-4, 4:-4])
    # in the border: the resized values times one positive factor per pixel,
    # the same for every channel (the transposed convolution of ones)
    torch.testing.assert_close(ours, resized * on_ones)
    assert on_ones.min() > 0.3 and on_ones.max() < 1 + 1e-6
    assert torch.equal(on_ones, on_ones[:, :1].expand_as(on_ones))


@pytest.mark.parametrize('name, depth', [('drn_d_22', 'd-22'), ('drn_c_26', 'c-26')])
def test_drnseg_becomes_a_complete_segmentor_with_fyu_predictions(name, depth):
    seg = _drnseg(name)
    state, facts = convert(_drnseg_checkpoint(seg), name, 'mmseg')
    assert facts == dict(
        source_layout='drnseg', num_classes=19, classifier='decode_head.conv_seg'
    )
    cfg, segmentor = _build(REPO / FYU_CONFIG.format(depth))
    # complete: every key of the segmentor, nothing else
    segmentor.load_state_dict(state, strict=True)
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.mean == pytest.approx([255 * v for v in FYU_MEAN])
    assert preprocessor.std == pytest.approx([255 * v for v in FYU_STD])
    assert preprocessor.bgr_to_rgb

    # one 48x64 image as LoadImageFromFile gives it (BGR, uint8)
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(1)
    rgb = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=gen)
    meta = dict(img_shape=(48, 64), ori_shape=(48, 64))
    data = dict(inputs=[rgb.flip(0)], data_samples=[SegDataSample(metainfo=meta)])
    with torch.no_grad():
        (out,) = segmentor.test_step(data)
        # fyu/drn: ToTensor (0-1), Normalize(info.json), DRNSeg, argmax
        x = rgb.float()[None] / 255
        x = (x - torch.tensor(FYU_MEAN).view(3, 1, 1)) / torch.tensor(FYU_STD).view(
            3, 1, 1
        )
        ref = seg(x)[0]
    logits = out.seg_logits.data
    assert logits.shape == ref.shape == (19, 48, 64)
    scale = ref.abs().max().item()
    torch.testing.assert_close(
        logits[:, 4:-4, 4:-4], ref[:, 4:-4, 4:-4], rtol=1e-4, atol=1e-4 * scale
    )
    assert torch.equal(out.pred_sem_seg.data[0], ref.argmax(0))


def test_drn_a_drnseg_classifier_becomes_a_convolution():
    seg = _drnseg('drn_a_18', classes=5)
    state, facts = convert(_drnseg_checkpoint(seg), 'drn_a_18', 'mmseg')
    assert facts['classifier'] == 'decode_head.conv_seg'
    assert torch.equal(state['decode_head.conv_seg.weight'], seg.seg.weight)
    assert torch.equal(state['decode_head.conv_seg.bias'], seg.seg.bias)
    assert not any(k.startswith(('fc.', 'backbone.fc')) for k in state)


def test_drnseg_with_another_upsampling_is_refused():
    seg = _drnseg('drn_d_22')
    checkpoint = _drnseg_checkpoint(seg)
    checkpoint['module.up.weight'] = torch.rand_like(checkpoint['module.up.weight'])
    with pytest.raises(ValueError, match="up.weight is not fyu/drn's fixed bilinear"):
        convert(checkpoint, 'drn_d_22', 'mmseg')
    # the classification targets do not use up: converted as before
    state, facts = convert(checkpoint, 'drn_d_22', 'timm')
    assert facts['classifier'] == 'fc' and state['fc.weight'].shape == (19, 512, 1, 1)


def test_imagenet_checkpoint_for_mmseg_is_the_backbone(reference):
    model, _ = reference
    state, facts = convert(helpers.fyu_state(model), 'drn_c_26', 'mmseg')
    assert facts == dict(source_layout='drn', num_classes=1000, classifier='dropped')
    expected = {
        f'backbone.{k}': v for k, v in model.state_dict().items() if k[:3] != 'fc.'
    }
    assert state.keys() == expected.keys()
    _, segmentor = _build(SEG_CONFIG)
    missing, unexpected = segmentor.load_state_dict(state, strict=False)
    assert unexpected == [] and missing == [
        'decode_head.conv_seg.weight',
        'decode_head.conv_seg.bias',
    ]


def test_fyu_checkpoint_to_mmpretrain_has_the_same_logits(reference):
    model, logits = reference
    state, facts = convert(helpers.fyu_state(model), 'drn_c_26', 'mmpretrain')
    assert facts == dict(source_layout='drn', num_classes=1000, classifier='head.fc')
    _, classifier = _build(CLS_CONFIG)
    classifier.load_state_dict(state, strict=True)
    with torch.no_grad():
        helpers.assert_close(classifier(X, mode='tensor'), logits)


def test_dataparallel_training_checkpoint_to_timm(reference):
    model, logits = reference
    state = {f'module.{k}': v for k, v in helpers.fyu_state(model).items()}
    checkpoint = dict(epoch=3, arch='drn_c_26', state_dict=state, best_prec1=1.5)
    converted, _ = convert(checkpoint, 'drn_c_26', 'timm')
    assert converted.keys() == model.state_dict().keys()
    loaded = load_timm_drn(checkpoint, 'drn_c_26').eval()
    with torch.no_grad():
        helpers.assert_close(loaded(X), logits)


def test_pytorchcv_checkpoint_to_mmpretrain_matches_pytorchcv():
    state, _, logits = helpers.pytorchcv_reference('drnc26')
    converted, facts = convert(state, 'drn_c_26', 'mmpretrain')
    assert facts['source_layout'] == 'pytorchcv'
    _, classifier = _build(CLS_CONFIG)
    classifier.load_state_dict(converted, strict=True)
    with torch.no_grad():
        helpers.assert_close(classifier(helpers.X, mode='tensor'), logits)


def test_load_timm_drn_sizes_the_classifier_to_the_checkpoint():
    torch.manual_seed(0)
    three = timm.create_model('drn_d_22', num_classes=3)
    model = load_timm_drn({'state_dict': three.state_dict()}, 'drn_d_22')
    assert model.num_classes == 3
    assert torch.equal(model.fc.weight, three.fc.weight)


def test_bad_target_and_model_are_named(reference):
    model, _ = reference
    with pytest.raises(ValueError, match=r"target must be one of \['mmpretrain', "):
        convert({}, 'drn_c_26', 'onnx')
    with pytest.raises(ValueError, match=r"model must be one of \[.*got 'drn_c_27'"):
        convert(helpers.fyu_state(model), 'drn_c_27', 'timm')


def test_wrong_network_for_the_weights_is_refused(reference):
    model, _ = reference
    with pytest.raises(CheckpointError, match='missing: .*layer'):
        convert(helpers.fyu_state(model), 'drn_c_42', 'timm')


def test_headless_checkpoint_cannot_become_an_image_classifier(reference):
    model, _ = reference
    state = {k: v for k, v in helpers.fyu_state(model).items() if k[:3] != 'fc.'}
    with pytest.raises(ValueError, match='no classifier .*--target mmseg'):
        convert(state, 'drn_c_26', 'mmpretrain')
    _, facts = convert(state, 'drn_c_26', 'mmseg')  # the backbone is enough
    assert facts['num_classes'] == 0 and facts['classifier'] == 'none'
