"""Does a CPU training's host memory stop growing? The RSS slope of the demo Mask R-CNN.

    python tools/analysis/rss_slope.py [--epochs 12] [--warmup 100] [--data-root data/demo]
        [--work-dir work_dirs/rss_slope]

Trains ``configs/demo/mask_rcnn_convnext_atto_demo.py`` on the demo's data (written first if
missing; 40 iterations an epoch) with ``tools/train.py``, logging every iteration. At each logged
iteration it reads the training process's resident memory (``VmRSS`` of ``/proc/PID/status``:
the main process, where the model, optimizer and data batches live; the dataloader worker is
forked again each epoch). It prints the RSS at the first and last iteration and the least-squares
slope of RSS over the iterations after ``--warmup``, in MiB per 100 iterations, the median
iteration time, and the log line of :class:`mmconvnext.engine.hooks.HostMemoryHook`.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from mmconvnext.demo import write_demo_data

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from demo import DET_CONFIG, det_options  # noqa: E402  (tools/demo.py: the demo's options)

#: An mmengine training log line: ``Epoch(train)  [3][20/40] ... time: 0.8123 ...``.
ITERATION_LINE = re.compile(r'Epoch\(train\) +\[(\d+)\]\[ *(\d+)/(\d+)\].* time: ([\d.]+)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=12, help='epochs of 40 iterations')
    parser.add_argument('--warmup', type=int, default=100,
                        help='iterations left out of the slope (default 100)')
    parser.add_argument('--data-root', type=Path, default=Path('data/demo'))
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/rss_slope'))
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0:
        parser.error('--epochs must be >= 1 and --warmup >= 0')
    return args


def rss_mib(pid):
    """``VmRSS`` of process ``pid``, in MiB."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'/proc/{pid}/status has no VmRSS line')


def slope_per_100(iterations, rss, warmup):
    """Least-squares slope of ``rss`` (MiB) over ``iterations`` after ``warmup``, MiB / 100 it."""
    iterations, rss = np.asarray(iterations, float), np.asarray(rss, float)
    kept = iterations > warmup
    if kept.sum() < 2:
        raise ValueError(f'fewer than 2 logged iterations after the warm-up of {warmup}')
    return float(np.polyfit(iterations[kept], rss[kept], 1)[0] * 100)


def main(argv=None):
    args = parse_args(argv)
    write_demo_data(args.data_root.resolve())
    options = det_options(args.data_root.resolve(), args.epochs) + [
        'default_hooks.logger.interval=1']
    command = [sys.executable, str(REPO / 'tools' / 'train.py'), str(DET_CONFIG),
               '--work-dir', str(args.work_dir), '--cfg-options', *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    iterations, rss, seconds = [], [], []
    for line in process.stdout:
        if 'HostMemoryHook:' in line:
            print(line.split(' - ')[-1].strip(), flush=True)
        match = ITERATION_LINE.search(line)
        if match:
            epoch, index, per_epoch = map(int, match.groups()[:3])
            iterations.append((epoch - 1) * per_epoch + index)
            seconds.append(float(match.group(4)))
            rss.append(rss_mib(process.pid))
            if index == per_epoch:
                print(f'epoch {epoch}: RSS {rss[-1]:.0f} MiB', flush=True)
    if process.wait():
        sys.exit(f'rss_slope: {" ".join(command)} failed (exit {process.returncode})')
    slope = slope_per_100(iterations, rss, args.warmup)
    print(f'RSS: {rss[0]:.0f} MiB at iteration {iterations[0]}, {rss[-1]:.0f} MiB at '
          f'{iterations[-1]}; slope after iteration {args.warmup}: {slope:+.2f} MiB / 100 '
          f'iterations ({len(iterations)} samples); median iteration {np.median(seconds):.3f} s')


if __name__ == '__main__':
    main()
