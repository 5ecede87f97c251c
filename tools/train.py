"""Train an mmdet or mmseg config (its ``default_scope`` decides) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

Several processes: ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` (srun). Without
a GPU the processes train with gloo (:mod:`mmconvnext.engine.cpu_distributed`) in fp32.
Checkpoints are written atomically (:class:`mmconvnext.engine.hooks.AtomicCheckpointHook`), so
``--resume`` after a kill, even SIGKILL, continues from the last complete checkpoint with the
optimizer, LR-scheduler and AMP loss-scaler state. A non-finite step
(:class:`mmconvnext.engine.hooks.NonFiniteStepHook`, in the configs) or a full disk stops the run
with exit status 1 and a message naming the iteration or file and the last good checkpoint.
A ``load_from`` checkpoint (a whole detector / segmentor of the official repository or of the
mmdet / mmseg zoos included: their backbone is renamed to our layout) is loaded with a logged
report of what it gave the model (:class:`mmconvnext.engine.hooks.CheckpointLoadReportHook`).
"""
import argparse
import sys

import mmconvnext  # noqa: F401  (registries, checkpoint globals, CPU DDP wrapper)
from mmconvnext.engine.hooks import (AtomicCheckpointHook, CheckpointLoadReportHook, DiskFullError,
                                     NonFiniteStepError, latest_checkpoint)
from mmconvnext.engine.runner_setup import (TRAIN_SPLITS, SetupError, add_common_args, build_runner,
                                            config_or_exit, fit_optim_wrapper_to_device)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(parser)
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or without it from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    return parser.parse_args()


def setup_training(cfg, args):
    """Apply ``--amp``, ``--auto-scale-lr``, ``--resume``, atomic checkpoints and the load report
    of ``load_from`` / ``--resume`` checkpoints to ``cfg``."""
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    fit_optim_wrapper_to_device(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SetupError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        checkpoint = latest_checkpoint(cfg.work_dir)
        if checkpoint is None:
            print(f'no checkpoint in {cfg.work_dir} to resume: starting a new training')
        else:
            cfg.resume, cfg.load_from = True, checkpoint
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint_hook and checkpoint_hook.type in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint_hook.type = f'mmconvnext.{AtomicCheckpointHook.__name__}'
    hooks = cfg.get('custom_hooks', [])
    report = f'mmconvnext.{CheckpointLoadReportHook.__name__}'
    if report not in [hook.get('type') for hook in hooks]:
        cfg.custom_hooks = [*hooks, dict(type=report)]


def main():
    args = parse_args()
    cfg = config_or_exit(args, setup_training, TRAIN_SPLITS, 'tools/train.py')
    try:
        build_runner(cfg).train()
    except (NonFiniteStepError, DiskFullError) as error:
        sys.exit(f'tools/train.py: error: {error}')


if __name__ == '__main__':
    main()
