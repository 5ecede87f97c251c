"""Training speed (s/iter, images/s) and peak memory of configs side by side, on one synthetic
batch: a config and the peers people would pick instead.

    python tools/analysis/benchmark_train.py CONFIG [PEER ...] [--device cuda|cpu]
        [--batch-size B] [--shape H W] [--objects 7] [--warmup 3] [--iters 10] [--profile]
        [--json PATH] [--cfg-options KEY=VALUE ...]

CONFIG and each PEER: a config file, a package config (``mmdet::convnext/...py``,
``mmseg::convnext/...py``) or ``timm:CONFIG`` (that config with timm's ConvNeXt as its backbone),
optionally followed by ``@KEY=VALUE`` options that make a variant of it, e.g.
``configs/cascade_convnext_t.py@optim_wrapper.optimizer.fused=True``.
Each runs real training iterations, as mmengine's runner does (``model.train_step`` with the
config's optim wrapper and layer-decay constructor, then every logged value to a float), on the
same synthetic batch (:mod:`mmconvnext.analysis.training_step`): by default CONFIG's training
batch size at its train pipeline's largest input (COCO recipes: 800 x 1333 with 7 boxes and masks
per image; ADE20K: the crop with a label map). Weights are random; ``AmpOptimWrapper`` runs on
CUDA and falls back to fp32 elsewhere, as ``tools/train.py`` does; ``--cfg-options`` applies to
every config.

Timing: ``--warmup`` iterations each, then ``--iters`` rounds that run one iteration of every
config in turn (interleaved, so that a slow spell of the machine hits all alike); s/iter is the
median, the speed-up of CONFIG over a peer the median of per-round ratios [min-max]. CUDA
iterations are synchronised at both ends. Peak memory of one iteration, as if the config ran
alone: what it allocates during the iteration on top of what was allocated before (CUDA
``max_memory_allocated``; CPU the rise of the resident set size) plus its weights, buffers and
optimizer state. CPU runs re-execute themselves with ``MALLOC_MMAP_THRESHOLD_=65536`` so that
glibc returns freed tensors to the OS and the resident size follows the live tensors.

``--profile``: one more iteration of each config under ``torch.profiler``, split into data
preprocessor / backbone / neck / heads / losses / backward / optimizer step, with the device's
busy time against the wall time, kernels and host-device synchronisations
(:mod:`mmconvnext.analysis.step_profile`). ``--json PATH`` writes every figure.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger
from mmengine.runner import set_random_seed

from mmconvnext.analysis.step_profile import format_profile, profile_iteration
from mmconvnext.analysis.step_timing import device_name
from mmconvnext.analysis.training_step import (COCO_OBJECTS_PER_IMAGE, build_training,
                                               largest_train_shape, load_named_config, num_classes,
                                               persistent_bytes, synthetic_batch,
                                               training_iteration)
from mmconvnext.engine.runner_setup import SetupError
from mmconvnext.utils import peak_rss_bytes, reset_peak_rss, rss_bytes

MIB = 2**20
#: glibc setting of CPU runs (see the module doc).
MMAP_THRESHOLD = ('MALLOC_MMAP_THRESHOLD_', '65536')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='the config, then its peers (file, pkg::path or timm:CONFIG)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--batch-size', type=int, help="images per batch (default: CONFIG's)")
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input height and width (default: CONFIG's largest train input)")
    parser.add_argument('--objects', type=int, default=COCO_OBJECTS_PER_IMAGE,
                        help='boxes and masks per image (detection; default COCO mean, 7)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations per config')
    parser.add_argument('--iters', type=int, default=10, help='timed rounds')
    parser.add_argument('--profile', action='store_true', help='profile one more iteration')
    parser.add_argument('--json', metavar='PATH', help='write every figure to PATH')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override entries of every config')
    args = parser.parse_args(argv)
    for name, lowest in (('batch_size', 1), ('objects', 1), ('warmup', 0), ('iters', 1)):
        value = getattr(args, name)
        if value is not None and value < lowest:
            parser.error(f'--{name.replace("_", "-")} {value}: must be >= {lowest}')
    if args.shape and min(args.shape) < 32:
        parser.error(f'--shape {args.shape[0]} {args.shape[1]}: sides must be >= 32')
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available')
    return args


def measure(trainings, batch, warmup, iters, device):
    """{name: dict(seconds=[per round], peak_bytes=...)} of interleaved iterations."""
    cuda = torch.device(device).type == 'cuda'
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    for training in trainings.values():
        set_random_seed(0)
        for _ in range(warmup):
            training_iteration(training, batch)
    results = {name: dict(seconds=[], peak_bytes=0) for name in trainings}
    for round_index in range(iters):
        for name, training in trainings.items():
            set_random_seed(round_index)
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            else:
                reset_peak_rss()
                before = rss_bytes()
            start = time.perf_counter()
            training_iteration(training, batch)
            sync()
            results[name]['seconds'].append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated(device) if cuda else peak_rss_bytes()
            results[name]['peak_bytes'] = max(results[name]['peak_bytes'],
                                              peak - before + persistent_bytes(training))
    return results


def precision(training):
    """'fp16 AMP' / 'bf16 AMP' / 'fp32' of an optim wrapper."""
    if type(training.optim_wrapper).__name__ != 'AmpOptimWrapper':
        return 'fp32'
    return f'{"bf16" if training.optim_wrapper.cast_dtype == torch.bfloat16 else "fp16"} AMP'


def format_table(names, results, trainings):
    """One row per config; the ratios compare the first config (CONFIG) with each."""
    ours = names[0]
    lines = ['| config | precision | s/iter | images/s | peak MiB | '
             'speed-up of the first | memory of the first / it |', '|---|---|---|---|---|---|---|']
    for name in names:
        result = results[name]
        ratios = [p / o for o, p in zip(results[ours]['seconds'], result['seconds'])]
        lines.append(
            f'| {name} | {precision(trainings[name])} | {result["s_per_iter"]:.3f} | '
            f'{result["images_per_s"]:.2f} | {result["peak_bytes"] / MIB:.0f} | '
            f'{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}] | '
            f'{results[ours]["peak_bytes"] / result["peak_bytes"]:.2f} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    cuda = torch.device(args.device).type == 'cuda'
    if not cuda and os.environ.get(MMAP_THRESHOLD[0]) != MMAP_THRESHOLD[1]:
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, MMAP_THRESHOLD[0]: MMAP_THRESHOLD[1]})
    os.environ.setdefault('KINETO_LOG_LEVEL', '6')  # no profiler notes (format_profile says
    # when the profiler saw no device activity)
    MMLogger.get_instance('benchmark_train', log_level='WARNING')  # no layer-decay tables
    error = 'tools/analysis/benchmark_train.py: error:'
    try:
        cfgs = {name: load_named_config(name, args.cfg_options)
                for name in dict.fromkeys(args.configs)}
        first = cfgs[args.configs[0]]
        trainings = {name: build_training(cfg, args.device) for name, cfg in cfgs.items()}
        tasks = {training.task for training in trainings.values()}
        if len(tasks) > 1:
            raise SetupError(f'the configs mix detection and segmentation ({sorted(tasks)}): '
                             'compare configs of one task')
        task = tasks.pop()
        shape = tuple(args.shape) if args.shape else largest_train_shape(first)
        batch_size = args.batch_size or first.train_dataloader.batch_size
        batch = synthetic_batch(task, shape, batch_size, num_classes(first, task), args.objects)
    except (SetupError, ValueError, KeyError, FileNotFoundError, TypeError) as exc:
        sys.exit(f'{error} {exc}')

    names = list(trainings)
    results = measure(trainings, batch, args.warmup, args.iters, args.device)
    for result in results.values():
        result['s_per_iter'] = statistics.median(result['seconds'])
        result['images_per_s'] = batch_size / result['s_per_iter']
    objects = f', {args.objects} boxes + masks per image' if task == 'detection' else ''
    print(f'{device_name(args.device)}, torch {torch.__version__}; {task}, batch {batch_size} x '
          f'3 x {shape[0]} x {shape[1]}{objects}; {args.warmup} warm-up iterations, median of '
          f'{args.iters} interleaved rounds; random weights\n')
    print(format_table(names, results, trainings))
    profiles = {}
    if args.profile:
        for name, training in trainings.items():
            profiles[name] = profile_iteration(training, batch, args.device)
            print('\n' + format_profile(name, profiles[name]))
    if args.json:
        report = dict(device=device_name(args.device), torch=torch.__version__, task=task,
                      batch_size=batch_size, shape=list(shape), objects=args.objects,
                      warmup=args.warmup, iters=args.iters, configs=[
                          dict(name=name, precision=precision(trainings[name]), **results[name],
                               profile=profiles.get(name)) for name in names])
        with open(args.json, 'w') as file:
            json.dump(report, file, indent=1)


if __name__ == '__main__':
    main()
