"""DRNs against MMSegmentation's own dilated ResNets on the demo data.

Every model is trained and tested by mmdrn's ``tools/train.py`` and
``tools/test.py`` (``tools/dist_train.sh`` / ``dist_test.sh`` with
``launcher='pytorch'``), each run in its own process, from the configs in
``configs/demo/``, which share one training recipe (the DRN-C-26 demo
config's, fixed before any comparison):

* DRN-A-18 (the paper's dilated ResNet-18, which grids), DRN-C-26
  (degridded) and DRN-D-22, with the paper's plain head (1x1 classifier);
* MMSegmentation's ``ResNetV1c``-18 at output stride 8 (its ``*-r18-d8``
  backbone) with the same plain head, and with MMSegmentation's DeepLabV3
  head (``ASPPHead``), both built from MMSegmentation's own base configs.

The headline pair (DRN-C-26 and ResNetV1c-18-D8, same head) is trained with
several seeds, the others with one (both adjustable). For every model the
study collects mIoU and per-class IoU on the validation scenes, parameters
and FLOPs (mmengine's complexity counter) and CPU inference throughput (all
models timed in turns in one process), and writes a markdown table, a JSON
file, a bar chart, a picture of the same validation scenes' predictions side
by side and the activation maps of DRN-A-18 and DRN-C-26.

The per-class IoU is computed from the label maps ``tools/test.py --out``
writes, with MMSegmentation's own ``IoUMetric`` arithmetic; its mean is
checked against the mIoU that ``tools/test.py`` logged.
"""

import glob
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ...datasets.demo_scenes import CLASSES, PALETTE
from ...utils.validation import check_int
from .measure import measure_models

__all__ = [
    'DEMO_MODELS',
    'HEADLINE',
    'SMALL_CLASSES',
    'QUICK_ITERS',
    'DemoModel',
    'StudySettings',
    'run_plan',
    'schedule_options',
    'data_options',
    'tool_command',
    'class_iou',
    'spread',
    'compare_pair',
    'run_study',
]


@dataclass(frozen=True)
class DemoModel:
    """A model of the study: its key, display name and demo config."""

    key: str
    label: str
    config: str


DEMO_MODELS = (
    DemoModel('drn-a-18', 'DRN-A-18', 'fcn_drn-a-18-d8_1xb8-1k_drn-demo-64x64.py'),
    DemoModel('drn-c-26', 'DRN-C-26', 'fcn_drn-c-26-d8_1xb8-1k_drn-demo-64x64.py'),
    DemoModel('drn-d-22', 'DRN-D-22', 'fcn_drn-d-22-d8_1xb8-1k_drn-demo-64x64.py'),
    DemoModel('r18-d8', 'ResNetV1c-18-D8', 'fcn_r18-d8_1xb8-1k_drn-demo-64x64.py'),
    DemoModel(
        'deeplabv3-r18-d8',
        'DeepLabV3 ResNetV1c-18-D8',
        'deeplabv3_r18-d8_1xb8-1k_drn-demo-64x64.py',
    ),
)
_BY_KEY = {m.key: m for m in DEMO_MODELS}
# The pair the question is about: degridded DRN vs MMSeg's dilated ResNet,
# same plain head.
HEADLINE = ('drn-c-26', 'r18-d8')
# The activation-map picture: the gridding DRN and its degridded version.
GRIDDING_PAIR = ('drn-a-18', 'drn-c-26')
# The thin and small classes, shown in their own columns.
SMALL_CLASSES = ('pole', 'wire', 'sign')
# --quick: iterations of every run (one seed each).
QUICK_ITERS = 50
LAUNCHERS = ('none', 'pytorch')


@dataclass
class StudySettings:
    """What :func:`run_study` runs and where.

    Attributes:
        configs_dir (str): Folder of the demo configs (``configs/demo``).
        tools_dir (str): mmdrn's ``tools/`` (train.py, test.py, dist_*.sh).
        work_dir (str): Everything is written here.
        models (tuple[str]): Keys of :data:`DEMO_MODELS` to run.
        seeds (int): Seeds of the :data:`HEADLINE` models (0, 1, ...).
        other_seeds (int): Seeds of the other models.
        iters (int, optional): Training iterations of every run (the
            schedule is shortened with it); None keeps the configs'.
        data_root (str, optional): An existing demo dataset to use instead
            of the configs' (which is drawn on first use).
        launcher (str): ``'none'`` (one process per run) or ``'pytorch'``
            (``tools/dist_train.sh`` / ``dist_test.sh`` with ``gpus``
            processes).
        gpus (int): Processes per run with the ``'pytorch'`` launcher.
        cpu (bool): Train and test on CPU even when a GPU is visible.
        cfg_options (list[str]): ``key=value`` overrides passed to both
            tools and used when the models are measured.
        resume (bool): Reuse finished runs found in ``work_dir`` and resume
            unfinished trainings; without it an existing run is an error.
        jobs (int): Runs at a time (each its own processes); more than one
            only with the ``'none'`` launcher.
        num_scenes (int): Validation scenes in the pictures.
        speed_batch (int): Batch size of the throughput measurement.
        speed_threads (int): torch threads of the throughput measurement.
        speed_rounds (int): Turns in which the models are timed.
        speed_time (float): Seconds of timed runs per model per turn.
        gridding_scale (float): Enlargement of the scenes for the activation
            maps: at the demo's 64x64 the maps are 8x8, too coarse to show a
            grid pattern; 4 gives 32x32 maps.
        python (str): Interpreter of the tool processes.
    """

    configs_dir: str
    tools_dir: str
    work_dir: str
    models: Tuple[str, ...] = tuple(m.key for m in DEMO_MODELS)
    seeds: int = 3
    other_seeds: int = 1
    iters: Optional[int] = None
    data_root: Optional[str] = None
    launcher: str = 'none'
    gpus: int = 1
    cpu: bool = False
    cfg_options: List[str] = field(default_factory=list)
    resume: bool = False
    jobs: int = 1
    num_scenes: int = 6
    speed_batch: int = 8
    speed_threads: int = 1
    speed_rounds: int = 3
    speed_time: float = 1.0
    gridding_scale: float = 4.0
    python: str = sys.executable

    def check(self) -> None:
        """Raise ValueError/TypeError naming a bad setting."""
        unknown = [k for k in self.models if k not in _BY_KEY]
        if unknown or not self.models:
            raise ValueError(
                f'models must be a non-empty selection of {tuple(_BY_KEY)}, '
                f'got {tuple(self.models)!r}'
            )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f'models must not repeat, got {tuple(self.models)!r}')
        check_int('seeds', self.seeds)
        check_int('other_seeds', self.other_seeds)
        check_int('gpus', self.gpus)
        check_int('jobs', self.jobs)
        check_int('num_scenes', self.num_scenes)
        check_int('speed_batch', self.speed_batch)
        check_int('speed_threads', self.speed_threads)
        check_int('speed_rounds', self.speed_rounds)
        if self.iters is not None:
            check_int('iters', self.iters)
        if self.launcher not in LAUNCHERS:
            raise ValueError(
                f'launcher must be one of {LAUNCHERS}, got {self.launcher!r}'
            )
        if self.jobs > 1 and self.launcher != 'none':
            raise ValueError(
                f"jobs > 1 needs launcher='none' (distributed runs take the "
                f'machine one at a time), got jobs={self.jobs} with '
                f'launcher={self.launcher!r}'
            )
        if not self.speed_time > 0:
            raise ValueError(f'speed_time must be > 0 seconds, got {self.speed_time}')
        if not self.gridding_scale > 0:
            raise ValueError(f'gridding_scale must be > 0, got {self.gridding_scale}')
        for option in self.cfg_options:
            if '=' not in option:
                raise ValueError(
                    f'cfg_options must be key=value strings, got {option!r}'
                )
        if self.data_root is not None and not osp.isdir(
            osp.join(self.data_root, 'ann_dir', 'val')
        ):
            raise ValueError(
                f'data_root {self.data_root!r} is not a demo dataset (no ann_dir/val)'
            )


# --------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------
def run_plan(
    models: Sequence[str], seeds: int, other_seeds: int
) -> List[Tuple[str, int]]:
    """``(model key, seed)`` of every run, seeds 0, 1, ... per model.

    The :data:`HEADLINE` models get ``seeds`` runs, the others
    ``other_seeds``; seed 0 is the configs' own.
    """
    check_int('seeds', seeds)
    check_int('other_seeds', other_seeds)
    return [
        (key, seed)
        for key in models
        for seed in range(seeds if key in HEADLINE else other_seeds)
    ]


def schedule_options(iters: Optional[int]) -> List[str]:
    """``--cfg-options`` of every run.

    Training validates nothing (``tools/test.py`` evaluates the final
    checkpoint); with ``iters`` the schedule is shortened: ``max_iters``, the
    poly decay's end and the checkpoint interval all become ``iters``.
    """
    if iters is None:
        # val_begin past any iteration: no validation during training
        return ['train_cfg.val_begin=1000000000']
    check_int('iters', iters)
    return [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_begin={iters + 1}',
        f'param_scheduler.0.end={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]


def data_options(data_root: Optional[str]) -> List[str]:
    """``--cfg-options`` that point every dataloader at ``data_root``.

    The dataset is used as it is (``generate=False``: nothing is drawn).
    """
    if data_root is None:
        return []
    return [
        f'{loader}.dataset.{key}={value}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for key, value in (('data_root', data_root), ('generate', False))
    ]


def tool_command(
    tool: str,
    args: Sequence[str],
    tools_dir: str,
    launcher: str = 'none',
    gpus: int = 1,
    python: str = sys.executable,
) -> List[str]:
    """The command line that runs ``tools/<tool>.py`` with ``args``.

    Args:
        tool (str): ``'train'`` or ``'test'``.
        args (Sequence[str]): The tool's arguments; for ``'test'`` the first
            two are the config and the checkpoint.
        tools_dir (str): mmdrn's ``tools/``.
        launcher (str): ``'none'``: one process; ``'pytorch'``:
            ``tools/dist_<tool>.sh`` with ``gpus`` processes. Default:
            ``'none'``.
        gpus (int): Processes with the ``'pytorch'`` launcher. Default: 1.
        python (str): Interpreter. Default: this one.

    Returns:
        list[str]: The command.
    """
    if tool not in ('train', 'test'):
        raise ValueError(f"tool must be 'train' or 'test', got {tool!r}")
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    check_int('gpus', gpus)
    if launcher == 'none':
        return [python, osp.join(tools_dir, f'{tool}.py'), *args]
    # dist_<tool>.sh CONFIG [CHECKPOINT] NUM_PROCS [options]
    positional = 1 if tool == 'train' else 2
    script = osp.join(tools_dir, f'dist_{tool}.sh')
    return ['bash', script, *args[:positional], str(gpus), *args[positional:]]


def _run_logged(command: List[str], log_file: str, env: Dict[str, str]) -> float:
    """Run ``command``, its output into ``log_file``; return the seconds."""
    start = time.perf_counter()
    with open(log_file, 'w') as log:
        log.write(' '.join(command) + '\n\n')
        log.flush()
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        with open(log_file) as log:
            tail = log.read()[-4000:]
        raise RuntimeError(
            f'{" ".join(command)} failed with exit code {proc.returncode}; '
            f'log: {log_file}\n{tail}'
        )
    return time.perf_counter() - start


def _tool_env(settings: StudySettings) -> Dict[str, str]:
    env = dict(os.environ)
    # The configs import mmdrn: a fresh clone works without installing it.
    repo = osp.dirname(osp.abspath(settings.tools_dir))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (repo, env.get('PYTHONPATH')) if p)
    env['PYTHON'] = settings.python  # for tools/dist_*.sh
    return env


def _latest_test_metrics(test_dir: str) -> Dict[str, float]:
    """The metrics ``tools/test.py`` logged in ``test_dir`` (latest run)."""
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    if not files:
        raise RuntimeError(f'tools/test.py left no metrics file in {test_dir}')
    with open(files[-1]) as f:
        return json.load(f)


def class_iou(
    pred_dir: str,
    ann_dir: str,
    classes: Sequence[str] = CLASSES,
    ignore_index: int = 255,
) -> Dict[str, Any]:
    """Per-class IoU of the label maps in ``pred_dir`` against ``ann_dir``.

    Intersections and unions are summed over all images before dividing, as
    MMSegmentation's ``IoUMetric`` does (whose static methods compute them);
    a class absent from both predictions and labels has IoU NaN and is left
    out of the mean.

    Args:
        pred_dir (str): Predicted label maps (PNG, one per image).
        ann_dir (str): Ground-truth label maps of the same names.
        classes (Sequence[str]): Class names, in label order.
        ignore_index (int): Label value that is not evaluated. Default: 255.

    Returns:
        dict: ``IoU`` (class -> percent), ``mIoU`` and ``aAcc`` (percent,
        rounded to 2 decimals like MMSeg's log) and ``num_images``.
    """
    from mmseg.evaluation.metrics import IoUMetric
    from PIL import Image

    names = sorted(n for n in os.listdir(ann_dir) if n.endswith('.png'))
    missing = [n for n in names if not osp.isfile(osp.join(pred_dir, n))]
    if not names or missing:
        raise ValueError(
            f'pred_dir {pred_dir!r} must hold a prediction for each of the '
            f'{len(names)} label maps of {ann_dir!r}; missing: {missing[:5]}'
        )
    num_classes = len(classes)
    totals = [torch.zeros(num_classes, dtype=torch.float64) for _ in range(4)]
    for name in names:
        pred = torch.from_numpy(np.array(Image.open(osp.join(pred_dir, name))))
        label = torch.from_numpy(np.array(Image.open(osp.join(ann_dir, name))))
        if pred.shape != label.shape:
            raise ValueError(
                f'{name}: prediction {tuple(pred.shape)} and label '
                f'{tuple(label.shape)} differ in size'
            )
        areas = IoUMetric.intersect_and_union(
            pred.long(), label.long(), num_classes, ignore_index
        )
        for total, area in zip(totals, areas):
            total += area.double()
    metrics = IoUMetric.total_area_to_metrics(*totals, ['mIoU'])
    iou = np.asarray(metrics['IoU'], float) * 100
    return dict(
        IoU={c: float(v) for c, v in zip(classes, iou)},
        mIoU=round(float(np.nanmean(iou)), 2),
        aAcc=round(float(metrics['aAcc']) * 100, 2),
        num_images=len(names),
    )


def _run_one(
    model: DemoModel, seed: int, settings: StudySettings, log: Callable[[str], None]
) -> Dict[str, Any]:
    """Train and test one model with one seed; return its result."""
    run_dir = osp.join(settings.work_dir, 'runs', model.key, f'seed{seed}')
    result_file = osp.join(run_dir, 'result.json')
    if osp.isfile(result_file):
        if not settings.resume:
            raise ValueError(
                f'{result_file} exists: pass resume=True (--resume) to reuse '
                f'finished runs, or choose another work_dir'
            )
        with open(result_file) as f:
            log(f'{model.label} seed {seed}: reusing {result_file}')
            return json.load(f)
    config = osp.join(settings.configs_dir, model.config)
    options = [
        f'randomness.seed={seed}',
        *schedule_options(settings.iters),
        *data_options(settings.data_root),
        *settings.cfg_options,
    ]
    common = ['--cpu'] if settings.cpu else []
    env = _tool_env(settings)
    os.makedirs(run_dir, exist_ok=True)

    train_args = [config, '--work-dir', run_dir, *common]
    if osp.isfile(osp.join(run_dir, 'last_checkpoint')):
        if not settings.resume:
            raise ValueError(
                f'{run_dir} holds an unfinished training: pass resume=True '
                f'(--resume) to continue it, or choose another work_dir'
            )
        train_args.append('--resume')
    log(f'{model.label} seed {seed}: training ({run_dir}/train.log)')
    command = tool_command(
        'train',
        [*train_args, '--cfg-options', *options],
        settings.tools_dir,
        settings.launcher,
        settings.gpus,
        settings.python,
    )
    train_seconds = _run_logged(command, osp.join(run_dir, 'train.log'), env)
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()

    test_dir = osp.join(run_dir, 'test')
    pred_dir = osp.join(run_dir, 'predictions')
    log(f'{model.label} seed {seed}: testing ({run_dir}/test.log)')
    command = tool_command(
        'test',
        [config, checkpoint, '--work-dir', test_dir, '--out', pred_dir, *common]
        + ['--cfg-options', *options],
        settings.tools_dir,
        settings.launcher,
        settings.gpus,
        settings.python,
    )
    test_seconds = _run_logged(command, osp.join(run_dir, 'test.log'), env)
    logged = _latest_test_metrics(test_dir)
    scores = class_iou(pred_dir, osp.join(_data_root(settings), 'ann_dir', 'val'))
    # Our per-class numbers must reproduce the mIoU tools/test.py reported.
    if abs(scores['mIoU'] - logged['mIoU']) > 0.011:
        raise RuntimeError(
            f'{model.label} seed {seed}: per-class IoU from {pred_dir} gives '
            f'mIoU {scores["mIoU"]}, tools/test.py logged {logged["mIoU"]}'
        )
    result = dict(
        model=model.key,
        seed=seed,
        checkpoint=checkpoint,
        predictions=pred_dir,
        train_seconds=round(train_seconds, 1),
        test_seconds=round(test_seconds, 1),
        logged=logged,
        **scores,
    )
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=2)
    log(
        f'{model.label} seed {seed}: mIoU {scores["mIoU"]:.2f} '
        f'(train {train_seconds:.0f} s, test {test_seconds:.0f} s)'
    )
    return result


def _data_root(settings: StudySettings) -> str:
    if settings.data_root is not None:
        return settings.data_root
    from mmengine.config import Config

    config = osp.join(settings.configs_dir, DEMO_MODELS[1].config)
    return Config.fromfile(config).val_dataloader.dataset.data_root


# --------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------
def spread(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('spread needs at least one value')
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std


def compare_pair(
    label_a: str, values_a: Sequence[float], label_b: str, values_b: Sequence[float]
) -> Dict[str, Any]:
    """Whether two models' mIoU differ by more than their spread over seeds.

    The rule: the difference of the means exceeds the spread when it is
    larger than the sum of the two standard deviations, i.e. the intervals
    mean ± std do not overlap.

    Returns:
        dict: ``difference`` (a - b), ``exceeds_spread`` (bool, or None with
        fewer than two seeds per model) and ``sentence``, the plain reading.
    """
    mean_a, std_a = spread(values_a)
    mean_b, std_b = spread(values_b)
    diff = mean_a - mean_b
    higher, lower = (label_a, label_b) if diff >= 0 else (label_b, label_a)
    head = (
        f'{higher} scores {abs(diff):.2f} mIoU points above {lower} '
        f'(means over {len(values_a)} and {len(values_b)} seeds)'
    )
    if std_a is None or std_b is None:
        return dict(
            difference=diff,
            exceeds_spread=None,
            sentence=head + '; with a single seed there is no spread, so this '
            'run cannot say whether the difference is more than seed noise.',
        )
    exceeds = abs(diff) > std_a + std_b
    verdict = 'exceeds' if exceeds else 'does not exceed'
    return dict(
        difference=diff,
        exceeds_spread=exceeds,
        sentence=head + f'; the difference {verdict} the spread over seeds '
        f'(standard deviations {std_a:.2f} and {std_b:.2f}, sum '
        f'{std_a + std_b:.2f}).',
    )


# --------------------------------------------------------------------------
# the study
# --------------------------------------------------------------------------
def _fmt(mean: float, std: Optional[float]) -> str:
    return f'{mean:.2f}' if std is None else f'{mean:.2f} ± {std:.2f}'


def _summaries(
    settings: StudySettings, runs: Dict[str, List[dict]]
) -> Dict[str, Dict[str, Any]]:
    out = {}
    for key in settings.models:
        results = runs[key]
        miou = [r['mIoU'] for r in results]
        per_class = {c: spread([r['IoU'][c] for r in results]) for c in CLASSES}
        out[key] = dict(
            seeds=[r['seed'] for r in results],
            mIoU=spread(miou),
            IoU=per_class,
        )
    return out


def _markdown(
    settings: StudySettings,
    summary: Dict[str, Dict[str, Any]],
    measured: Dict[str, Dict[str, Any]],
    headline: Optional[Dict[str, Any]],
    meta: Dict[str, Any],
) -> str:
    columns = [
        'model',
        'backbone',
        'head',
        'seeds',
        'mIoU',
        *SMALL_CLASSES,
        'params (M)',
        'FLOPs (G)',
        'CPU img/s',
    ]
    lines = ['| ' + ' | '.join(columns) + ' |', '| --- ' * len(columns) + '|']
    for key in settings.models:
        model, s, m = _BY_KEY[key], summary[key], measured[key]
        cells = [
            model.label,
            m['backbone'].rsplit('.', 1)[-1],
            m['decode_head'].rsplit('.', 1)[-1],
            str(len(s['seeds'])),
            _fmt(*s['mIoU']),
            *[_fmt(*s['IoU'][c]) for c in SMALL_CLASSES],
            f'{m["params"] / 1e6:.2f}',
            f'{m["flops"] / 1e9:.3f}',
            f'{m["img_per_s"]:.0f}',
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        'Per-class IoU (%, mean over seeds):',
        '',
        '| model | ' + ' | '.join(CLASSES) + ' |',
        '| --- ' * (len(CLASSES) + 1) + '|',
    ]
    for key in settings.models:
        s = summary[key]
        cells = [f'{s["IoU"][c][0]:.2f}' for c in CLASSES]
        lines.append(f'| {_BY_KEY[key].label} | ' + ' | '.join(cells) + ' |')
    lines += ['']
    if headline is not None:
        lines += [headline['sentence'], '']
    lines += [
        f'Settings: {meta["iterations"]}; mean ± sample standard deviation over '
        f"seeds; FLOPs: mmengine's counter (convolutions, a multiply-add counts "
        f'as one) for one '
        f'{meta["input_size"][0]}x{meta["input_size"][1]} image; CPU img/s: '
        f'batch {settings.speed_batch}, float32, {settings.speed_threads} '
        f'thread(s), median of {settings.speed_rounds} turns. Wall time '
        f'{meta["wall_seconds"] / 60:.1f} min; load average (1 min) '
        f'{meta["load_start"][0]:.2f} at the start, {meta["load_end"][0]:.2f} '
        f'at the end; {meta["cpu_count"]} CPUs.',
        '',
    ]
    return '\n'.join(lines)


def _read_label_map(path: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path))


def _pictures(
    settings: StudySettings,
    runs: Dict[str, List[dict]],
    segmentors: Dict[str, nn.Module],
    out: Dict[str, str],
) -> None:
    from PIL import Image

    from .activation_maps import activation_maps
    from .figures import plot_activation_maps, plot_predictions

    data_root = _data_root(settings)
    ann_dir = osp.join(data_root, 'ann_dir', 'val')
    names = sorted(n for n in os.listdir(ann_dir) if n.endswith('.png'))
    names = names[: settings.num_scenes]
    image_files = [osp.join(data_root, 'img_dir', 'val', n) for n in names]
    images = [np.array(Image.open(p).convert('RGB')) for p in image_files]
    truths = [_read_label_map(osp.join(ann_dir, n)) for n in names]
    predictions = {
        _BY_KEY[key].label: [
            _read_label_map(osp.join(runs[key][0]['predictions'], n)) for n in names
        ]
        for key in settings.models
    }
    plot_predictions(images, truths, predictions, PALETTE, CLASSES, out['predictions'])
    pair = [k for k in GRIDDING_PAIR if k in segmentors]
    if len(pair) == len(GRIDDING_PAIR):
        maps = {
            _BY_KEY[key].label: [
                activation_maps(
                    segmentors[key],
                    np.ascontiguousarray(image[..., ::-1]),  # RGB -> BGR
                    scale=settings.gridding_scale,
                )
                for image in images
            ]
            for key in pair
        }
        plot_activation_maps(
            images,
            maps,
            out['gridding'],
            title='channel mean of the last three levels (seed 0 models; scenes '
            f'enlarged {settings.gridding_scale:g}x)',
        )


def run_study(
    settings: StudySettings, log: Callable[[str], None] = print
) -> Dict[str, Any]:
    """Train, test and measure every model; write the tables and pictures.

    Args:
        settings (StudySettings): What to run and where.
        log (Callable[[str], None]): Progress messages. Default: print.

    Returns:
        dict: The content of ``compare.json``; ``outputs`` maps ``markdown``,
        ``json``, ``chart``, ``predictions`` and ``gridding`` to the files
        written (``gridding`` only when DRN-A-18 and DRN-C-26 both ran).
    """
    from .activation_maps import load_segmentor
    from .figures import plot_scores

    settings.check()
    start = time.perf_counter()
    load_start = os.getloadavg()
    os.makedirs(settings.work_dir, exist_ok=True)
    out = {
        name: osp.join(settings.work_dir, f'compare{suffix}')
        for name, suffix in (
            ('markdown', '.md'),
            ('json', '.json'),
            ('chart', '_chart.png'),
            ('predictions', '_predictions.png'),
            ('gridding', '_gridding.png'),
        )
    }
    existing = [p for p in out.values() if osp.exists(p)]
    if existing and not settings.resume:
        raise ValueError(
            f'{settings.work_dir} already holds results ({existing[0]} ...): pass '
            f'resume=True (--resume) to rebuild them from its runs, or choose '
            f'another work_dir'
        )
    plan = run_plan(settings.models, settings.seeds, settings.other_seeds)
    log(f'{len(plan)} runs: ' + ', '.join(f'{k} seed {s}' for k, s in plan))
    pool = ThreadPoolExecutor(settings.jobs)
    try:
        futures = [
            pool.submit(_run_one, _BY_KEY[key], seed, settings, log)
            for key, seed in plan
        ]
        results = [future.result() for future in futures]
    finally:
        # after a failed run, start no other (those under way finish)
        pool.shutdown(wait=True, cancel_futures=True)
    runs: Dict[str, List[dict]] = {key: [] for key in settings.models}
    for (key, _), result in zip(plan, results):
        runs[key].append(result)

    log('measuring parameters, FLOPs and CPU throughput')
    cfg_options = _options_dict(settings)
    segmentors = {
        key: load_segmentor(
            osp.join(settings.configs_dir, _BY_KEY[key].config),
            runs[key][0]['checkpoint'],
            cfg_options,
        )
        for key in settings.models
    }
    size = tuple(_input_size(segmentors[settings.models[0]]))
    measured = measure_models(
        segmentors,
        size,
        settings.speed_batch,
        settings.speed_threads,
        settings.speed_rounds,
        settings.speed_time,
    )
    summary = _summaries(settings, runs)
    headline = None
    if all(k in settings.models for k in HEADLINE):
        a, b = HEADLINE
        headline = compare_pair(
            _BY_KEY[a].label,
            [r['mIoU'] for r in runs[a]],
            _BY_KEY[b].label,
            [r['mIoU'] for r in runs[b]],
        )

    log('drawing the pictures')
    groups = [*CLASSES, 'mIoU']
    means = np.array(
        [
            [summary[k]['IoU'][c][0] for c in CLASSES] + [summary[k]['mIoU'][0]]
            for k in settings.models
        ]
    )
    stds = np.array(
        [
            [
                np.nan if v[1] is None else v[1]
                for v in [*(summary[k]['IoU'][c] for c in CLASSES), summary[k]['mIoU']]
            ]
            for k in settings.models
        ]
    )
    iterations = (
        f'{settings.iters} iterations' if settings.iters else "the configs' schedule"
    )
    plot_scores(
        [_BY_KEY[k].label for k in settings.models],
        groups,
        means,
        stds,
        out['chart'],
        title=f'demo validation scenes, {iterations}',
    )
    _pictures(settings, runs, segmentors, out)
    if not osp.exists(out['gridding']):
        del out['gridding']

    meta = dict(
        iterations=iterations,
        input_size=list(size),
        wall_seconds=time.perf_counter() - start,
        load_start=list(load_start),
        load_end=list(os.getloadavg()),
        cpu_count=os.cpu_count(),
        machine=platform.processor() or platform.machine(),
        torch=torch.__version__,
    )
    report = dict(
        settings={k: v for k, v in asdict(settings).items() if k != 'python'},
        meta=meta,
        headline=headline,
        models={
            key: dict(
                label=_BY_KEY[key].label,
                config=_BY_KEY[key].config,
                **measured[key],
                mIoU_mean=summary[key]['mIoU'][0],
                mIoU_std=summary[key]['mIoU'][1],
                IoU_mean={c: v[0] for c, v in summary[key]['IoU'].items()},
                IoU_std={c: v[1] for c, v in summary[key]['IoU'].items()},
                runs=runs[key],
            )
            for key in settings.models
        },
        outputs=out,
    )
    with open(out['markdown'], 'w') as f:
        f.write(_markdown(settings, summary, measured, headline, meta))
    with open(out['json'], 'w') as f:
        json.dump(report, f, indent=2)
    log(f'done in {meta["wall_seconds"] / 60:.1f} min: ' + ', '.join(out.values()))
    return report


def _options_dict(settings: StudySettings) -> Dict[str, Any]:
    """The runs' ``--cfg-options`` as a dict, parsed as mmengine does."""
    from mmengine.config import DictAction

    options = [
        *schedule_options(settings.iters),
        *data_options(settings.data_root),
        *settings.cfg_options,
    ]
    parsed = {}
    for option in options:
        key, value = option.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


def _input_size(segmentor: nn.Module) -> Tuple[int, int]:
    size = getattr(segmentor.data_preprocessor, 'size', None)
    if size is None:
        raise ValueError(
            'the models need a fixed input size (data_preprocessor.size) to be measured'
        )
    return tuple(size)
