"""Tests of the inference fast path (mmdrn.inference.fast_path)."""

import copy
import shutil

import pytest
import timm
import torch
from mmengine.config import ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (registers the drn_* models and DRN_C)
from mmdrn.inference import (
    InferenceModel,
    optimize_for_inference,
    resolve_dtype,
)

CL = torch.channels_last


def _randomize_norms(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope='module')
def drn():
    torch.manual_seed(0)
    model = timm.create_model('drn_d_22', num_classes=0, global_pool='')
    return _randomize_norms(model)


def _tiny_segmentor() -> nn.Module:
    torch.manual_seed(0)
    # the data preprocessor is looked up in the default scope
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = _build_segmentor()
    return _randomize_norms(revert_sync_batchnorm(model))


def _build_segmentor() -> nn.Module:
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[128.0] * 3, std=[64.0] * 3
            ),
            backbone=dict(type='DRN_D', depth=22),
            decode_head=dict(
                type='FCNHead',
                in_channels=512,
                channels=512,
                num_convs=0,
                concat_input=False,
                num_classes=4,
            ),
            test_cfg=ConfigDict(mode='whole'),
        )
    )


def _record_conv_inputs(model: nn.Module) -> list:
    seen = []

    def hook(module, args, output):
        seen.append((args[0].is_contiguous(memory_format=CL), output.dtype))

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    return seen


def test_fp32_fast_path_agrees_with_eager(drn):
    fast = optimize_for_inference(drn, dtype='float32')
    assert isinstance(fast, InferenceModel)
    assert fast.dtype == torch.float32
    assert len(fast.folded_bn_pairs) == 25  # every norm of DRN-D-22
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = drn(x)
    out = fast(x)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()
    # the original model is untouched (no inplace)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in drn.modules()) == 25


def test_channels_last_is_used_by_every_convolution(drn):
    fast = optimize_for_inference(drn, dtype='float32')
    assert all(
        p.is_contiguous(memory_format=CL) for p in fast.parameters() if p.dim() == 4
    )
    seen = _record_conv_inputs(fast.model)
    fast(torch.randn(1, 3, 32, 32))  # a contiguous (NCHW) input
    assert len(seen) == 25 and all(is_cl for is_cl, _ in seen)

    plain = optimize_for_inference(drn, dtype='float32', channels_last=False)
    seen = _record_conv_inputs(plain.model)
    plain(torch.randn(1, 3, 32, 32))
    assert not any(is_cl for is_cl, _ in seen)


def test_forward_features_and_attributes_pass_through(drn):
    fast = optimize_for_inference(drn, dtype='float32', fold_bn=False)
    assert fast.folded_bn_pairs == []
    assert fast.num_features == 512
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = drn.forward_features(x)
    out = fast.forward_features(x)
    assert not out.requires_grad
    assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()
    # wrappers can be copied (no recursion through __getattr__)
    assert copy.deepcopy(fast).num_features == 512


def test_bfloat16_autocast_on_cpu(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    torch.manual_seed(0)
    model = _randomize_norms(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 4, 1),
        )
    )
    fast = optimize_for_inference(model, dtype='bf16')
    assert fast.dtype == torch.bfloat16
    seen = _record_conv_inputs(fast.model)
    x = torch.randn(1, 3, 16, 16)
    out = fast(x)
    # the convolutions ran in bf16, the result comes back as float32
    assert [dtype for _, dtype in seen] == [torch.bfloat16] * 2
    assert out.dtype == torch.float32
    with torch.no_grad():
        expected = model(x)
    assert (out - expected).abs().max() <= 0.05 * expected.abs().max()


def test_segmentor_predict_and_test_step():
    seg = _tiny_segmentor()
    fast = optimize_for_inference(seg, dtype='float32')
    assert fast.data_preprocessor is fast.model.data_preprocessor
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        expected = seg.predict(x)[0]
    actual = fast.predict(x)[0]
    assert actual.seg_logits.data.dtype == torch.float32
    assert actual.seg_logits.data.shape == (4, 32, 48)
    assert torch.equal(actual.pred_sem_seg.data, expected.pred_sem_seg.data)
    # a runner's path: uint8 images through the data preprocessor
    data = dict(inputs=[torch.randint(0, 256, (3, 32, 48), dtype=torch.uint8)])
    with torch.no_grad():
        ref = seg.test_step(copy.deepcopy(data))[0]
    out = fast.test_step(data)[0]
    assert torch.equal(out.pred_sem_seg.data, ref.pred_sem_seg.data)


def test_inference_model_refuses_training_when_folded(drn):
    fast = optimize_for_inference(drn, dtype='float32')
    fast.eval()
    with pytest.raises(RuntimeError, match='folded batch norms is for inference'):
        fast.train()
    unfolded = optimize_for_inference(drn, dtype='float32', fold_bn=False)
    assert unfolded.train().training


def test_resolve_dtype():
    assert resolve_dtype('fp32', 'cpu') == torch.float32
    assert resolve_dtype(torch.float32, 'cuda') == torch.float32
    # 'auto' and None: see test_precision.py
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        resolve_dtype('fp16', 'cpu')
    with pytest.raises(ValueError, match=r"dtype must be one of .*got 'int8'"):
        resolve_dtype('int8', 'cpu')
    with pytest.raises(ValueError, match=r'dtype must be one of .*torch.float64'):
        resolve_dtype(torch.float64, 'cpu')
    with pytest.raises(ValueError, match=r"device_type must be one of .*got 'tpu'"):
        resolve_dtype('auto', 'tpu')


def test_bad_arguments(drn):
    with pytest.raises(TypeError, match='model must be an nn.Module, got str'):
        optimize_for_inference('drn_c_26')
    with pytest.raises(TypeError, match='compile must be a bool, a mode name'):
        optimize_for_inference(drn, compile=1)
    with pytest.raises(ValueError, match="dtype must be one of .*got 'half'"):
        optimize_for_inference(drn, dtype='half')


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the no-CUDA message')
def test_cuda_without_cuda_is_a_clear_error(drn):
    with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
        optimize_for_inference(drn, device='cuda', dtype='fp16')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_fp16(drn):
    fast = optimize_for_inference(drn, device='cuda', dtype='fp16')
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = drn(x)
    out = fast(x.cuda())
    assert out.dtype == torch.float32 and out.is_cuda
    assert (out.cpu() - expected).abs().max() <= 0.02 * expected.abs().max()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('g++') is None, reason='inductor needs g++')
def test_compile_agrees_with_eager(drn):
    fast = optimize_for_inference(drn, dtype='float32', compile=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = drn(x)
    out = fast(x)
    assert (out - expected).abs().max() <= 1e-4 * expected.abs().max()
