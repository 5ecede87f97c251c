"""The embedded demo: ConvNeXt Mask R-CNN and UperNet trained from scratch on drawn shapes.

    python tools/demo.py [--data-root data/demo] [--work-dir work_dirs/demo] [--num-train N]
        [--num-val N] [--det-epochs N] [--seg-iters N] [--min-metrics BBOX SEGM MIOU]

Phases, each timed: write the demo data (:func:`mmconvnext.demo.write_demo_data`, skipped when
already there), then per model ``tools/train.py`` on ``configs/demo/`` and ``tools/test.py
--show-dir`` on the held-out images (COCO bbox + segm mAP with pycocotools; mIoU), as a user
would run them: the GPU is used when there is one. Each tool's full output goes to
``WORK_DIR/logs/``; its progress lines are echoed. The pictures of the predictions are PNG files
under ``WORK_DIR/pictures/{mask_rcnn,upernet}/``. The last line reads

    demo: bbox_mAP=<x> segm_mAP=<y> mIoU=<z> pictures=<folder>

Exit status 1, with a message, when a phase fails (no last line then), or when a metric is
below its ``--min-metrics`` value (a warning line, then the last line): the demo is the check
that the product learns, so a run that does not learn must not pass as a success.
"""
import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from mmengine.config import Config

from mmconvnext.demo import write_demo_data

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = REPO / 'configs' / 'demo' / 'mask_rcnn_convnext_atto_demo.py'
SEG_CONFIG = REPO / 'configs' / 'demo' / 'upernet_convnext_atto_demo.py'
#: Tool output lines echoed to the console: mmengine's training / evaluation log lines.
PROGRESS_LINE = re.compile(r' - mmengine - INFO - ((Epoch|Iter)\(.*)')
#: Lines of a failed tool's log shown with the error.
ERROR_TAIL_LINES = 30


class DemoError(Exception):
    """A phase of the demo failed; the message names it and what went wrong."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-root', default='data/demo', type=Path,
                        help='demo data folder (written if missing or stale)')
    parser.add_argument('--work-dir', default='work_dirs/demo', type=Path,
                        help='checkpoints, logs, metrics and pictures')
    parser.add_argument('--num-train', type=int, default=320, help='training scenes')
    parser.add_argument('--num-val', type=int, default=80, help='held-out scenes')
    parser.add_argument('--det-epochs', type=int, help="Mask R-CNN epochs (the config's if unset)")
    parser.add_argument('--seg-iters', type=int, help="UperNet iterations (the config's if unset)")
    parser.add_argument('--min-metrics', type=float, nargs=3, default=(0.3, 0.25, 40.),
                        metavar=('BBOX_MAP', 'SEGM_MAP', 'MIOU'),
                        help='smallest acceptable bbox mAP, segm mAP (0-1) and mIoU (0-100)')
    args = parser.parse_args(argv)
    for name in ('num_train', 'num_val', 'det_epochs', 'seg_iters'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} {value}: must be >= 1")
    return args


def det_options(data_root, epochs):
    """``--cfg-options`` training the Mask R-CNN config ``epochs`` epochs on ``data_root``."""
    coco = f'{data_root / "coco"}/'
    options = [f'{loader}.dataset.data_root={coco}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options += [f'{evaluator}.ann_file={coco}annotations/instances_val.json'
                for evaluator in ('val_evaluator', 'test_evaluator')]
    return options + schedule_options('epochs', epochs)


def seg_options(data_root, iters):
    """``--cfg-options`` training the UperNet config ``iters`` iterations on ``data_root``."""
    options = [f'{loader}.dataset.data_root={data_root / "ade"}'
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return options + schedule_options('iters', iters) + [f'param_scheduler.1.end={iters}']


def schedule_options(unit, count):
    """``--cfg-options`` training ``count`` epochs / iterations (``unit``), checkpointing the
    last; val_begin after it: tools/test.py evaluates, training need not do it too."""
    return [f'train_cfg.max_{unit}={count}', f'train_cfg.val_begin={count + 1}',
            f'default_hooks.checkpoint.interval={count}']


def run_tool(name, arguments, log_file):
    """Run ``tools/<name>`` with this interpreter, its output into ``log_file`` and its progress
    lines echoed; raise :class:`DemoError` with the log's tail if it fails."""
    command = [sys.executable, str(REPO / 'tools' / name), *map(str, arguments)]
    print(f'demo: $ {" ".join(command)}\ndemo:   full log: {log_file}', flush=True)
    with open(log_file, 'w') as log, subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) as process:
        for line in process.stdout:
            log.write(line)
            progress = PROGRESS_LINE.search(line)
            if progress:
                print(f'demo:   {progress.group(1)}', flush=True)
    if process.returncode:
        tail = ''.join(Path(log_file).read_text().splitlines(True)[-ERROR_TAIL_LINES:])
        raise DemoError(f'tools/{name} failed (exit {process.returncode}); end of {log_file}:\n'
                        f'{tail}')


def test_metrics(config, options, checkpoint, work_dir, pictures, log_file):
    """Run ``tools/test.py`` with ``--show-dir pictures``; the metrics dict it saved."""
    if not checkpoint.is_file():
        raise DemoError(f'training wrote no checkpoint {checkpoint}')
    before = set(work_dir.glob('*/*.json'))
    run_tool('test.py', [config, checkpoint, '--work-dir', work_dir, '--show-dir', pictures,
                         '--cfg-options', *options], log_file)
    saved = sorted(set(work_dir.glob('*/*.json')) - before)
    if len(saved) != 1:
        raise DemoError(f'tools/test.py saved {len(saved)} metrics files under {work_dir}, '
                        'expected 1')
    if not any(pictures.rglob('*.png')):
        raise DemoError(f'tools/test.py drew no PNG picture under {pictures}')
    return json.loads(saved[0].read_text())


class Phases:
    """Runs named phases, printing and keeping the wall time of each (seconds)."""

    def __init__(self):
        self.times = {}

    def run(self, name, function, *args):
        print(f'demo: --- {name} ---', flush=True)
        start = time.perf_counter()
        result = function(*args)
        self.times[name] = time.perf_counter() - start
        print(f'demo: {name}: {self.times[name]:.1f} s', flush=True)
        return result


def run_demo(args):
    """All phases; returns (metrics line, warnings) or raises :class:`DemoError`."""
    data_root, work_dir = args.data_root.resolve(), args.work_dir.resolve()
    try:
        for folder in ('logs', 'pictures'):
            (work_dir / folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DemoError(f'--work-dir {work_dir}: cannot create it ({error})') from error
    device = (f'GPU ({torch.cuda.get_device_name()})' if torch.cuda.is_available() else
              f'CPU ({torch.get_num_threads()} threads)')
    print(f'demo: device {device}; data {data_root}; work dir {work_dir}', flush=True)
    phases = Phases()

    def write_data():
        try:
            written = write_demo_data(data_root, args.num_train, args.num_val)
        except (OSError, ValueError) as error:
            raise DemoError(f'--data-root {data_root}: {error}') from error
        print(f'demo: {"wrote" if written else "found (stamp matches)"} {args.num_train} '
              f'training + {args.num_val} held-out scenes under {data_root}', flush=True)

    phases.run('data', write_data)
    det_epochs = args.det_epochs or Config.fromfile(DET_CONFIG).train_cfg.max_epochs
    seg_iters = args.seg_iters or Config.fromfile(SEG_CONFIG).train_cfg.max_iters
    metrics = {}
    tasks = (
        ('mask_rcnn', DET_CONFIG, det_options(data_root, det_epochs), f'epoch_{det_epochs}.pth'),
        ('upernet', SEG_CONFIG, seg_options(data_root, seg_iters), f'iter_{seg_iters}.pth'))
    for task, config, options, checkpoint in tasks:
        task_dir = work_dir / task
        phases.run(f'{task} train', run_tool, 'train.py',
                   [config, '--work-dir', task_dir, '--cfg-options', *options],
                   work_dir / 'logs' / f'{task}_train.log')
        metrics.update(phases.run(
            f'{task} test + pictures', test_metrics, config, options, task_dir / checkpoint,
            task_dir, work_dir / 'pictures' / task, work_dir / 'logs' / f'{task}_test.log'))
    times = ', '.join(f'{name} {seconds:.1f} s' for name, seconds in phases.times.items())
    print(f'demo: wall times: {times}; total {sum(phases.times.values()):.1f} s', flush=True)
    values = [metrics['coco/bbox_mAP'], metrics['coco/segm_mAP'], metrics['mIoU']]
    warnings = [f'demo: WARNING: {name} {value} is below the minimum {minimum}'
                for name, value, minimum in zip(('bbox_mAP', 'segm_mAP', 'mIoU'), values,
                                                args.min_metrics) if value < minimum]
    line = (f'demo: bbox_mAP={values[0]:.3f} segm_mAP={values[1]:.3f} mIoU={values[2]:.2f} '
            f'pictures={work_dir / "pictures"}')
    return line, warnings


def main(argv=None):
    args = parse_args(argv)
    try:
        line, warnings = run_demo(args)
    except DemoError as error:
        sys.exit(f'demo: error: {error}')
    for warning in warnings:
        print(warning)
    print(line, flush=True)
    return 1 if warnings else 0


if __name__ == '__main__':
    sys.exit(main())
