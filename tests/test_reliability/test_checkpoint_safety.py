"""Weight loading never runs pickled code, and explains bad files.

The malicious checkpoint holds an object whose unpickling calls
``open(PWNED, 'w')``, i.e. creates a file: the control test shows a plain
unpickler really does create it, every mmdrn loading path then refuses the
file, names the call, and the file never appears. Truncated/empty files and
shape mismatches must give errors that say what is wrong.
"""

import functools
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import pytest
import timm
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
from mmseg.registry import MODELS
from PIL import Image

import mmdrn.openmmlab  # noqa: F401  (registration)
from mmdrn.backbones import DRN, load_drn_weights
from mmdrn.datasets import generate_demo_scenes
from mmdrn.openmmlab.compat import (
    disable_safe_loading,
    enable_safe_loading,
    load_from_local_weights_only,
)
from mmdrn.utils import CheckpointError, load_file

ROOT = Path(__file__).parents[2]
# the callable the payload pickles as (``open`` is ``io.open``)
REFUSED_CALL = 'io.open'


class _CreatesFile:
    """Unpickles as ``open(path, 'w')``: running it creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


class _MakesDirs:
    """Unpickles as ``os.makedirs(path)``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.makedirs, (self.path,)


@functools.cache
def _cached_weights(num_classes, in_chans):
    torch.manual_seed(0)
    return DRN('C', 26, num_classes=num_classes, in_chans=in_chans).state_dict()


def _weights(num_classes=1000, in_chans=3):
    """DRN-C-26 weights (a fresh dict over shared tensors)."""
    return dict(_cached_weights(num_classes, in_chans))


def _malicious(tmp_path, payload=_CreatesFile, legacy=False, nested=True):
    """A DRN-C-26 checkpoint carrying a payload; returns (file, pwned path)."""
    pwned = tmp_path / 'PWNED'
    weights = _weights()
    if nested:  # hidden among the weights, as a key of the state dict
        weights['layer1.0.conv1.weight_meta'] = payload(pwned)
        checkpoint = {'state_dict': weights}
    else:
        checkpoint = {'state_dict': weights, 'meta': payload(pwned)}
    path = tmp_path / ('legacy.pth' if legacy else 'malicious.pth')
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path, pwned


@pytest.fixture
def malicious(tmp_path):
    path, pwned = _malicious(tmp_path)
    yield path, pwned
    assert not pwned.exists(), 'the pickled payload ran'


@pytest.fixture
def mmengine_loader():
    """mmdrn's loader for plain paths in mmengine, restored afterwards."""
    enable_safe_loading()
    yield
    disable_safe_loading()


class _UnsafeUnpickler(pickle.Unpickler):
    """What loading without weights_only amounts to (tensors stubbed out)."""

    def persistent_load(self, pid):
        return None

    def find_class(self, module, name):
        if module == 'torch._utils' and name.startswith('_rebuild'):
            return lambda *args: None
        return super().find_class(module, name)


def test_control_the_payload_runs_under_a_plain_unpickler(tmp_path):
    path, pwned = _malicious(tmp_path)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('/data.pkl'))
        data = archive.read(name)
    _UnsafeUnpickler(io.BytesIO(data)).load()
    assert pwned.exists()


@pytest.mark.parametrize(
    'payload,call', [(_CreatesFile, 'io.open'), (_MakesDirs, 'os.makedirs')]
)
@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('nested', [True, False], ids=['in_state_dict', 'top_level'])
def test_load_file_refuses_and_names_the_call(tmp_path, payload, call, legacy, nested):
    path, pwned = _malicious(tmp_path, payload, legacy, nested)
    with pytest.raises(CheckpointError) as info:
        load_file(path)
    message = str(info.value)
    assert f'refusing to load {str(path)!r}: unpickling it would call {call}' in message
    assert 'never runs code from a checkpoint' in message
    # torch's advice to allow-list the call is not passed on
    assert 'add_safe_globals' not in message and 'weights_only=False' not in message
    assert not pwned.exists()


def test_backbone_loader_refuses(malicious):
    path, _ = malicious
    with pytest.raises(CheckpointError, match=f'would call {REFUSED_CALL}'):
        load_drn_weights(DRN('C', 26), path)


def test_timm_pretrained_file_refuses(malicious):
    path, _ = malicious
    # mmdrn's CheckpointError (a RuntimeError) or timm's own refusal
    refused = f'(would call |weights_only=True blocked.*){REFUSED_CALL}'
    with pytest.raises(RuntimeError, match=refused):
        timm.create_model(
            'drn_c_26', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
        )


def test_mm_backbone_init_cfg_pretrained_refuses(malicious):
    path, _ = malicious
    backbone = MODELS.build(
        dict(
            type='DRN_C',
            depth=26,
            init_cfg=dict(type='Pretrained', checkpoint=str(path)),
        )
    )
    with pytest.raises(CheckpointError, match=f'would call {REFUSED_CALL}'):
        backbone.init_weights()


def test_mmengine_loader_refuses_even_without_mmdrns_loader(malicious):
    """mmengine's own loader relies on torch's weights_only default."""
    path, _ = malicious
    assert CheckpointLoader._schemes[''] is mmengine_checkpoint.load_from_local
    with pytest.raises(pickle.UnpicklingError, match=f'GLOBAL {REFUSED_CALL}'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))


def test_mmengine_paths_refuse_with_mmdrns_message(malicious, mmengine_loader):
    """load_checkpoint, Pretrained init of any module, Runner load/resume."""
    path, _ = malicious
    with pytest.raises(CheckpointError, match=f'would call {REFUSED_CALL}'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    neck = MODELS.build(
        dict(
            type='ASPPNeck',
            in_channels=8,
            channels=4,
            init_cfg=dict(type='Pretrained', checkpoint=str(path)),
        )
    )
    with pytest.raises(CheckpointError, match=f'would call {REFUSED_CALL}'):
        neck.init_weights()


def test_mmengine_loader_keeps_mmengines_missing_file_error(tmp_path, mmengine_loader):
    with pytest.raises(FileNotFoundError, match='can not be found'):
        load_checkpoint(torch.nn.Linear(1, 1), str(tmp_path / 'missing.pth'))


def test_mmengine_loader_still_loads_mmengine_checkpoints(
    tmp_path, mmengine_loader, mmengine_checkpoints
):
    from mmengine.logging import HistoryBuffer

    path = tmp_path / 'ok.pth'
    buffer = HistoryBuffer()
    buffer.update(1.0)
    torch.save({'state_dict': {'weight': torch.ones(1, 1)}, 'hub': buffer}, path)
    loaded = load_from_local_weights_only(str(path), map_location='cpu')
    assert loaded['hub'].mean() == 1.0
    linear = torch.nn.Linear(1, 1, bias=False)
    load_checkpoint(linear, str(path))
    assert linear.weight.item() == 1.0


# --- the tools -----------------------------------------------------------

_TOOL_CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['mmdrn.openmmlab'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[128.0] * 3,
                           std=[64.0] * 3, size=(32, 32)),
    backbone=dict(type='DRN_D', depth=22, out_indices=(7,)),
    decode_head=dict(type='FCNHead', in_channels=512, channels=512, in_index=0,
                     num_convs=0, concat_input=False, num_classes=7,
                     loss_decode=dict(type='CrossEntropyLoss')),
    test_cfg=dict(mode='whole'))
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]
def _loader(split, sampler):
    return dict(batch_size=1, num_workers=0, sampler=dict(type=sampler),
                dataset=dict(type='DRNDemoDataset', data_root={root!r},
                             data_prefix=dict(img_path='img_dir/' + split,
                                              seg_map_path='ann_dir/' + split),
                             pipeline=pipeline))
train_dataloader = _loader('train', 'InfiniteSampler')
test_dataloader = val_dataloader = _loader('val', 'DefaultSampler')
del _loader
test_evaluator = val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
"""


@pytest.fixture(scope='module')
def tool_config(tmp_path_factory):
    base = tmp_path_factory.mktemp('tool')
    root = base / 'data'
    generate_demo_scenes(str(root), num_train=2, num_val=1, size=(32, 32))
    config = base / 'tiny_seg.py'
    config.write_text(_TOOL_CONFIG.format(root=str(root)))
    return config


def _run_tool(path, args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / path), *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1'),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tools_test_py_refuses_in_a_separate_process(tmp_path, tool_config, malicious):
    """As a user runs it: ``python tools/test.py CONFIG CKPT``."""
    path, _ = malicious
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'test.py'), str(tool_config), str(path)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1'),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # mmdrn's message once its mmengine loader is installed, torch's otherwise
    assert f'would call {REFUSED_CALL}' in out or f'GLOBAL {REFUSED_CALL}' in out, out[
        -3000:
    ]


@pytest.mark.parametrize(
    'args',
    [
        lambda ckpt: ['--resume', ckpt],
        lambda ckpt: ['--cfg-options', f'load_from={ckpt}'],
    ],
    ids=['resume', 'load_from'],
)
def test_tools_train_py_refuses_to_resume_or_load(
    tmp_path, tool_config, malicious, args
):
    path, _ = malicious
    argv = [str(tool_config), '--work-dir', str(tmp_path / 'work'), *args(str(path))]
    proc = _run_tool('tools/train.py', argv, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f'would call {REFUSED_CALL}' in proc.stderr, proc.stderr[-3000:]
    assert not list((tmp_path / 'work').glob('*.pth'))  # nothing was trained


def test_tools_cam_demo_refuses(tmp_path, malicious):
    path, _ = malicious
    image = tmp_path / 'img.png'
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    args = [str(image), '--checkpoint', str(path), '--out', str(tmp_path / 'o.png')]
    proc = _run_tool('tools/analysis_tools/cam_demo.py', args, tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f'would call {REFUSED_CALL}' in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / 'o.png').exists()


# --- truncated, empty and corrupt files ------------------------------------

_CUTS = {
    'empty': lambda data: b'',
    'header_only': lambda data: data[:64],
    'half': lambda data: data[: len(data) // 2],
    'last_byte_missing': lambda data: data[:-1],
    'garbage': lambda data: b'not a checkpoint\n' * 8,
    # text whose first byte is a pickle opcode: 'h' (BINGET) made torch's
    # unpickler raise KeyError: 101, 's' (SETITEM) IndexError
    'text_hello': lambda data: b'hello, these are not weights\n',
    'text_see_readme': lambda data: b'see README.md for the download link\n',
}
_EXPLAINED = (
    'truncated or corrupt',
    'the file is empty',
    'not a file written by torch.save',
)


@pytest.fixture(params=sorted(_CUTS))
def damaged(request, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(_weights(), good)
    path = tmp_path / f'{request.param}.pth'
    path.write_bytes(_CUTS[request.param](good.read_bytes()))
    return path


def test_load_file_explains_damaged_files(damaged):
    with pytest.raises(CheckpointError) as info:
        load_file(damaged)
    message = str(info.value)
    assert repr(str(damaged)) in message
    assert any(reason in message for reason in _EXPLAINED), message


@pytest.mark.parametrize('cut', ['text_hello', 'text_see_readme', 'garbage'])
def test_load_file_says_a_text_file_is_not_a_checkpoint(tmp_path, cut):
    path = tmp_path / 'weights.pth'
    path.write_bytes(_CUTS[cut](b''))
    with pytest.raises(CheckpointError) as info:
        load_file(path)
    assert str(info.value) == (
        f'cannot read checkpoint {str(path)!r}: it is not a file written by '
        f'torch.save (it begins with {path.read_bytes()[:16]!r}; torch.save '
        f'writes a zip archive, or a pickle in its legacy format)'
    )


def test_load_file_reads_safetensors_and_explains_damaged_ones(tmp_path):
    """torch.load reads a '.safetensors' path with the safetensors library."""
    safetensors_torch = pytest.importorskip('safetensors.torch')
    path = tmp_path / 'weights.safetensors'
    safetensors_torch.save_file({'w': torch.arange(4.0)}, str(path))
    assert torch.equal(load_file(path)['w'], torch.arange(4.0))
    for data in (path.read_bytes()[:-3], b'hello, these are not weights\n'):
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match='the file is truncated or corrupt'):
            load_file(path)


def test_backbone_loaders_explain_damaged_files(damaged, mmengine_loader):
    for load in (
        lambda: load_drn_weights(DRN('C', 26), damaged),
        lambda: MODELS.build(
            dict(
                type='DRN_C',
                depth=26,
                init_cfg=dict(type='Pretrained', checkpoint=str(damaged)),
            )
        ).init_weights(),
        lambda: load_checkpoint(torch.nn.Linear(1, 1), str(damaged)),
    ):
        with pytest.raises(CheckpointError) as info:
            load()
        assert any(reason in str(info.value) for reason in _EXPLAINED)


@pytest.mark.parametrize('cut', ['empty', 'half', 'last_byte_missing'])
def test_timm_pretrained_file_explains_damaged_files(tmp_path, cut):
    good = tmp_path / 'good.pth'
    torch.save(_weights(), good)
    path = tmp_path / 'damaged.pth'
    path.write_bytes(_CUTS[cut](good.read_bytes()))
    with pytest.raises(Exception) as info:
        timm.create_model(
            'drn_c_26', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))
        )
    message = str(info.value).lower()
    assert any(word in message for word in ('corrupt', 'truncated', 'empty')), message


# --- shape mismatches ---------------------------------------------------------


def test_classifier_shape_mismatch_names_keys_and_the_option(tmp_path):
    path = tmp_path / 'imagenet.pth'
    torch.save(_weights(num_classes=1000), path)
    with pytest.raises(CheckpointError) as info:
        load_drn_weights(DRN('C', 26, num_classes=19), path)
    message = str(info.value)
    assert 'fc.weight' in message and 'fc.bias' in message
    assert '1000' in message and '19' in message
    assert 'skip_classifier=True' in message


def test_backbone_shape_mismatch_names_the_keys(tmp_path):
    path = tmp_path / 'four_channels.pth'
    torch.save(_weights(in_chans=4), path)
    with pytest.raises(CheckpointError, match='conv1.weight'):
        load_drn_weights(DRN('C', 26), path)


def test_skip_classifier_loads_a_1000_class_checkpoint_into_19_classes(tmp_path):
    path = tmp_path / 'imagenet.pth'
    source = _weights(num_classes=1000)
    torch.save(source, path)
    model = DRN('C', 26, num_classes=19)
    own_fc = model.fc.weight.detach().clone()
    load_drn_weights(model, path, skip_classifier=True)
    state = model.state_dict()
    assert torch.equal(state['layer1.0.conv1.weight'], source['layer1.0.conv1.weight'])
    assert torch.equal(model.fc.weight, own_fc) and model.fc.out_channels == 19


def test_timm_and_mm_paths_drop_a_mismatched_classifier(tmp_path):
    path = tmp_path / 'imagenet.pth'
    source = _weights(num_classes=1000)
    torch.save(source, path)
    model = timm.create_model(
        'drn_c_26',
        pretrained=True,
        num_classes=19,
        pretrained_cfg_overlay=dict(file=str(path)),
    )
    assert model.fc.out_channels == 19
    assert torch.equal(model.layer8[0].conv1.weight, source['layer8.0.conv1.weight'])
    backbone = MODELS.build(
        dict(
            type='DRN_C',
            depth=26,
            init_cfg=dict(type='Pretrained', checkpoint=str(path)),
        )
    )
    backbone.init_weights()
    assert torch.equal(backbone.layer8[0].conv1.weight, source['layer8.0.conv1.weight'])


def test_safe_loading_is_switched_on_and_off_by_name():
    # importing mmdrn.openmmlab leaves mmengine's loader alone
    assert CheckpointLoader._schemes[''] is mmengine_checkpoint.load_from_local
    enable_safe_loading()
    try:
        assert CheckpointLoader._schemes[''] is load_from_local_weights_only
    finally:
        disable_safe_loading()
    assert CheckpointLoader._schemes[''] is mmengine_checkpoint.load_from_local
