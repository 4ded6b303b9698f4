import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmdrn.openmmlab.optim_wrapper import CPUAmpOptimWrapper


def test_cpu_amp_runs_forward_in_bfloat16_and_updates_float32_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    wrapper = build_optim_wrapper(
        model,
        dict(type='CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
    )
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    before = model[0].weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.rand(2, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert model[0].weight.dtype == torch.float32
    assert not torch.equal(model[0].weight, before)
    # Outside the context the model runs in float32 again.
    assert model(torch.rand(1, 3, 8, 8)).dtype == torch.float32
