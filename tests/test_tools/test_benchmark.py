"""Tests of tools/benchmark.py (tiny inputs; timings are not asserted)."""

import importlib.util
import json
import os.path as osp
import statistics
import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

import mmdrn  # noqa: F401  (registers the drn_* models)
from mmdrn.backbones.drn import DRN

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmark.py')
DEMO_CONFIG = osp.join(
    REPO, 'configs', 'demo', 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
)


def _load_tool():
    spec = importlib.util.spec_from_file_location('mmdrn_tools_benchmark', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_tool()


def _case(**kw):
    case = dict(
        spec='drn_d_22',
        role='model',
        task='infer',
        variant='eager',
        dtype='fp32',
        memory_format='contiguous',
        with_cp=False,
        shape=[32, 32],
        batch=1,
        device='cpu',
        warmup=1,
        repeat=2,
        max_seconds=30.0,
        count_flops=False,
        threads=None,
    )
    case.update(kw)
    return case


def test_gemm_rate_is_measured():
    rate = bench.gemm_rate(torch.float32, min_seconds=0.0, max_size=256, repeat=2)
    assert rate['n'] == 256
    assert rate['gflops'] > 0


@pytest.mark.parametrize('arch, depth', [('A', 18), ('A', 50), ('C', 26), ('D', 22)])
def test_plain_reference_equals_the_drn(arch, depth):
    torch.manual_seed(0)
    drn = DRN(arch, depth, num_classes=0, global_pool='').eval()
    plain = bench.plain_reference(drn)
    kinds = {type(m) for m in plain.modules()}
    # nothing but bare torch layers and the residual sum
    assert kinds <= {
        nn.Sequential,
        nn.Conv2d,
        nn.BatchNorm2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Identity,
        bench._Residual,
    }
    # copies, not shared parameters
    assert not {id(p) for p in plain.parameters()} & {id(p) for p in drn.parameters()}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), drn.forward_features(x), atol=1e-5)


def test_plain_reference_rejects_other_models():
    with pytest.raises(TypeError, match='drn must be a mmdrn DRN, got Sequential'):
        bench.plain_reference(nn.Sequential())
    with pytest.raises(ValueError, match='needs a model with a mmdrn DRN inside'):
        bench._find_drn(timm.create_model('resnet18'))


def test_build_model_specs():
    plain = bench.build_model('plain:drn_c_26', False, (32, 32))
    assert plain['kind'] == 'tensor' and isinstance(plain['model'], nn.Sequential)
    base = bench.build_model('resnet18-d8', True, (32, 32))['model']
    assert base.with_cp and base.dilations == (1, 1, 2, 4)
    assert bench.build_model('drn_c_26', True, (32, 32))['model'].grad_checkpointing
    with pytest.raises(ValueError, match="timm model name, got 'no_such_model'"):
        bench.build_model('no_such_model', False, (32, 32))
    with pytest.raises(ValueError, match="config file not found: 'missing.py'"):
        bench.build_model('missing.py', False, (32, 32))


def test_memory_measurement_sees_tensors():
    # a fresh process: in this one, freed heap blocks of earlier tests could
    # be reused without raising the resident set (why the tool isolates cases)
    script = (
        'import importlib.util, json, torch\n'
        f'spec = importlib.util.spec_from_file_location("b", {TOOL!r})\n'
        'b = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(b)\n'
        'assert b._set_malloc_mmap_threshold()\n'
        'def allocate():\n'
        '    torch.ones(16 * 2**20 // 4).add_(1)  # 16 MiB\n'
        'print(json.dumps(b._measure_memory(allocate, "cpu")))\n'
    )
    proc = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['memory_method'].startswith('peak RSS')
    assert 15 <= result['step_mb'] <= 48
    assert result['peak_mb'] >= result['step_mb']


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
def test_run_case(kw):
    case = _case(**kw)
    result = bench.run_case(case)
    assert result['status'] == 'ok'
    assert len(result['times_s']) == case['repeat']
    assert len(result['warmup_s']) == case['warmup']
    median = statistics.median(result['times_s'])
    assert result['latency_ms'] == pytest.approx(1e3 * median)
    assert result['img_s'] == pytest.approx(1 / median)
    assert result['peak_mb'] > 0
    if kw.get('count_flops'):
        # mmengine's count (MACs) of DRN-D-22 at 32x32, and its parameters
        # without the classifier
        assert 0.2e9 < result['macs'] < 0.3e9
        assert 15.8e6 < result['params'] < 16.0e6


def test_run_case_refuses_fp16_on_cpu():
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        bench.run_case(_case(dtype='fp16'))


def test_summarize_ratios():
    def result(**kw):
        fields = dict(
            status='ok', compute_dtype='float32', step_mb=100.0, peak_mb=900.0
        )
        fields.update(kw)
        return _case(**fields)

    results = [
        result(latency_ms=100.0, macs=1e9),
        result(variant='fast', latency_ms=25.0),
        result(task='train', latency_ms=300.0),
        result(task='train', with_cp=True, latency_ms=400.0, step_mb=50.0),
        result(spec='resnet18-d8', role='baseline', latency_ms=50.0, macs=5e8),
    ]
    gemm = {'float32': {'gflops': 40.0}}
    bench.summarize(results, gemm)
    eager, fast, train, train_cp, base = results
    assert eager['gflops'] == pytest.approx(20.0)  # 2 x 1 GMAC in 0.1 s
    assert eager['gemm_fraction'] == pytest.approx(0.5)
    assert fast['speedup'] == pytest.approx(4.0)
    assert fast['gflops'] == pytest.approx(80.0)
    assert train['gflops'] == pytest.approx(20.0)  # 3 x forward
    assert train_cp['memory_ratio'] == pytest.approx(0.5)
    assert eager['vs_baseline'] == pytest.approx(0.5)
    lines = bench.headline(results, gemm)
    assert any('4.00x eager fp32' in line for line in lines)
    assert any('= 0.50x' in line for line in lines)


def test_main_writes_table_json_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / 'run.json'
    md = tmp_path / 'run.md'
    png = tmp_path / 'plot.png'
    report = bench.main(
        [
            'drn_d_22',
            '--shape', '32', '32',
            '--warmup', '0',
            '--repeat', '1',
            '--no-isolate',
            '--dtypes', 'fp32',
            '--memory-formats', 'contiguous',
            '--json', str(out),
            '--markdown', str(md),
            '--plot', str(png),
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert 'latency ms' in text and 'GEMM rate (same run)' in text
    assert 'eager fp32 speed / plain reference' in text
    specs = [(r['spec'], r['variant']) for r in report['results']]
    assert specs == [
        ('drn_d_22', 'eager'),
        ('drn_d_22', 'fast'),
        ('plain:drn_d_22', 'eager'),
        ('resnet18-d8', 'eager'),
    ]
    assert all(r['status'] == 'ok' for r in report['results'])
    saved = json.loads(out.read_text())
    assert saved['gemm']['float32']['gflops'] > 0
    assert saved['machine']['torch'] == torch.__version__
    assert md.read_text().startswith('| model | task |')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the same tables again from the saved results, without measuring
    again = tmp_path / 'again.md'
    bench.main(['--from-json', str(out), '--markdown', str(again)])
    assert again.read_text() == md.read_text()


def test_make_cases_grid():
    args = bench.parse_args(
        ['drn_d_22', '--tasks', 'infer', 'train', '--with-cp', 'both']
        + ['--variants', 'eager', 'fast', '--dtypes', 'fp32', 'auto']
        + ['--baselines', 'resnet18-d8', 'resnet50-d8']
    )
    cases = bench.make_cases(args)
    keys = [
        (c['spec'], c['task'], c['variant'], c['memory_format'], c['with_cp'])
        for c in cases
    ]
    assert len(keys) == len(set(keys))  # 'auto' is fp32 or bf16: no duplicates
    assert keys[0] == ('drn_d_22', 'infer', 'eager', 'contiguous', False)
    train = [k for k in keys if k[0] == 'drn_d_22' and k[1] == 'train']
    assert {k[2] for k in train} == {'eager'}
    assert {k[4] for k in train} == {False, True}
    assert ('plain:drn_d_22', 'infer', 'eager', 'contiguous', False) in keys
    assert [c['spec'] for c in cases if c['role'] == 'baseline'] == [
        'resnet18-d8',
        'resnet18-d8',
        'resnet50-d8',
        'resnet50-d8',
    ]
    # FLOPs are counted once per model
    assert sum(c['count_flops'] for c in cases if c['spec'] == 'drn_d_22') == 1


def test_bad_command_lines(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args([])
    assert 'give at least one model' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(['drn_d_22', '--device', 'cpu', '--dtypes', 'fp16'])
    assert "--dtypes fp16 needs --device cuda; on CPU use 'bf16'" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        bench.parse_args(['drn_d_22', '--repeat', '0'])
    assert '--repeat must be >= 1, got 0' in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            bench.parse_args(['drn_d_22', '--device', 'cuda'])
        assert 'CUDA is not available' in capsys.readouterr().err


def test_agreement_on_the_demo_config(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    # the demo config on two generated scenes
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'data')
    cfg.test_dataloader.dataset.generate = dict(num_train=1, num_val=2)
    config = tmp_path / 'demo.py'
    cfg.dump(str(config))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    result = bench.agreement(str(config), str(checkpoint), dtype='fp32')
    assert result['images'] == 2 and result['pixels'] == 2 * 64 * 64
    assert result['folded'] == 30
    assert result['agree'] >= 0.999


@pytest.mark.slow
def test_isolated_worker_reports_errors_as_rows():
    (result,) = bench._run_isolated([_case(spec='no_such_model')], timeout=300)
    assert result['status'] == 'error'
    assert 'no_such_model' in result['error']


def test_rounds_pool_the_timed_runs():
    first = _case(status='ok', times_s=[1.0, 3.0], warmup_s=[5.0], step_mb=10.0)
    later = _case(status='ok', times_s=[2.0, 2.5], warmup_s=[4.0], step_mb=99.0)
    merged = bench.merge_rounds(first, later)
    assert merged['times_s'] == [1.0, 3.0, 2.0, 2.5]
    assert merged['latency_ms'] == pytest.approx(2250.0)
    assert merged['img_s'] == pytest.approx(1 / 2.25)
    assert merged['step_mb'] == 10.0 and merged['rounds'] == 2
    failed = bench.merge_rounds(merged, dict(later, status='timeout'))
    assert failed['times_s'] == [1.0, 3.0, 2.0, 2.5]
    assert failed['failed_rounds'] == 1
    with pytest.raises(SystemExit):
        bench.parse_args(['drn_d_22', '--rounds', '0'])


def test_interleaved_cases_share_turns():
    cases = [
        _case(repeat=3),
        _case(spec='no_such_model'),
        _case(variant='fast', memory_format='channels_last', repeat=2),
    ]
    eager, bad, fast = bench.run_interleaved(cases)
    assert bad['status'] == 'error' and 'no_such_model' in bad['error']
    # the smallest repeat sets the number of turns for every case
    assert len(eager['times_s']) == len(fast['times_s']) == 2
    assert eager['status'] == fast['status'] == 'ok'
    assert eager['memory_method'].endswith('(interleaved run)')
    assert eager['latency_ms'] == pytest.approx(
        1e3 * statistics.median(eager['times_s'])
    )
