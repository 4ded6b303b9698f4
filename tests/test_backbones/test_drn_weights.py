"""Loading DRN checkpoints of every known layout, with output equality."""

import pytest
import timm
import torch
import torchvision
from drn_checkpoint_helpers import (
    X,
    assert_close,
    drnseg_state,
    fyu_state,
    meta_drn,
    pytorchcv_reference,
    randomize_,
)
from torch import nn

from mmdrn.backbones.drn import DRN
from mmdrn.backbones.drn_weights import (
    convert_state_dict,
    detect_layout,
    load_drn_weights,
    load_timm_drn,
)
from mmdrn.utils import CheckpointError


def _check_model(model: DRN, feats: torch.Tensor, logits: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        assert_close(model.forward_features(X), feats)
        assert_close(model(X), logits)


@pytest.mark.parametrize(
    'name, arch, depth', [('drnc26', 'C', 26), ('drnd22', 'D', 22), ('drnc58', 'C', 58)]
)
def test_pytorchcv_checkpoint_gives_identical_outputs(tmp_path, name, arch, depth):
    state, feats, logits = pytorchcv_reference(name)
    assert detect_layout(state) == 'pytorchcv'
    path = tmp_path / f'{name}.pth'
    torch.save(state, path)

    model = DRN(arch, depth)
    load_drn_weights(model, path)
    _check_model(model, feats, logits)

    timm_model = timm.create_model(
        f'drn_{arch.lower()}_{depth}',
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
    )
    _check_model(timm_model, feats, logits)


def test_pytorchcv_c58_lacks_only_the_unused_projection():
    state, _, _ = pytorchcv_reference('drnc58')
    with torch.device('meta'):
        model = DRN('C', 58)
    converted = convert_state_dict(state, 'C', model.layers)
    assert set(model.state_dict()) - set(converted) == set(model.unused_keys())


@pytest.mark.parametrize('arch, depth', [('C', 26), ('D', 22), ('B', 26), ('A', 18)])
def test_fyu_checkpoints_with_and_without_module_prefix(tmp_path, arch, depth):
    torch.manual_seed(2)
    source = randomize_(DRN(arch, depth))
    with torch.no_grad():
        expected = source(X)
    plain = fyu_state(source)
    wrapped = {
        'epoch': 90,
        'arch': f'drn_{arch.lower()}_{depth}',
        'best_prec1': 70.0,
        'state_dict': {f'module.{k}': v for k, v in plain.items()},
    }
    model = DRN(arch, depth)
    load_drn_weights(model, plain)
    with torch.no_grad():
        assert torch.equal(model.eval()(X), expected)
    path = tmp_path / 'wrapped.pth'
    torch.save(wrapped, path)
    load_drn_weights(model, path)
    timm_model = timm.create_model(
        f'drn_{arch.lower()}_{depth}',
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
    ).eval()
    with torch.no_grad():
        assert torch.equal(model(X), expected)
        assert torch.equal(timm_model(X), expected)


@pytest.mark.parametrize('arch, depth', [('C', 26), ('D', 22), ('A', 18)])
def test_drnseg_checkpoint_maps_base_and_seg(tmp_path, arch, depth):
    torch.manual_seed(4)
    source = randomize_(DRN(arch, depth, num_classes=19))
    state = drnseg_state(source, 19)
    assert detect_layout(state) == 'drnseg'
    # DRNSeg was trained through DataParallel and saved with epoch etc.
    path = tmp_path / 'drnseg.pth'
    torch.save(
        {'epoch': 3, 'state_dict': {f'module.{k}': v for k, v in state.items()}}, path
    )
    model = DRN(arch, depth, num_classes=19)
    load_drn_weights(model, path)
    with torch.no_grad():
        assert_close(model.eval().forward_features(X), source.forward_features(X))
        # seg is DRNSeg's classifier: a 1x1 conv on the final map
        dense = nn.functional.conv2d(
            model.forward_features(X), state['seg.weight'], state['seg.bias']
        )
        assert_close(model(X), dense.mean((2, 3)))
    # a 1000-class model keeps its own classifier when asked to
    imagenet = DRN(arch, depth)
    fc_before = imagenet.fc.weight.clone()
    load_drn_weights(imagenet, path, skip_classifier=True)
    assert torch.equal(imagenet.fc.weight, fc_before)
    with pytest.raises(CheckpointError, match=r'fc\.weight \(checkpoint \[19, '):
        load_drn_weights(DRN(arch, depth), path)


def test_drnseg_checkpoint_through_timm(tmp_path):
    source = randomize_(DRN('D', 22, num_classes=19))
    path = tmp_path / 'seg.pth'
    torch.save(drnseg_state(source, 19), path)
    model = timm.create_model(
        'drn_d_22',
        pretrained=True,
        num_classes=19,
        pretrained_cfg_overlay=dict(file=str(path), num_classes=19),
    ).eval()
    with torch.no_grad():
        assert_close(model.forward_features(X), source.forward_features(X))
    assert torch.equal(model.fc.bias, drnseg_state(source, 19)['seg.bias'])


def test_torchvision_resnet_loads_into_drn_a(tmp_path):
    ref = randomize_(torchvision.models.resnet50(), seed=5)
    path = tmp_path / 'resnet50.pth'
    torch.save(ref.state_dict(), path)
    model = DRN('A', 50, output_stride=32)
    load_drn_weights(model, path)
    with torch.no_grad():
        assert_close(model.eval()(X), ref(X))
    timm_model = timm.create_model(
        'drn_a_50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
    )
    assert torch.equal(timm_model.layer4[2].conv3.weight, ref.layer4[2].conv3.weight)


def test_timm_path_adapts_classes_channels_and_features(tmp_path):
    source = randomize_(DRN('C', 26))
    path = tmp_path / 'c26.pth'
    torch.save(fyu_state(source), path)
    overlay = dict(file=str(path))
    few = timm.create_model(
        'drn_c_26', pretrained=True, num_classes=5, pretrained_cfg_overlay=overlay
    )
    assert few.fc.out_channels == 5
    assert torch.equal(few.layer8[0].conv2.weight, source.layer8[0].conv2.weight)
    gray = timm.create_model(
        'drn_c_26', pretrained=True, in_chans=1, pretrained_cfg_overlay=overlay
    )
    assert torch.allclose(gray.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    headless = timm.create_model(
        'drn_c_26', pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay
    )
    assert isinstance(headless.fc, nn.Identity)
    features = timm.create_model(
        'drn_c_26', pretrained=True, features_only=True, pretrained_cfg_overlay=overlay
    ).eval()
    with torch.no_grad():
        expected = source.forward_intermediates(X, intermediates_only=True)
        for got, want in zip(features(X), expected):
            assert torch.equal(got, want)


def test_checkpoint_without_classifier_keeps_the_models(tmp_path):
    source = randomize_(DRN('D', 22))
    path = tmp_path / 'backbone.pth'
    torch.save(
        {k: v for k, v in source.state_dict().items() if not k.startswith('fc.')}, path
    )
    model = timm.create_model(
        'drn_d_22', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
    ).eval()
    with torch.no_grad():
        assert torch.equal(model.forward_features(X), source.forward_features(X))
    with pytest.raises(CheckpointError, match=r'2 missing: fc\.weight, fc\.bias'):
        load_drn_weights(meta_drn('D', 22), path)
    load_drn_weights(DRN('D', 22), path, skip_classifier=True)


def test_leftover_and_missing_keys_are_named(tmp_path):
    state = fyu_state(DRN('C', 26))
    extra = dict(
        state, **{'layer9.0.weight': torch.zeros(1), 'aux.bias': torch.zeros(1)}
    )
    with pytest.raises(
        CheckpointError, match=r'2 left over: layer9\.0\.weight, aux\.bias'
    ):
        load_drn_weights(meta_drn('C', 26), extra)
    partial = {k: v for k, v in state.items() if k != 'layer3.1.conv2.weight'}
    with pytest.raises(CheckpointError, match=r'1 missing: layer3\.1\.conv2\.weight'):
        load_drn_weights(meta_drn('C', 26), partial)
    # the same file through timm fails with the same names
    path = tmp_path / 'partial.pth'
    torch.save(partial, path)
    with (
        pytest.raises(CheckpointError, match=r'layer3\.1\.conv2\.weight'),
        torch.device('meta'),
    ):
        timm.create_model(
            'drn_c_26', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
        )
    # a DRN-D checkpoint is no DRN-C checkpoint
    with pytest.raises(
        CheckpointError, match=r'left over: layer0\.0\.weight.*missing: conv1\.weight'
    ):
        load_drn_weights(meta_drn('C', 26), fyu_state(meta_drn('D', 22)))


def test_unmappable_keys_of_other_layouts_are_named():
    state = dict(pytorchcv_reference('drnd22')[0])
    state['features.stage9.unit1.body.conv.weight'] = torch.zeros(1)
    with pytest.raises(
        CheckpointError, match=r'features\.stage9\.unit1\.body\.conv\.weight'
    ):
        load_drn_weights(meta_drn('D', 22), state)
    seg = drnseg_state(meta_drn('D', 22), 19)
    seg['base.12.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"'drnseg' checkpoint.*base\.12\.weight"):
        convert_state_dict(seg, 'D', meta_drn('D', 22).layers)


def test_bad_checkpoints_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match='cannot tell the checkpoint layout'):
        load_drn_weights(meta_drn('C', 26), {'encoder.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError, match='not tensors: step'):
        load_drn_weights(meta_drn('C', 26), {'conv1.weight': torch.zeros(1), 'step': 3})
    with pytest.raises(
        ValueError, match=r"layout must be one of \['drn', 'drnseg', 'pytorchcv'\]"
    ):
        convert_state_dict(
            {'conv1.weight': torch.zeros(1)}, 'C', (1,) * 8, layout='caffe'
        )
    state, _, _ = pytorchcv_reference('drnc26')
    with pytest.raises(
        ValueError, match='pytorchcv checkpoints exist for DRN-C and DRN-D only'
    ):
        convert_state_dict(state, 'B', meta_drn('B', 26).layers)
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        load_drn_weights(meta_drn('C', 26), tmp_path / 'missing.pth')
    with pytest.raises(
        CheckpointError, match="no checkpoint key starts with prefix 'backbone.'"
    ):
        load_drn_weights(
            meta_drn('C', 26), fyu_state(meta_drn('C', 26)), prefix='backbone.'
        )


def test_prefix_selects_a_submodule(tmp_path):
    source = randomize_(DRN('C', 26))
    mmseg_like = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    mmseg_like['decode_head.conv_seg.weight'] = torch.zeros(3, 512, 1, 1)
    model = DRN('C', 26)
    load_drn_weights(model, {'meta': {}, 'state_dict': mmseg_like}, prefix='backbone.')
    with torch.no_grad():
        assert torch.equal(model.eval()(X), source(X))


def test_output_stride_16_model_takes_output_stride_8_weights(tmp_path):
    source = randomize_(DRN('D', 22))
    path = tmp_path / 'os8.pth'
    torch.save(fyu_state(source), path)
    model = timm.create_model(
        'drn_d_22',
        pretrained=True,
        output_stride=16,
        pretrained_cfg_overlay=dict(file=str(path)),
    ).eval()
    with torch.no_grad():
        levels = model.forward_intermediates(X, intermediates_only=True)
        expected = source.forward_intermediates(X, intermediates_only=True)
    # identical up to level 4 (the strides only change from level 5 on)
    for got, want in zip(levels[:4], expected[:4]):
        assert torch.equal(got, want)
    assert levels[4].shape[-1] == -(-expected[4].shape[-1] // 2)  # ceil


def test_checkpoint_url_is_downloaded_once(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    source = randomize_(DRN('D', 22))
    path = tmp_path / 'remote' / 'drn_d_22-test.pth'
    path.parent.mkdir()
    torch.save(fyu_state(source), path)
    model = DRN('D', 22)
    load_drn_weights(model, path.as_uri())
    cached = tmp_path / 'hub' / 'hub' / 'checkpoints' / 'drn_d_22-test.pth'
    assert cached.is_file()
    assert torch.equal(model.layer8[0].weight, source.layer8[0].weight)
    path.unlink()  # the cached copy is used from now on
    load_drn_weights(DRN('D', 22), path.as_uri())


def test_shape_mismatches_are_named_with_both_shapes(tmp_path):
    imagenet = fyu_state(meta_drn('C', 26))
    with pytest.raises(
        CheckpointError,
        match=r'2 of another shape: fc\.weight \(checkpoint \[1000, 512, 1, 1\], '
        r'model \[19, 512, 1, 1\]\), fc\.bias .*skip_classifier=True',
    ):
        load_drn_weights(meta_drn('C', 26, num_classes=19), imagenet)
    with pytest.raises(CheckpointError, match=r'1 of another shape: conv1\.weight'):
        load_drn_weights(meta_drn('C', 26, in_chans=4), imagenet)


def test_timm_file_path_reads_through_load_file(tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'), torch.device('meta'):
        timm.create_model(
            'drn_d_22', pretrained=True, pretrained_cfg_overlay=dict(file=str(empty))
        )
    source = randomize_(DRN('D', 22))
    good = tmp_path / 'good.pth'
    torch.save(fyu_state(source), good)
    model = timm.create_model(
        'drn_d_22', pretrained=True, pretrained_cfg_overlay=dict(file=str(good))
    )
    assert torch.equal(model.layer0[0].weight, source.layer0[0].weight)
    # the file is remembered, the weights are not kept a second time
    assert model.pretrained_cfg['file'] == str(good)
    assert 'state_dict' not in model.pretrained_cfg


def test_load_timm_drn_sizes_the_classifier_to_the_checkpoint():
    torch.manual_seed(0)
    three = randomize_(timm.create_model('drn_d_22', num_classes=3))
    model = load_timm_drn({'state_dict': three.state_dict()}, 'drn_d_22')
    assert model.num_classes == 3 and model.pretrained_cfg['architecture'] == 'drn_d_22'
    with torch.no_grad():
        assert torch.equal(model.eval()(X), three(X))
    headless = load_timm_drn(
        {k: v for k, v in three.state_dict().items() if k[:3] != 'fc.'}, 'drn_d_22'
    )
    assert headless.num_classes == 0 and isinstance(headless.fc, nn.Identity)


def test_load_timm_drn_reads_every_layout_and_names_misfits():
    torch.manual_seed(1)
    source = randomize_(DRN('C', 26))
    wrapped = {
        'epoch': 3,
        'state_dict': {f'module.{k}': v for k, v in fyu_state(source).items()},
    }
    with torch.no_grad():
        assert torch.equal(load_timm_drn(wrapped, 'drn_c_26').eval()(X), source(X))
    state, _, logits = pytorchcv_reference('drnc26')
    with torch.no_grad():
        assert_close(load_timm_drn(state, 'drn_c_26').eval()(X), logits)
    with pytest.raises(CheckpointError, match='missing: .*layer'):
        load_timm_drn(fyu_state(source), 'drn_c_42')
    with pytest.raises(ValueError, match=r"model must be one of \[.*got 'drn_c_27'"):
        load_timm_drn(fyu_state(source), 'drn_c_27')
