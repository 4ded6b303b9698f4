"""Tests of FastInferenceHook (the fast path in an mmengine test loop)."""

import types

import torch
from torch import nn

from mmdrn.inference import InferenceModel
from mmdrn.openmmlab.hooks import FastInferenceHook


def _runner(model: nn.Module) -> types.SimpleNamespace:
    messages = []
    logger = types.SimpleNamespace(info=messages.append)
    return types.SimpleNamespace(model=model, logger=logger, messages=messages)


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_hook_converts_the_runner_model_once_in_place():
    model = _model()
    x = torch.rand(2, 3, 8, 8)
    expected = model(x)
    runner = _runner(model)
    hook = FastInferenceHook(dtype='float32')
    hook.before_test(runner)
    assert isinstance(runner.model, InferenceModel)
    assert runner.model.model is model  # in place: no second copy of the weights
    assert len(runner.model.folded_bn_pairs) == 1
    assert runner.messages == [
        'fast inference: 1 batch norms folded, channels_last=True, '
        "dtype=torch.float32 (float32: asked for (dtype='float32'))"
    ]
    torch.testing.assert_close(runner.model(x), expected, rtol=1e-5, atol=1e-5)
    converted = runner.model
    hook.before_test(runner)
    assert runner.model is converted
