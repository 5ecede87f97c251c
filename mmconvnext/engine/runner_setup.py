"""What ``tools/train.py`` and ``tools/test.py`` share: arguments, config, checks, the Runner.

One pair of tools serves mmdet and mmseg configs: the config's ``default_scope`` picks the
registries, mmengine's Runner does the rest. Everything here raises :class:`SetupError` with the
offending path or value, before any model or data is built.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmconvnext.utils import quiet_upstream_log_notes
from .cpu_distributed import prepare_cpu_distributed

#: Dataloaders (and the evaluator next to each) that ``runner.train()`` / ``runner.test()`` use.
TRAIN_SPLITS = (('train_dataloader', None), ('val_dataloader', 'val_evaluator'))
TEST_SPLITS = (('test_dataloader', 'test_evaluator'), )
#: Optimizer-wrapper keys only ``AmpOptimWrapper`` accepts.
AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


class SetupError(Exception):
    """A bad command line, config or data path, found before training / testing starts."""


def add_common_args(parser):
    """``CONFIG``, ``--work-dir``, ``--cfg-options``, ``--launcher`` (and torchrun's
    ``--local-rank``) on an ``argparse`` parser."""
    parser.add_argument('config', help='config file (mmdet or mmseg default_scope)')
    parser.add_argument('--work-dir', help='logs and checkpoints; default ./work_dirs/CONFIG_NAME')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher (dist_*.sh: pytorch, slurm_*.sh: slurm)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)


def read_config(path, cfg_options=None):
    """The config file at ``path`` with ``cfg_options`` (``--cfg-options``) merged in."""
    if not osp.isfile(path):
        raise SetupError(f'config file {path} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def load_config(args):
    """The config at ``args.config`` with ``--cfg-options``, ``work_dir`` and ``launcher`` set.

    ``work_dir``: ``--work-dir``, else the config's, else ``./work_dirs/<config file stem>``.
    """
    cfg = read_config(args.config, args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    return cfg


def check_process_count():
    """Refuse more processes per node than this node has GPUs (or, without GPU, CPU cores).

    Reads torchrun's ``LOCAL_WORLD_SIZE`` (1 when unset, e.g. under ``srun``).
    """
    requested = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
    if torch.cuda.is_available():
        available, unit = torch.cuda.device_count(), 'GPUs'
    else:
        available, unit = len(os.sched_getaffinity(0)), 'CPU cores and no GPU'
    if requested > available:
        raise SetupError(f'{requested} processes per node requested (GPUS={requested}) but this '
                         f'machine has {available} {unit}: use GPUS <= {available}')


def _dataset_paths(dataset, where):
    """(description, path) of a dataset config's data_root, ann_file and data_prefix, nested
    datasets (``dataset`` / ``datasets`` of wrappers) included; remote (``://``) paths skipped."""
    if 'dataset' in dataset:
        yield from _dataset_paths(dataset.dataset, f'{where}.dataset')
    for index, child in enumerate(dataset.get('datasets', [])):
        yield from _dataset_paths(child, f'{where}.datasets[{index}]')
    data_root = dataset.get('data_root') or ''
    if '://' in data_root:
        return
    if data_root:
        yield f'{where}.data_root', data_root
    if dataset.get('ann_file'):
        yield f'{where}.ann_file', osp.join(data_root, dataset.ann_file)
    for key, prefix in (dataset.get('data_prefix') or {}).items():
        if prefix:
            yield f'{where}.data_prefix.{key}', osp.join(data_root, prefix)


def check_data_paths(cfg, splits):
    """Raise :class:`SetupError` naming the first missing data root, annotation file or image /
    label folder of the ``(dataloader, evaluator)`` config keys in ``splits``."""
    for loader_key, evaluator_key in splits:
        loader = cfg.get(loader_key)
        if not loader:
            continue
        paths = list(_dataset_paths(loader.dataset, f'{loader_key}.dataset'))
        evaluators = cfg.get(evaluator_key) or []
        for index, evaluator in enumerate(
                evaluators if isinstance(evaluators, list) else [evaluators]):
            ann_file = evaluator.get('ann_file')
            if ann_file and '://' not in ann_file:
                paths.append((f'{evaluator_key}[{index}].ann_file', ann_file))
        for where, path in paths:
            if not osp.exists(path):
                raise SetupError(f'{where}: {osp.abspath(path)} does not exist')


def fit_optim_wrapper_to_device(cfg, cuda=None):
    """Without CUDA, train an ``AmpOptimWrapper`` config in fp32 (mmengine 0.10's
    ``AmpOptimWrapper`` requires a GPU), with a warning. ``cuda``: whether the run trains on a
    GPU (default: whether torch sees one)."""
    optim_wrapper = cfg.get('optim_wrapper')
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda or not optim_wrapper or optim_wrapper.get(
            'type') != 'AmpOptimWrapper':
        return
    warnings.warn('no GPU: AmpOptimWrapper replaced by OptimWrapper (fp32 training)')
    optim_wrapper.type = 'OptimWrapper'
    for key in AMP_ONLY_KEYS:
        optim_wrapper.pop(key, None)


def config_or_exit(args, apply_args, splits, tool):
    """The checked config of a tool run, or exit naming what is wrong (before anything is built).

    Args:
        args (argparse.Namespace): the tool's arguments (see :func:`add_common_args`).
        apply_args (callable): ``apply_args(cfg, args)`` applies the tool's own options.
        splits (tuple): :data:`TRAIN_SPLITS` or :data:`TEST_SPLITS`, whose data paths must exist.
        tool (str): the tool's name for the error message, e.g. ``'tools/train.py'``.
    """
    try:
        check_process_count()
        cfg = load_config(args)
        apply_args(cfg, args)
        check_data_paths(cfg, splits)
    except SetupError as error:
        sys.exit(f'{tool}: error: {error}')
    return cfg


def build_runner(cfg):
    """The Runner for ``cfg`` (``cfg.runner_type`` if set), after the CPU-distributed setup; its
    logger drops mmengine's own deprecation notes (:func:`quiet_upstream_log_notes`)."""
    prepare_cpu_distributed(cfg, cfg.launcher)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    quiet_upstream_log_notes(runner.logger)
    return runner
