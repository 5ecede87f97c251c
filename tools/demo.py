"""The embedded demo: ConvNeXt Mask R-CNN and UperNet trained from scratch on drawn shapes.

    python tools/demo.py [--data-root data/demo] [--work-dir work_dirs/demo] [--num-train N]
        [--num-val N] [--det-epochs N] [--seg-iters N]
        [--min-metrics BBOX_MAP SEGM_MAP MIOU MIN_CLASS_IOU]

Phases, each timed: write the demo data (:func:`mmconvnext.demo.write_demo_data`, skipped when
already there), then per model ``tools/train.py`` on ``configs/demo/`` and ``tools/test.py
--show-dir`` on the held-out images (COCO bbox + segm AP per class with pycocotools; IoU per
class), as a user would run them: the GPU is used when there is one; then the summary picture
(:mod:`mmconvnext.demo.summary_figure`): both models on the first held-out scenes, their loss
curves and metrics. On a CPU with two or more torch threads (``OMP_NUM_THREADS``, default: the
cores) the two models train, then test, side by side, each with half the threads; with one
thread, one after the other. Each tool's full output goes to ``WORK_DIR/logs/``; its progress
lines are echoed with the model's name. The pictures of every held-out prediction are PNG
files under ``WORK_DIR/pictures/{mask_rcnn,upernet}/``. The per-class tables are printed, and
the last line reads

    demo: bbox_mAP=<x> segm_mAP=<y> mIoU=<z> min_class_IoU=<w> pictures=<folder> summary=<png>

Exit status 1, with a message, when a phase fails (no last line then), or when a metric is
below its ``--min-metrics`` value (a warning line, then the last line): the demo is the check
that the product learns every class, so a run that does not must not pass as a success.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from mmengine.config import Config

from mmconvnext.demo import ADE_CLASSES, SHAPE_CLASSES, write_demo_data
from mmconvnext.demo.summary_figure import draw_summary, held_out_rows, read_losses

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = REPO / 'configs' / 'demo' / 'mask_rcnn_convnext_atto_demo.py'
SEG_CONFIG = REPO / 'configs' / 'demo' / 'upernet_convnext_atto_demo.py'
#: Tool output lines echoed to the console: mmengine's training / evaluation log lines.
PROGRESS_LINE = re.compile(r' - mmengine - INFO - ((Epoch|Iter)\(.*)')
#: Lines of a failed tool's log shown with the error.
ERROR_TAIL_LINES = 30
#: The metrics the demo is judged by, in ``--min-metrics`` order, and their default minima.
MINIMA = dict(bbox_mAP=0.70, segm_mAP=0.75, mIoU=85., min_class_IoU=80.)
#: Held-out scenes shown in the summary picture.
SUMMARY_ROWS = 6


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
    parser.add_argument('--min-metrics', type=float, nargs=4, default=tuple(MINIMA.values()),
                        metavar=tuple(name.upper() for name in MINIMA),
                        help='smallest acceptable bbox mAP, segm mAP (0-1), mIoU and smallest '
                        'class IoU (0-100); default %(default)s')
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
    options += [f'{evaluator}.{index}.ann_file={coco}annotations/instances_val.json'
                for evaluator in ('val_evaluator', 'test_evaluator') for index in (0, 1)]
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


class Job(NamedTuple):
    """One run of ``tools/<tool>``: its task (``mask_rcnn`` / ``upernet``), arguments and log."""
    task: str
    tool: str
    arguments: list
    log_file: Path


def run_jobs(jobs, threads, side_by_side):
    """Run ``jobs`` with ``threads`` torch threads each, all at once or one after another.

    Each tool's output goes to its log file, its progress lines are echoed with the task's name.
    Every job runs; then :class:`DemoError` names each one that failed, with its log's tail.
    """
    running, failures = [], []
    for job in jobs:
        command = [sys.executable, str(REPO / 'tools' / job.tool), *map(str, job.arguments)]
        print(f'demo: [{job.task}] $ {" ".join(command)}\n'
              f'demo: [{job.task}]   {threads} thread(s); full log: {job.log_file}', flush=True)
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
        echo = threading.Thread(target=echo_progress, args=(job, process, time.perf_counter()))
        echo.start()
        running.append((job, process, echo))
        if not side_by_side:
            echo.join()
    for job, process, echo in running:
        echo.join()
        if process.wait():
            tail = ''.join(job.log_file.read_text().splitlines(True)[-ERROR_TAIL_LINES:])
            failures.append(f'tools/{job.tool} ({job.task}) failed (exit {process.returncode}); '
                            f'end of {job.log_file}:\n{tail}')
    if failures:
        raise DemoError('\n'.join(failures))


def echo_progress(job, process, start):
    """Copy ``process``'s output to ``job.log_file``, echoing its progress lines."""
    with open(job.log_file, 'w') as log:
        for line in process.stdout:
            log.write(line)
            progress = PROGRESS_LINE.search(line)
            if progress:
                print(f'demo: [{job.task}] {progress.group(1)}', flush=True)
    print(f'demo: [{job.task}] tools/{job.tool} ended after {time.perf_counter() - start:.1f} s',
          flush=True)


def new_file(folder, pattern, before, tool):
    """The one file matching ``pattern`` under ``folder`` that is not in ``before``."""
    written = sorted(set(folder.glob(pattern)) - before)
    if len(written) != 1:
        raise DemoError(f'{tool} wrote {len(written)} files {pattern} under {folder}, expected 1')
    return written[0]


def class_tables(metrics):
    """The per-class lines: Mask R-CNN's bbox / segm AP, UperNet's IoU."""
    lines = ['Mask R-CNN AP per class (COCO AP@[.5:.95], 0-1):',
             f'  {"class":<10} {"bbox":>6} {"segm":>6}']
    lines += [f'  {name:<10} {metrics[f"coco_bbox/{name}_precision"]:>6.3f} '
              f'{metrics[f"coco_segm/{name}_precision"]:>6.3f}' for name in SHAPE_CLASSES]
    lines += ['UperNet IoU per class (%):', f'  {"class":<10} {"IoU":>6}']
    lines += [f'  {name:<10} {metrics[f"IoU.{name}"]:>6.2f}' for name in ADE_CLASSES]
    return lines


def metrics_line(values):
    """``bbox_mAP=<x> segm_mAP=<y> mIoU=<z> min_class_IoU=<w>`` of the :data:`MINIMA` values."""
    return (f'bbox_mAP={values["bbox_mAP"]:.3f} segm_mAP={values["segm_mAP"]:.3f} '
            f'mIoU={values["mIoU"]:.2f} min_class_IoU={values["min_class_IoU"]:.2f}')


def write_summary(data_root, work_dir, configs, checkpoints, scalars, metrics_lines):
    """Draw ``WORK_DIR/summary.png`` (``configs``: task -> its loaded config); returns its path."""
    rows = held_out_rows(data_root / 'ade', configs['mask_rcnn'], checkpoints['mask_rcnn'],
                         configs['upernet'], checkpoints['upernet'], SUMMARY_ROWS)
    losses = {name: read_losses(scalars[task])
              for task, name in (('mask_rcnn', 'Mask R-CNN'), ('upernet', 'UperNet'))}
    out_file = work_dir / 'summary.png'
    draw_summary(rows, SHAPE_CLASSES, losses, metrics_lines, out_file)
    return out_file


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
    # Two processes of one thread each use two cores better than one process of two threads:
    # these models are too small for intra-op threads (Mask R-CNN: 0.6 s an iteration on one
    # thread, 0.87 s on two).
    threads = torch.get_num_threads()
    side_by_side = threads >= 2 and not torch.cuda.is_available()
    per_job = threads // 2 if side_by_side else threads
    device = (f'GPU ({torch.cuda.get_device_name()})' if torch.cuda.is_available() else
              f'CPU, {threads} thread(s): ' + ('both models side by side, '
                                               f'{per_job} thread(s) each' if side_by_side
                                               else 'one model after the other'))
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
    configs = dict(mask_rcnn=Config.fromfile(DET_CONFIG), upernet=Config.fromfile(SEG_CONFIG))
    det_epochs = args.det_epochs or configs['mask_rcnn'].train_cfg.max_epochs
    seg_iters = args.seg_iters or configs['upernet'].train_cfg.max_iters
    tasks = {'mask_rcnn': (DET_CONFIG, det_options(data_root, det_epochs),
                           f'epoch_{det_epochs}.pth'),
             'upernet': (SEG_CONFIG, seg_options(data_root, seg_iters), f'iter_{seg_iters}.pth')}
    logs = work_dir / 'logs'
    scalars_before = {task: set((work_dir / task).glob('*/vis_data/scalars.json'))
                      for task in tasks}
    phases.run('train', run_jobs, [
        Job(task, 'train.py', [config, '--work-dir', work_dir / task, '--cfg-options', *options],
            logs / f'{task}_train.log') for task, (config, options, _) in tasks.items()],
        per_job, side_by_side)
    scalars = {task: new_file(work_dir / task, '*/vis_data/scalars.json', before, 'tools/train.py')
               for task, before in scalars_before.items()}
    checkpoints = {task: work_dir / task / checkpoint
                   for task, (_, _, checkpoint) in tasks.items()}
    for checkpoint in checkpoints.values():
        if not checkpoint.is_file():
            raise DemoError(f'training wrote no checkpoint {checkpoint}')
    metrics_before = {task: set((work_dir / task).glob('*/*.json')) for task in tasks}
    pictures_before = set((work_dir / 'pictures').rglob('*.png'))
    phases.run('test + pictures', run_jobs, [
        Job(task, 'test.py', [config, checkpoints[task], '--work-dir', work_dir / task,
                              '--show-dir', work_dir / 'pictures' / task, '--cfg-options',
                              *options], logs / f'{task}_test.log')
        for task, (config, options, _) in tasks.items()], per_job, side_by_side)
    metrics = {}
    for task, before in metrics_before.items():
        metrics.update(json.loads(new_file(work_dir / task, '*/*.json', before,
                                           'tools/test.py').read_text()))
        if not set((work_dir / 'pictures' / task).rglob('*.png')) - pictures_before:
            raise DemoError(f'tools/test.py drew no new PNG picture under '
                            f'{work_dir / "pictures" / task}')
    values = dict(bbox_mAP=metrics['coco_bbox/bbox_mAP'],
                  segm_mAP=metrics['coco_segm/segm_mAP'], mIoU=metrics['mIoU'],
                  # NaN: a class neither in the held-out labels nor predicted; not learned
                  min_class_IoU=min(np.nan_to_num(metrics[f'IoU.{name}'])
                                    for name in ADE_CLASSES))
    tables = class_tables(metrics)
    for line in tables:
        print(f'demo: {line}', flush=True)
    summary = phases.run('summary picture', write_summary, data_root, work_dir, configs,
                         checkpoints, scalars, [*metrics_line(values).split(), ''] + tables)
    times = ', '.join(f'{name} {seconds:.1f} s' for name, seconds in phases.times.items())
    print(f'demo: wall times: {times}; total {sum(phases.times.values()):.1f} s', flush=True)
    warnings = [f'demo: WARNING: {name} {value} is below the minimum {minimum}'
                for (name, value), minimum in zip(values.items(), args.min_metrics)
                if value < minimum]
    return f'demo: {metrics_line(values)} pictures={work_dir / "pictures"} summary={summary}', \
        warnings


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
