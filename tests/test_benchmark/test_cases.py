"""mmdrn.benchmark.cases: models, the plain reference, cases and running them.

Tiny inputs; timings are not asserted, only how they are collected.
"""

import statistics
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

import mmdrn.openmmlab  # noqa: F401  (drn_* timm models and DRN config types)
from mmdrn.backbones.drn import DRN
from mmdrn.benchmark import cases
from mmdrn.inference import resolve_dtype

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / 'configs' / 'demo' / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'


@pytest.mark.parametrize('arch, depth', [('A', 18), ('A', 50), ('C', 26), ('D', 22)])
def test_plain_reference_equals_the_drn(arch, depth):
    torch.manual_seed(0)
    drn = DRN(arch, depth, num_classes=0, global_pool='').eval()
    plain = cases.plain_reference(drn)
    kinds = {type(m) for m in plain.modules()}
    # nothing but bare torch layers and the residual sum
    assert kinds <= {
        nn.Sequential,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Identity,
        cases.Residual,
    }
    # copies, not shared parameters
    assert not {id(p) for p in plain.parameters()} & {id(p) for p in drn.parameters()}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), drn.forward_features(x), atol=1e-5)


def test_plain_reference_rejects_other_models():
    with pytest.raises(TypeError, match='drn must be a mmdrn DRN, got Sequential'):
        cases.plain_reference(nn.Sequential())
    with pytest.raises(ValueError, match='needs a model with a mmdrn DRN inside'):
        cases.find_drn(timm.create_model('resnet18'))


def test_build_model_specs():
    plain = cases.build_model('plain:drn_c_26', False, (32, 32))
    assert plain['kind'] == 'tensor' and isinstance(plain['model'], nn.Sequential)
    base = cases.build_model('resnet18-d8', True, (32, 32))['model']
    assert base.with_cp and base.dilations == (1, 1, 2, 4)
    assert cases.build_model('drn_c_26', True, (32, 32))['model'].grad_checkpointing
    config = cases.build_model(str(DEMO_CONFIG), False, (32, 32))
    assert config['kind'] == 'mmseg'
    assert config['model'].data_preprocessor.size == (32, 32)  # no padding
    with pytest.raises(ValueError, match="timm model name, got 'no_such_model'"):
        cases.build_model('no_such_model', False, (32, 32))
    with pytest.raises(ValueError, match="config file not found: 'missing.py'"):
        cases.build_model('missing.py', False, (32, 32))
    with pytest.raises(ValueError, match='plain: references have no with_cp'):
        cases.build_model('plain:drn_c_26', True, (32, 32))


@pytest.mark.parametrize(
    'kw',
    [
        dict(count_flops=True),
        dict(variant='fast', memory_format='channels_last'),
        dict(task='train', with_cp=True, repeat=1),
        dict(spec='plain:drn_d_22'),
    ],
    ids=['eager-flops', 'fast-cl', 'train-cp', 'plain'],
)
def test_run_case(kw, make_case):
    case = make_case(**kw)
    result = cases.run_case(case)
    assert result['status'] == 'ok'
    assert len(result['times_s']) == case['repeat']
    assert len(result['warmup_s']) == case['warmup']
    median = statistics.median(result['times_s'])
    assert result['latency_ms'] == pytest.approx(1e3 * median)
    assert result['best_ms'] == pytest.approx(1e3 * min(result['times_s']))
    assert result['img_s'] == pytest.approx(1 / median)
    assert result['peak_mb'] > 0
    if kw.get('count_flops'):
        # mmengine's count (MACs) of DRN-D-22 at 32x32, and its parameters
        # without the classifier
        assert 0.2e9 < result['macs'] < 0.3e9
        assert 15.8e6 < result['params'] < 16.0e6


def test_run_case_refuses_fp16_on_cpu(make_case):
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        cases.run_case(make_case(dtype='fp16'))


def test_make_cases_grid():
    made = cases.make_cases(
        ['drn_d_22'],
        tasks=['infer', 'train'],
        with_cp='both',
        variants=['eager', 'fast'],
        dtypes=['fp32', 'auto'],
        baselines=['resnet18-d8', 'resnet50-d8'],
        shape=[32, 32],
        device='cpu',
    )
    keys = [
        (c['spec'], c['task'], c['variant'], c['dtype'], c['memory_format'])
        + (c['with_cp'],)
        for c in made
    ]
    assert len(keys) == len(set(keys))
    # 'auto' is what the fast path picks on this machine
    auto = cases.DTYPE_NAMES[resolve_dtype('auto', 'cpu')]
    assert {c['dtype'] for c in made} == {'fp32', auto}
    keys = [k[:3] + k[4:] for k in keys if k[3] == 'fp32']
    assert keys[0] == ('drn_d_22', 'infer', 'eager', 'contiguous', False)
    train = [k for k in keys if k[0] == 'drn_d_22' and k[1] == 'train']
    assert {k[2] for k in train} == {'eager'}
    assert {k[4] for k in train} == {False, True}
    assert ('plain:drn_d_22', 'infer', 'eager', 'contiguous', False) in keys
    assert [c['spec'] for c in made if c['role'] == 'baseline'] == [
        'resnet18-d8',
        'resnet18-d8',
        'resnet50-d8',
        'resnet50-d8',
    ]
    # FLOPs are counted once per model; common fields reach every case
    assert sum(c['count_flops'] for c in made if c['spec'] == 'drn_d_22') == 1
    assert all(c['shape'] == [32, 32] and c['device'] == 'cpu' for c in made)
    # a dtype named twice is measured once
    twice = cases.make_cases(['drn_d_22'], dtypes=['fp32', 'fp32'], device='cpu')
    variants = [c['variant'] for c in twice if c['role'] == 'model']
    assert variants == ['eager', 'eager', 'fast', 'fast']
    with pytest.raises(ValueError, match="with_cp must be 'off', 'on' or 'both'"):
        cases.make_cases(['drn_d_22'], with_cp='yes', device='cpu')


def test_interleaved_cases_share_turns(make_case):
    eager, bad, fast = cases.run_interleaved(
        [
            make_case(repeat=3),
            make_case(spec='no_such_model'),
            make_case(variant='fast', memory_format='channels_last', repeat=2),
        ]
    )
    assert bad['status'] == 'error' and 'no_such_model' in bad['error']
    # the smallest repeat sets the number of turns for every case
    assert len(eager['times_s']) == len(fast['times_s']) == 2
    assert eager['status'] == fast['status'] == 'ok'
    assert eager['memory_method'].endswith('(interleaved run)')
    assert eager['latency_ms'] == pytest.approx(
        1e3 * statistics.median(eager['times_s'])
    )


@pytest.mark.slow
def test_isolated_worker_reports_results_and_errors_as_rows(make_case):
    good, bad = cases.run_isolated([make_case(), make_case(spec='no_such_model')], 300)
    assert good['status'] == 'ok' and len(good['times_s']) == 2
    assert good['memory_method'].startswith('peak RSS')
    assert bad['status'] == 'error' and 'no_such_model' in bad['error']
