"""Stop a training that the cluster is about to stop, with a checkpoint of the last iteration.

Slurm signals a job ahead of its time limit (``sbatch --signal=USR1@120``) and when it preempts
it (SIGTERM, then SIGKILL after ``KillWait``). Each rank's handler only notes the signal; after
every training iteration the ranks agree (an all-reduce of one integer: a rank that got a signal
stops them all, at the same iteration). Then rank 0 writes ``WORK_DIR/preempted.pth`` atomically
(mid-epoch too: :mod:`mmconvnext.engine.resumable_loops` resumes at the next batch) and points
``WORK_DIR/last_checkpoint`` at it, and every rank raises :class:`TrainingPreempted`;
``tools/train.py`` exits with :data:`PREEMPTED_EXIT_STATUS`. A signal during validation takes
effect after the next training iteration.
"""
import os
import os.path as osp
import signal
import subprocess
import threading

import torch
from mmengine.dist import all_reduce, barrier, is_main_process
from mmengine.hooks import Hook

from mmconvnext.registry import HOOKS
from .atomic_checkpoint_hook import ATOMIC_BACKEND_ARGS, AtomicLocalBackend

#: The exit status of a preempted training (sysexits' EX_TEMPFAIL: try again later).
PREEMPTED_EXIT_STATUS = 75
#: The signals that stop a training at the next iteration.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
#: The file name of the preemption checkpoint, in the work dir (each preemption replaces it).
PREEMPTION_CHECKPOINT = 'preempted.pth'


class TrainingPreempted(Exception):
    """The ranks stopped at one iteration on a signal; the message names it and the checkpoint."""


class RequeueError(RuntimeError):
    """The Slurm job could not be requeued (the message says why)."""


def requeue_slurm_job(announce):
    """From the job's first task (``SLURM_PROCID`` 0), ``scontrol requeue`` this Slurm job, which
    ends every task of it, after ``announce(job id)``; other tasks do nothing.

    Raises:
        RequeueError: not in a Slurm job, or ``scontrol`` refused (e.g. a job submitted with
            ``--no-requeue``).
    """
    job = os.environ.get('SLURM_JOB_ID')
    if not job:
        raise RequeueError('not in a Slurm job (SLURM_JOB_ID is unset)')
    if os.environ.get('SLURM_PROCID', '0') != '0':
        return
    announce(job)
    try:
        done = subprocess.run(['scontrol', 'requeue', job], capture_output=True, text=True)
    except OSError as error:
        raise RequeueError(f'scontrol requeue {job}: {error}') from error
    if done.returncode:
        raise RequeueError(f'scontrol requeue {job} failed: {done.stderr.strip()}')


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On SIGTERM / SIGUSR1: finish the iteration, write ``preempted.pth``, raise
    :class:`TrainingPreempted` on every rank (module docstring). ``tools/train.py`` adds it."""

    # after the checkpoint and logger hooks of the same iteration
    priority = 'VERY_LOW'

    def __init__(self):
        self.received = 0
        self._previous_handlers = {}

    def before_train(self, runner):
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionHook: not in the main thread, SIGTERM / SIGUSR1 '
                                  'keep their handlers (no checkpoint on preemption)')
            return
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._note)

    def _note(self, signum, frame):
        self.received = self.received or signum

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        signum = torch.tensor([self.received], dtype=torch.int64)
        all_reduce(signum, op='max')
        if not signum.item():
            return
        name = signal.Signals(int(signum.item())).name
        path = osp.join(runner.work_dir, PREEMPTION_CHECKPOINT)
        runner.logger.warning(f'{name}: stopping after iteration {runner.iter + 1} (epoch '
                              f'{runner.epoch + 1}); writing {path}')
        runner.save_checkpoint(runner.work_dir, PREEMPTION_CHECKPOINT, by_epoch=False,
                               backend_args=ATOMIC_BACKEND_ARGS)
        if is_main_process():
            AtomicLocalBackend().put_text(path, osp.join(runner.work_dir, 'last_checkpoint'))
        barrier()
        raise TrainingPreempted(f'{name} received: stopped after iteration {runner.iter + 1}, '
                                f'checkpoint {path}; --resume goes on from there')

    def after_train(self, runner):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}
