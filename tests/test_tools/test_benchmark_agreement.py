"""tools/analysis_tools/benchmark_agreement.py as users run it (a process)."""

import json
import re
from pathlib import Path

import pytest
import torch
from tool_runner import REPO, check, run_tool

TOOL = 'analysis_tools/benchmark_agreement.py'
DEMO_CONFIG = (
    Path(REPO) / 'configs' / 'demo' / 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'
)


def agreement(tmp_path, *args: str, ok: bool = True):
    """Run the tool; its output, and its JSON result when it wrote one."""
    out = tmp_path / 'agree.json'
    proc = run_tool(TOOL, [*args, '--json', str(out)], cwd=str(tmp_path))
    text = check(proc) if ok else proc.stdout + proc.stderr
    return text, json.loads(out.read_text()) if out.exists() else None


@pytest.fixture
def demo(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmdrn.openmmlab  # noqa: F401  (registers the DRN components)

    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'data')
    cfg.test_dataloader.dataset.generate = dict(num_train=1, num_val=2)
    config = tmp_path / 'demo.py'
    cfg.dump(str(config))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), checkpoint)
    return str(config), str(checkpoint)


def test_agreement_of_the_fp32_fast_path(demo, tmp_path):
    config, checkpoint = demo
    text, result = agreement(tmp_path, config, checkpoint, '--dtype', 'fp32')
    assert result['images'] == 2 and result['pixels'] == 2 * 64 * 64
    assert result['folded'] == 30 and result['dtype'] == 'float32'
    # BN folding changes float32 results by rounding only
    assert result['agree'] >= 0.999
    assert re.search(
        r'fast path \(float32, 30 BN folded\) vs eager fp32: [\d.]+% of 8192', text
    )


def test_agreement_refuses_a_checkpoint_that_does_not_fit(demo, tmp_path):
    config, checkpoint = demo
    state = torch.load(checkpoint)['state_dict']
    state['decode_head.conv_seg.weight'] = torch.zeros(19, 512, 1, 1)
    torch.save(dict(state_dict=state), tmp_path / 'other.pth')
    other = str(tmp_path / 'other.pth')
    text, result = agreement(tmp_path, config, other, ok=False)
    assert (
        f'benchmark_agreement.py: error: {other!r} does not fit the model of the '
        'config' in text
    )
    assert 'decode_head.conv_seg.weight (checkpoint [19, 512, 1, 1]' in text
    assert 'fast path' not in text and result is None


def test_agreement_needs_an_mmseg_config(tmp_path):
    config = tmp_path / 'cls.py'
    config.write_text(f"_base_ = '{REPO}/configs/drn_cls/drn-c-26_8xb32_in1k.py'\n")
    text, _ = agreement(tmp_path, str(config), 'unused.pth', ok=False)
    assert "error: the agreement needs an MMSeg config, got scope 'mmpretrain'" in text
    # the benchmark's --agreement (docs/precision.md) hands over to this tool
    args = [str(config), '--agreement', 'unused.pth', '--dtypes', 'fp32', 'bf16']
    proc = run_tool('analysis_tools/benchmark.py', args, cwd=str(tmp_path))
    assert proc.returncode != 0
    assert "the agreement needs an MMSeg config, got scope 'mmpretrain'" in (
        proc.stdout + proc.stderr
    )
