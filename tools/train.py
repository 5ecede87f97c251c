"""Train an mmdet or mmseg config (its ``default_scope`` decides) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

Several processes: ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` (srun). Without
a GPU the processes train with gloo (:mod:`mmconvnext.engine.cpu_distributed`) in fp32.
Checkpoints are written atomically (:class:`mmconvnext.engine.hooks.AtomicCheckpointHook`), so
``--resume`` after a kill, even SIGKILL, continues from the last complete checkpoint with the
optimizer, LR-scheduler and AMP loss-scaler state; a truncated, unreadable or mismatched
checkpoint is passed over with a warning (:mod:`mmconvnext.engine.resume_checkpoint`). A
non-finite step (:class:`mmconvnext.engine.hooks.NonFiniteStepHook`, in the configs) or a full
disk stops the run with exit status 1 and a message naming the iteration or file and the last
good checkpoint.
A ``load_from`` checkpoint (a whole detector / segmentor of the official repository or of the
mmdet / mmseg zoos included: their backbone is renamed to our layout) is loaded with a logged
report of what it gave the model (:class:`mmconvnext.engine.hooks.CheckpointLoadReportHook`).
The non-finite-step guard and the skipped-samples count stay on whatever a config does to
``custom_hooks`` (:mod:`mmconvnext.engine.guard_hooks`); ``disabled_guards =
['NonFiniteStepHook']`` in a config turns one off, and the log says so.
SIGTERM / SIGUSR1 (a Slurm time limit or preemption) stop every rank at one iteration with a
checkpoint, ``WORK_DIR/preempted.pth``, and exit status 75
(:class:`mmconvnext.engine.hooks.PreemptionHook`; with ``--requeue``, in a Slurm batch job, the
job is requeued); a resumed run goes on at the next batch and
ends with the weights of an uninterrupted one (:mod:`mmconvnext.engine.resumable_loops`). Under
torchrun with restarts (``MAX_RESTARTS=N tools/dist_train.sh``) every start resumes by itself.
glibc's allocator returns freed host memory at once
(:class:`mmconvnext.engine.hooks.HostMemoryHook`).
"""
import argparse
import os
import sys

import mmconvnext  # noqa: F401  (registries, checkpoint globals, CPU DDP wrapper)
from mmconvnext.engine.guard_hooks import GuardHookError, add_custom_hook, ensure_guard_hooks
from mmconvnext.engine.hooks import (PREEMPTED_EXIT_STATUS, AtomicCheckpointHook,
                                     CheckpointLoadReportHook, DiskFullError, HostMemoryHook,
                                     NonFiniteStepError, PreemptionHook, RequeueError,
                                     TrainingPreempted, requeue_slurm_job)
from mmconvnext.engine.resumable_loops import use_resumable_loop
from mmconvnext.engine.resume_checkpoint import ResumeError, choose_resume_checkpoint
from mmconvnext.engine.runner_setup import (TRAIN_SPLITS, SetupError, add_common_args, build_runner,
                                            config_or_exit, fit_optim_wrapper_to_device)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_args(parser)
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or without it from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--requeue', action='store_true',
                        help='in a Slurm batch job: requeue it when preempted (sbatch_train.sh)')
    parser.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by total batch size / auto_scale_lr.base_batch_size')
    return parser.parse_args()


def setup_training(cfg, args):
    """Apply ``--amp``, ``--auto-scale-lr``, atomic checkpoints, the guard hooks, the load
    report of ``load_from`` / ``--resume`` checkpoints, the preemption stop, the host memory
    and the resumable train loop to ``cfg``; what the guards and the loop swap have to say goes
    to ``args.setup_notes``, for the log. (``--resume`` needs the model: :func:`resume`.)"""
    if args.requeue and not os.environ.get('SLURM_JOB_ID'):
        raise SetupError('--requeue needs a Slurm batch job (SLURM_JOB_ID is unset)')
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    fit_optim_wrapper_to_device(cfg)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SetupError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    checkpoint_hook = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint_hook and checkpoint_hook.type in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint_hook.type = f'mmconvnext.{AtomicCheckpointHook.__name__}'
    try:
        args.setup_notes = [f'guard hooks: {note}' for note in ensure_guard_hooks(cfg)]
    except GuardHookError as error:
        raise SetupError(str(error)) from None
    add_custom_hook(cfg, CheckpointLoadReportHook)
    add_custom_hook(cfg, PreemptionHook)
    add_custom_hook(cfg, HostMemoryHook)
    loop_note = use_resumable_loop(cfg)
    args.setup_notes += [loop_note] if loop_note else []


def resume(runner, requested, work_dir):
    """Point ``runner`` at the checkpoint ``--resume`` continues from (``requested``: 'auto' or a
    path), each candidate held against its model first; a new training if there is none."""
    checkpoint = choose_resume_checkpoint(requested, work_dir, runner.model, runner.logger.warning)
    if checkpoint is None:
        runner.logger.info(f'no checkpoint in {work_dir} to resume: starting a new training')
        return
    # mmengine 0.10's Runner reads cfg.resume / cfg.load_from once, when it is built; the model
    # that the candidates are held against exists only then
    runner._resume, runner._load_from = True, checkpoint


def elastic_restarts():
    """torchrun's restart budget of this run (``--max-restarts``; 0 outside torchrun)."""
    return int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', 0))


def main():
    args = parse_args()
    cfg = config_or_exit(args, setup_training, TRAIN_SPLITS, 'tools/train.py')
    try:
        runner = build_runner(cfg)
        for note in args.setup_notes:
            runner.logger.warning(note)
        if not args.resume and elastic_restarts():
            runner.logger.info(
                f'torchrun start {int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) + 1} of at '
                f'most {elastic_restarts() + 1} (MAX_RESTARTS): resuming from the newest '
                'checkpoint, if any')
            args.resume = 'auto'
        if args.resume:
            resume(runner, args.resume, cfg.work_dir)
        runner.train()
    except (NonFiniteStepError, DiskFullError, ResumeError) as error:
        sys.exit(f'tools/train.py: error: {error}')
    except TrainingPreempted as stop:
        print(f'tools/train.py: preempted: {stop}', file=sys.stderr, flush=True)
        if args.requeue:
            requeue(runner)
        sys.exit(PREEMPTED_EXIT_STATUS)


def requeue(runner):
    """``--requeue``: requeue the Slurm job from its first task (after the checkpoint is complete
    on every rank); the requeued job's ``--resume`` goes on from it."""
    try:
        requeue_slurm_job(lambda job: runner.logger.warning(
            f'requeueing Slurm job {job}: it resumes from the checkpoint when it starts again'))
    except RequeueError as error:
        print(f'tools/train.py: error: {error}; the job is not requeued', file=sys.stderr)


if __name__ == '__main__':
    main()
