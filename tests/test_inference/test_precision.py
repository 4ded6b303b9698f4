"""Tests of the measured precision choice (mmdrn.inference.precision)."""

import json

import pytest
import torch
from torch import nn

from mmdrn.inference import optimize_for_inference, precision, resolve_dtype
from mmdrn.inference.precision import (
    MIN_SPEEDUP,
    choose_dtype,
    precision_cache_file,
    precision_decision,
)


@pytest.mark.parametrize(
    'times, expected',
    [
        (dict(float32=10.0, bfloat16=5.0), torch.bfloat16),
        (dict(float32=10.0, bfloat16=20.0), torch.float32),
        # faster, but by less than the margin
        (dict(float32=10.0, bfloat16=10.0 / (MIN_SPEEDUP - 0.01)), torch.float32),
        (dict(float32=10.0, bfloat16=10.0 / MIN_SPEEDUP), torch.bfloat16),
        # CUDA: bfloat16 unless float16 is faster than it by the margin too
        (dict(float32=10.0, float16=4.0, bfloat16=4.2), torch.bfloat16),
        (dict(float32=10.0, float16=2.0, bfloat16=4.0), torch.float16),
        (dict(float32=10.0, float16=4.0, bfloat16=11.0), torch.float16),
        (dict(float32=10.0, float16=9.5, bfloat16=9.9), torch.float32),
    ],
)
def test_choose_dtype(times, expected):
    assert choose_dtype(times) == expected


def test_choose_dtype_rejects_bad_times():
    with pytest.raises(ValueError, match=r'must have float32 .*got \[.bfloat16.\]'):
        choose_dtype(dict(bfloat16=1.0))
    with pytest.raises(ValueError, match=r"got \['float32', 'int8'\]"):
        choose_dtype(dict(float32=1.0, int8=0.5))
    with pytest.raises(ValueError, match='times_ms must be positive'):
        choose_dtype(dict(float32=1.0, bfloat16=0.0))


def test_fast_bf16_is_chosen_and_cached(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    decision = precision_decision('cpu')
    assert decision.dtype == torch.bfloat16
    assert decision.source == 'measured'
    assert decision.speedup(torch.bfloat16) == pytest.approx(2.5)
    assert 'bfloat16: measured faster than float32' in decision.reason
    assert 'bfloat16 2.50x float32' in decision.reason
    assert 'float32 10.00 ms, bfloat16 4.00 ms' in decision.reason
    assert precision_cache_file() == str(fake_precision_probe.cache)
    entries = json.loads(fake_precision_probe.cache.read_text())['entries']
    (key,) = entries
    assert key.startswith('cpu|') and f'torch {torch.__version__}' in key
    assert entries[key]['dtype'] == 'bfloat16'
    assert entries[key]['times_ms'] == dict(float32=10.0, bfloat16=4.0)
    # the write was atomic: no temporary file left beside the cache
    assert [p.name for p in fake_precision_probe.cache.parent.iterdir()] == [
        'precision.json'
    ]
    assert fake_precision_probe.calls == ['cpu']


def test_slow_bf16_gives_fp32(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=18.0)
    decision = precision_decision('cpu')
    assert decision.dtype == torch.float32
    assert decision.reason.startswith(
        f'float32: no lower precision ran >= {MIN_SPEEDUP}x faster'
    )
    assert 'bfloat16 0.56x float32' in decision.reason


def test_cached_decision_is_reused_without_measuring(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    precision_decision('cpu')
    assert precision_decision('cpu') is precision_decision('cpu')  # in-process
    # a new process (empty memo) with a probe that would say the opposite
    fake_precision_probe(float32=10.0, bfloat16=40.0, keep_cache=True)
    decision = precision_decision('cpu')
    assert decision.source == 'cache' and decision.dtype == torch.bfloat16
    # the cache file stores names sorted; the reason still puts float32 first
    assert 'float32 10.00 ms, bfloat16 4.00 ms; cached in' in decision.reason
    assert fake_precision_probe.calls == ['cpu']
    # refresh measures again and replaces the entry
    assert precision_decision('cpu', refresh=True).dtype == torch.float32
    assert fake_precision_probe.calls == ['cpu', 'cpu']
    entries = json.loads(fake_precision_probe.cache.read_text())['entries']
    assert [e['dtype'] for e in entries.values()] == ['float32']


def test_entries_of_other_machines_are_kept(fake_precision_probe):
    cache = fake_precision_probe.cache
    cache.parent.mkdir()
    other = dict(dtype='float32', times_ms=dict(float32=1.0, bfloat16=2.0))
    cache.write_text(json.dumps(dict(entries={'cpu|other': other})))
    fake_precision_probe(float32=10.0, bfloat16=4.0, keep_cache=True)
    assert precision_decision('cpu').source == 'measured'
    entries = json.loads(cache.read_text())['entries']
    assert len(entries) == 2 and entries['cpu|other'] == other


@pytest.mark.parametrize(
    'text', ['{"entries": {"cpu|', '[1, 2]', '{"entries": []}', '\x00\x01']
)
def test_corrupt_cache_is_ignored_with_a_warning(fake_precision_probe, text):
    cache = fake_precision_probe.cache
    cache.parent.mkdir()
    cache.write_text(text)
    fake_precision_probe(float32=10.0, bfloat16=4.0, keep_cache=True)
    with pytest.warns(UserWarning, match='ignoring the precision cache'):
        decision = precision_decision('cpu')
    assert decision.source == 'measured' and decision.dtype == torch.bfloat16
    assert json.loads(cache.read_text())['entries']  # rewritten, valid


def test_malformed_entry_is_measured_again(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    precision_decision('cpu')
    cache = fake_precision_probe.cache
    data = json.loads(cache.read_text())
    (key,) = data['entries']
    data['entries'][key]['times_ms'] = dict(bfloat16=1.0)  # no float32
    cache.write_text(json.dumps(data))
    fake_precision_probe(float32=10.0, bfloat16=30.0, keep_cache=True)
    with pytest.warns(UserWarning, match='ignoring the malformed entry'):
        assert precision_decision('cpu').dtype == torch.float32
    assert len(fake_precision_probe.calls) == 2


def test_unwritable_cache_keeps_the_decision_for_the_process(
    fake_precision_probe, monkeypatch, tmp_path
):
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    monkeypatch.setenv('MMDRN_PRECISION_CACHE', str(blocker / 'precision.json'))
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    with pytest.warns(UserWarning, match='could not write the precision cache'):
        assert precision_decision('cpu').dtype == torch.bfloat16
    assert precision_decision('cpu').source == 'measured'  # memo, no new warning
    assert fake_precision_probe.calls == ['cpu']


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv('MMDRN_PRECISION_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert precision_cache_file() == str(tmp_path / 'mmdrn' / 'precision.json')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path))
    expected = tmp_path / '.cache' / 'mmdrn' / 'precision.json'
    assert precision_cache_file() == str(expected)


def test_auto_follows_the_measurement(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    assert resolve_dtype('auto', 'cpu') == torch.bfloat16
    assert resolve_dtype(None, 'cpu') == torch.bfloat16
    fake_precision_probe(float32=10.0, bfloat16=20.0)
    assert resolve_dtype('auto', 'cpu') == torch.float32


def test_a_named_dtype_always_wins(fake_precision_probe):
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    assert resolve_dtype('fp32', 'cpu') == torch.float32
    assert resolve_dtype(torch.bfloat16, 'cpu') == torch.bfloat16
    fake_precision_probe(float32=10.0, bfloat16=20.0)
    with pytest.warns(UserWarning) as record:
        assert resolve_dtype('bf16', 'cpu') == torch.bfloat16
    (warning,) = record
    assert str(warning.message).startswith(
        'bfloat16 was measured slower than float32 on this CPU (0.50x float32; '
        "'auto' picks float32)"
    )
    assert 'AMX' not in str(warning.message)


def test_optimize_for_inference_auto_records_why(fake_precision_probe):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    fake_precision_probe(float32=10.0, bfloat16=4.0)
    fast = optimize_for_inference(model)
    assert fast.dtype == torch.bfloat16
    assert fast.dtype_reason == precision_decision('cpu').reason
    fake_precision_probe(float32=10.0, bfloat16=40.0)
    assert optimize_for_inference(model).dtype == torch.float32
    forced = optimize_for_inference(model, dtype='float32')
    assert forced.dtype_reason == "float32: asked for (dtype='float32')"


def test_device_type_is_checked():
    with pytest.raises(ValueError, match=r"device_type must be one of .*got 'tpu'"):
        precision_decision('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not"):
            precision_decision('cuda')
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not"):
            resolve_dtype('auto', 'cuda')


def test_the_real_probe(monkeypatch, tmp_path):
    monkeypatch.setenv('MMDRN_PRECISION_CACHE', str(tmp_path / 'p.json'))
    monkeypatch.setattr(precision, '_DECISIONS', {})
    threads = torch.get_num_threads()
    decision = precision_decision('cpu')
    assert torch.get_num_threads() == threads  # restored after the 1-thread run
    assert decision.source == 'measured'
    assert sorted(decision.times_ms) == ['bfloat16', 'float32']
    assert all(0 < t < float('inf') for t in decision.times_ms.values())
    assert decision.dtype == choose_dtype(decision.times_ms)
    assert decision.dtype in (torch.float32, torch.bfloat16)
