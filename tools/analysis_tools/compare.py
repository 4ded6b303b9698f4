"""Train, test and compare MMSeg configs over seeds.

Each config trains with each of its seeds by ``tools/train.py`` and is tested by
``tools/test.py --out`` (``tools/dist_*.sh`` with ``--launcher pytorch``), in
``WORK_DIR/runs/CONFIG/seedN``; ``WORK_DIR/compare.md``, ``compare.json`` and
``compare_chart.png`` then compare the configs (the README's "DRN vs MMSeg baselines
on the demo data" says what they hold and how each number is measured). Pictures of
the trained models: ``tools/analysis_tools/activation_maps.py``.

Example: ``python tools/analysis_tools/compare.py A.py B.py --seeds 0 1 2``
"""

import argparse
import glob
import importlib.util
import json
import os
import os.path as osp
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend is chosen

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
OUTPUTS = dict(markdown='compare.md', json='compare.json', chart='compare_chart.png')
QUICK_ITERS = 50
Run = Dict[str, Any]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add('configs', nargs='+', help='config files, or names like mmseg::fcn/NAME.py')
    add('--labels', nargs='+', help='names in the report (default: the file names)')
    add('--seeds', nargs='+', type=int, default=[0], help='seeds of each config')
    add('--seeds-for', nargs='+', action='append', default=[], metavar=('CFG', 'SEED'))
    add('--pair', nargs=2, metavar=('A', 'B'), help='default: the first two configs')
    add('--class-columns', nargs='+', default=[], metavar='CLASS')
    add('--iters', type=int, help="training iterations (default: the configs')")
    add('--quick', action='store_true', help=f'first seeds, {QUICK_ITERS} iterations')
    add('--work-dir', default='work_dirs/compare')
    add('--resume', action='store_true', help='reuse and continue the runs there')
    add('--dry-run', action='store_true', help='print the commands of the runs')
    add('--launcher', choices=['none', 'pytorch'], default='none')
    add('--gpus', type=int, default=1, help='processes of a pytorch launch')
    add('--cpu', action='store_true', help='train and test on the CPU')
    add('--speed-batch', type=int, default=8, help='images per timed call')
    add('--speed-threads', type=int, default=1, help='CPU threads of the timing')
    add('--speed-rounds', type=int, default=3, help='turns of the timing')
    add('--speed-time', type=float, default=1.0, help='seconds per model and turn')
    add('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _stem(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the arguments; set ``labels``, ``run_seeds`` and ``pair`` (indices)."""
    stems = [_stem(config) for config in args.configs]
    args.labels = args.labels or stems
    for names, what in ((stems, 'config file names'), (args.labels, '--labels')):
        if len(set(names)) != len(names) or len(names) != len(stems):
            parser.error(f'{what}: one per config, all different, got {names}')

    def index(name: str, option: str) -> int:
        for names in (args.configs, args.labels):
            if name in names:
                return names.index(name)
        parser.error(f'{option}: {name!r} is none of the configs or {args.labels}')

    args.run_seeds = [args.seeds] * len(stems)
    for name, *seeds in args.seeds_for:
        if not seeds or not all(seed.isdigit() for seed in seeds):
            parser.error(f'--seeds-for {name} SEED ...: seeds are ints >= 0: {seeds}')
        args.run_seeds[index(name, '--seeds-for')] = [int(seed) for seed in seeds]
    if any(len(set(s)) != len(s) or min(s) < 0 for s in args.run_seeds):
        parser.error(f'seeds are different ints >= 0, got {args.run_seeds}')
    pair = args.pair or args.configs[:2]
    args.pair = [index(name, '--pair') for name in pair] if len(pair) > 1 else None
    if args.pair and args.pair[0] == args.pair[1]:
        parser.error(f'--pair needs two different configs, got {pair}')
    for name in ('iters', 'gpus', 'speed_batch', 'speed_threads', 'speed_rounds'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if not args.speed_time > 0:
        parser.error(f'--speed-time must be > 0 seconds, got {args.speed_time}')
    if not all('=' in option for option in args.cfg_options):
        parser.error(f'--cfg-options are KEY=VALUE, got {args.cfg_options}')
    if args.quick:
        args.run_seeds = [seeds[:1] for seeds in args.run_seeds]
        args.iters, args.speed_rounds, args.speed_time = QUICK_ITERS, 1, 0.5


def _load(args: argparse.Namespace, config: str) -> Any:
    """A config file or ``package::path`` name, ``--cfg-options`` merged."""
    from mmengine.config import Config, DictAction
    from mmengine.hub import get_config

    package = config.partition('::')[0] if '::' in config else None
    if package and importlib.util.find_spec(package) is None:
        raise SystemExit(f'compare.py: {config}: {package} is not installed')
    if not (package or osp.isfile(config)):
        raise SystemExit(f'compare.py: no config file {config}')
    cfg = get_config(config) if package else Config.fromfile(config)
    options = argparse.ArgumentParser()  # parsed as the tools parse them
    options.add_argument('--o', nargs='+', action=DictAction, default={})
    if args.cfg_options:
        cfg.merge_from_dict(options.parse_args(['--o', *args.cfg_options]).o)
    if cfg.get('default_scope', 'mmseg') != 'mmseg':
        raise SystemExit(f'compare.py: {config} is not an MMSeg config')
    return cfg


def _options(args: argparse.Namespace, cfg: Any, seed: int) -> List[str]:
    """``--cfg-options`` of a run: its seed, no validation while training
    (``tools/test.py`` evaluates), ``--iters``, then the user's."""
    options = [f'randomness.seed={seed}', 'train_cfg.val_begin=1000000000']
    if args.iters:
        options.append(f'train_cfg.max_iters={args.iters}')
        options.append(f'default_hooks.checkpoint.interval={args.iters}')
        for i, scheduler in enumerate(cfg.get('param_scheduler') or []):
            if scheduler.get('begin', 0) < args.iters < scheduler.get('end', 1e18):
                options.append(f'param_scheduler.{i}.end={args.iters}')
    return options + args.cfg_options


def _commands(args: argparse.Namespace, run: Run, checkpoint: str) -> List[List[str]]:
    """The train and the test command of a run."""

    def command(tool: str, positional: List[str], rest: List[str]) -> List[str]:
        rest += ['--cpu'] * args.cpu + ['--cfg-options', *run['options']]
        if args.launcher == 'none':
            return [sys.executable, osp.join(TOOLS, f'{tool}.py'), *positional, *rest]
        script = osp.join(TOOLS, f'dist_{tool}.sh')
        return ['bash', script, *positional, str(args.gpus), *rest]

    resume = osp.isfile(osp.join(run['dir'], 'last_checkpoint'))
    train = ['--work-dir', run['dir']] + ['--resume'] * resume
    test = ['--work-dir', f'{run["dir"]}/test', '--out', run['predictions']]
    return [
        command('train', [run['config']], train),
        command('test', [run['config'], checkpoint], test),
    ]


def _run_logged(command: List[str], log_file: str) -> float:
    """Run ``command``, its output into ``log_file``; return the seconds."""
    start = time.perf_counter()
    with open(log_file, 'w') as log:
        log.write(shlex.join(command) + '\n\n')
        log.flush()
        env = dict(os.environ, PYTHON=sys.executable)  # for tools/dist_*.sh
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code.returncode:
        with open(log_file) as log:
            tail = log.read()[-4000:]
        raise RuntimeError(f'{command[1]} failed; {log_file} ends:\n{tail}')
    return time.perf_counter() - start


def _class_iou(log_file: str) -> Dict[str, float]:
    """The per-class IoU table MMSeg's ``IoUMetric`` logged in ``log_file``."""
    with open(log_file) as f:
        text = f.read().rpartition('per class results:')[2]
    rows = [line.strip().strip('|').split('|') for line in text.splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if len(row) > 1]
    if not rows or 'IoU' not in rows[0]:
        raise RuntimeError(f'no per-class IoU table in {log_file} (log_level INFO?)')
    return {row[0]: float(row[rows[0].index('IoU')]) for row in rows[1:]}


def _run_one(args: argparse.Namespace, run: Run) -> Run:
    """Train and test one config with one seed; return its result."""
    name, result_file = f'{run["label"]} seed {run["seed"]}', run['result']
    if osp.isfile(result_file):
        print(f'[compare] {name}: reusing {result_file}', flush=True)
        with open(result_file) as f:
            return json.load(f)
    os.makedirs(run['dir'], exist_ok=True)
    print(f'[compare] {name}: training, log in {run["dir"]}', flush=True)
    train_seconds = _run_logged(_commands(args, run, '')[0], run['train_log'])
    with open(osp.join(run['dir'], 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    test_seconds = _run_logged(_commands(args, run, checkpoint)[1], run['test_log'])
    with open(sorted(glob.glob(f'{run["dir"]}/test/*/*.json'))[-1]) as f:
        logged = json.load(f)  # the metrics tools/test.py wrote
    iou = _class_iou(run['test_log'])
    if abs(np.nanmean(list(iou.values())) - logged['mIoU']) > 0.011:
        raise RuntimeError(f'{name}: the IoU in {run["test_log"]} are not its mIoU')
    result = {k: run[k] for k in ('label', 'config', 'seed', 'predictions')}
    result.update(checkpoint=checkpoint, mIoU=logged['mIoU'], IoU=iou, logged=logged)
    result.update(train_seconds=round(train_seconds), test_seconds=round(test_seconds))
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'[compare] {name}: mIoU {logged["mIoU"]:.2f}', flush=True)
    return result


def _plan(args: argparse.Namespace, cfgs: List[Any]) -> List[Run]:
    """Every run, checked against what the work dir holds."""
    advice = 'pass --resume to reuse or continue it, or choose another --work-dir'
    if not args.resume and any(
        osp.exists(f'{args.work_dir}/{f}') for f in OUTPUTS.values()
    ):
        raise SystemExit(f'compare.py: {args.work_dir} holds a comparison; {advice}')
    runs = []
    for index, (cfg, seeds) in enumerate(zip(cfgs, args.run_seeds)):
        for seed in seeds:
            run_dir = f'{args.work_dir}/runs/{_stem(cfg.filename)}/seed{seed}'
            if not args.resume and osp.exists(run_dir):
                raise SystemExit(f'compare.py: {run_dir} holds a run; {advice}')
            run = dict(index=index, label=args.labels[index], config=cfg.filename)
            run.update(seed=seed, options=_options(args, cfg, seed), dir=run_dir)
            run.update(train_log=f'{run_dir}/train.log', test_log=f'{run_dir}/test.log')
            run.update(result=f'{run_dir}/result.json', predictions=f'{run_dir}/pred')
            runs.append(run)
    return runs


def _measure(args: argparse.Namespace, cfgs: List[Any]) -> List[Dict[str, Any]]:
    """Parameters, FLOPs and CPU img/s of each config's model at the first
    config's ``data_preprocessor.size`` (initialised weights: the counts and
    the timing do not depend on them)."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.logging import MMLogger
    from mmengine.model import revert_sync_batchnorm
    from mmseg.apis import init_model
    from torch.utils.benchmark import Timer

    size = tuple(cfgs[0].model.get('data_preprocessor', {}).get('size') or ())
    if len(size) != 2:
        raise SystemExit('compare.py: measuring needs a data_preprocessor.size')
    models = [revert_sync_batchnorm(init_model(cfg, device='cpu')) for cfg in cfgs]
    logger, results = MMLogger.get_current_instance(), []
    level = logger.level
    logger.setLevel('ERROR')  # the counter warns about each operator it skips
    for model in models:
        info = get_model_complexity_info(model, (3, *size), show_arch=False)
        results.append(dict(params=int(info['params']), flops=int(info['flops'])))
        for part in ('backbone', 'decode_head'):
            kind = type(getattr(model, part))
            results[-1][part] = f'{kind.__module__}.{kind.__qualname__}'
    logger.setLevel(level)
    inputs = torch.randn(args.speed_batch, 3, *size)
    metas = [dict(img_shape=size, pad_shape=size)] * args.speed_batch
    names, step = dict(x=inputs, metas=metas), 'm.encode_decode(x, metas)'
    timers = [
        Timer(step, globals=dict(names, m=m), num_threads=args.speed_threads)
        for m in models
    ]
    with torch.inference_mode():
        for timer in timers:  # warm-up
            timer.timeit(1)
        turns = [
            [t.blocked_autorange(min_run_time=args.speed_time).median for t in timers]
            for _ in range(args.speed_rounds)
        ]
    for result, seconds in zip(results, zip(*turns)):
        result['img_per_s_turns'] = [args.speed_batch / s for s in seconds]
        result['img_per_s'] = statistics.median(result['img_per_s_turns'])
    return results


def _spread(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None for one value)."""
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std


def _verdict(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    """Whether two configs' mIoU differ by more than the spread over seeds:
    the difference of the means is larger than the sum of the standard
    deviations (the intervals mean ± std do not overlap)."""
    (mean_a, std_a), (mean_b, std_b) = a['mIoU'], b['mIoU']
    diff = mean_a - mean_b
    high, low = (a['label'], b['label'])[:: 1 if diff >= 0 else -1]
    text = f'{high} scores {abs(diff):.2f} mIoU points above {low} (means over '
    text += f'{len(a["seeds"])} and {len(b["seeds"])} seeds)'
    if std_a is None or std_b is None:
        text += '; with a single seed there is no spread, so this run cannot say '
        text += 'whether the difference is more than seed noise.'
        return dict(difference=diff, exceeds_spread=None, sentence=text)
    exceeds = abs(diff) > std_a + std_b
    text += f'; the difference {"exceeds" if exceeds else "does not exceed"} the '
    text += f'spread over seeds (standard deviations {std_a:.2f} and {std_b:.2f}, '
    text += f'sum {std_a + std_b:.2f}).'
    return dict(difference=diff, exceeds_spread=exceeds, sentence=text)


def _cell(mean: float, std: Optional[float]) -> str:
    return f'{mean:.2f}' if std is None else f'{mean:.2f} ± {std:.2f}'


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    return ['| ' + ' | '.join(r) + ' |' for r in [header, ['---'] * len(header), *rows]]


def _markdown(args: argparse.Namespace, report: Dict[str, Any]) -> str:
    models, meta = report['models'], report['meta']
    header = ['model', 'backbone', 'head', 'seeds', 'mIoU', *args.class_columns]
    header += ['params (M)', 'FLOPs (G)', 'CPU img/s']
    rows = []
    for m in models:
        parts = [m[part].rsplit('.')[-1] for part in ('backbone', 'decode_head')]
        row = [m['label'], *parts, str(len(m['seeds'])), _cell(*m['mIoU'])]
        row += [_cell(*m['IoU'][c]) for c in args.class_columns]
        row += [f'{m["params"] / 1e6:.2f}', f'{m["flops"] / 1e9:.3f}']
        rows.append(row + [f'{m["img_per_s"]:.0f}'])
    lines = _table(header, rows) + ['', 'Per-class IoU (%, mean over seeds):', '']
    classes = list(models[0]['IoU'])
    rows = [[m['label'], *(f'{m["IoU"][c][0]:.2f}' for c in classes)] for m in models]
    lines += _table(['model', *classes], rows) + ['']
    if report['verdict']:
        lines += [report['verdict']['sentence'], '']
    height, width = meta['input_size']
    return '\n'.join(lines) + (
        f'\nSettings: {meta["iterations"]}; mean ± sample standard deviation over '
        f"seeds; FLOPs: mmengine's counter (a multiply-add counts as one) for one "
        f'{height}x{width} image; CPU img/s: batch {args.speed_batch}, float32, '
        f'{args.speed_threads} thread(s), median of {args.speed_rounds} turns. Wall '
        f'time {meta["wall_seconds"] / 60:.1f} min; load average (1 min) '
        f'{meta["load"][0]:.2f} at the start, {meta["load"][1]:.2f} at the end; '
        f'{os.cpu_count()} CPUs.\n'
    )


def _chart(models: List[Run], groups: List[str], out: str, title: str) -> None:
    """Per-class IoU and mIoU bars of each model, the spread over seeds as
    error bars (none where a model has one seed)."""
    fig = Figure(figsize=(max(8, 1.3 * len(groups)), 4.2))
    ax, x, width = fig.subplots(), np.arange(len(groups)), 0.8 / len(models)
    for index, model in enumerate(models):
        means, stds = zip(*model['IoU'].values(), model['mIoU'])
        errors = np.nan_to_num(np.array(stds, dtype=float))
        offset = (index - (len(models) - 1) / 2) * width
        yerr = errors if errors.any() else None  # no caps without a spread
        ax.bar(x + offset, means, width, yerr=yerr, capsize=2, label=model['label'])
    ax.set_xticks(x, groups)
    ax.set(ylabel='IoU (%)', ylim=(0, 100))
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(models), 3))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    start, load = time.perf_counter(), [os.getloadavg()[0]]
    cfgs = [_load(args, config) for config in args.configs]
    plan = _plan(args, cfgs)
    for run in plan if args.dry_run else []:
        print(f'# {run["label"]} seed {run["seed"]} (CHECKPOINT: see last_checkpoint)')
        print(*(shlex.join(c) for c in _commands(args, run, 'CHECKPOINT')), sep='\n')
    if args.dry_run:
        return {}
    os.makedirs(args.work_dir, exist_ok=True)
    results = [_run_one(args, run) for run in plan]
    classes = list(results[0]['IoU'])
    if not set(args.class_columns) <= set(classes):
        raise SystemExit(f'compare.py: --class-columns must be of {classes}')
    print('[compare] measuring parameters, FLOPs and CPU img/s', flush=True)
    models = _measure(args, [_load(args, config) for config in args.configs])
    for index, model in enumerate(models):
        runs = [r for r, p in zip(results, plan) if p['index'] == index]
        model.update(label=args.labels[index], config=args.configs[index], runs=runs)
        model.update(
            seeds=[r['seed'] for r in runs], mIoU=_spread([r['mIoU'] for r in runs])
        )
        model['IoU'] = {c: _spread([r['IoU'][c] for r in runs]) for c in classes}
    verdict = _verdict(*(models[i] for i in args.pair)) if args.pair else None
    iterations = f'{args.iters} iterations' if args.iters else "the configs' schedules"
    out = {key: osp.join(args.work_dir, name) for key, name in OUTPUTS.items()}
    _chart(models, [*classes, 'mIoU'], out['chart'], f'test images, {iterations}')
    load.append(os.getloadavg()[0])
    size = list(cfgs[0].model.data_preprocessor.size)
    meta = dict(iterations=iterations, input_size=size, load=load)
    meta['wall_seconds'] = time.perf_counter() - start
    settings = {k: v for k, v in vars(args).items() if k != 'seeds_for'}
    report = dict(settings=settings, meta=meta, verdict=verdict, models=models)
    with open(out['markdown'], 'w') as f:
        f.write(_markdown(args, report))
    with open(out['json'], 'w') as f:
        json.dump(dict(report, outputs=out), f, indent=2)
    print(f'[compare] {meta["wall_seconds"] / 60:.1f} min: {", ".join(out.values())}')
    return report


if __name__ == '__main__':
    main()
