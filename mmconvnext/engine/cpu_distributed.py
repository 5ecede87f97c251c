"""Distributed training without a GPU: gloo process group, DDP without ``device_ids``, no SyncBN.

mmengine 0.10.7 assumes CUDA once ``launcher != 'none'``: ``init_dist`` calls
``torch.cuda.set_device``, ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP, and
``SyncBatchNorm`` refuses CPU tensors. On a machine without CUDA,
:func:`prepare_cpu_distributed` joins the gloo process group *before* the Runner is built (so
``Runner.setup_env`` skips ``init_dist``) and points ``model_wrapper_cfg`` at
:class:`CPUDistributedDataParallel`. With CUDA both are no-ops: mmengine's path is unchanged.
"""
import atexit
import gc
import os
import subprocess
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS

#: mmengine's default DDP wrapper, replaced by ours on CPU.
MMENGINE_DDP = 'MMDistributedDataParallel'


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps a model on CPU.

    For a model on CPU it reverts SyncBN layers to BN (statistics stay per process) and drops
    ``device_ids`` (DDP requires ``None`` for CPU modules). On a GPU it is
    ``MMDistributedDataParallel`` unchanged. Registered in mmengine's root ``MODEL_WRAPPERS``,
    so ``model_wrapper_cfg=dict(type='CPUDistributedDataParallel')`` resolves in any scope.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            module, device_ids = revert_sync_batchnorm(module), None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def slurm_to_torch_env():
    """Set torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` /
    ``MASTER_PORT`` (default 29500) from an ``srun`` task's ``SLURM_*`` variables, as mmengine's
    slurm launcher does; variables already set are kept."""
    node_list = os.environ['SLURM_NODELIST']
    first_node = subprocess.check_output(['scontrol', 'show', 'hostnames', node_list],
                                         text=True).split()[0]
    os.environ.setdefault('MASTER_ADDR', first_node)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))


def gloo_worker_activity():
    """{thread id: (state, user and system CPU ticks, context switches)} of this process's gloo
    worker threads (``pt_gloo_runloop``), read from /proc; {} where there is none or no /proc."""
    activity = {}
    try:
        tasks = os.listdir('/proc/self/task')
    except OSError:
        return activity
    for task in tasks:
        folder = f'/proc/self/task/{task}'
        try:
            with open(f'{folder}/comm') as comm:
                if not comm.read().startswith('pt_gloo'):
                    continue
            with open(f'{folder}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
            with open(f'{folder}/status') as status:
                switches = tuple(line for line in status if 'ctxt_switches' in line)
        except OSError:  # the thread has ended
            continue
        activity[task] = (fields[0], fields[11], fields[12], switches)
    return activity


def wait_for_idle_gloo_workers(timeout_s=5.0, interval_s=0.01):
    """Sleep, the GIL released, until every gloo worker sleeps and has not run for
    ``interval_s`` (an idle worker waits for work without waking; one that frees a finished
    collective's tensors needs the GIL and wakes every few ms until it has it), at most
    ``timeout_s`` -> whether they went idle."""
    deadline = time.monotonic() + timeout_s
    before = gloo_worker_activity()
    while before and time.monotonic() < deadline:
        time.sleep(interval_s)
        now = gloo_worker_activity()
        if now == before and all(state == 'S' for state, *_ in now.values()):
            return True
        before = now
    return not before


def release_gloo_at_exit():
    """Destroy the process group and free its gloo backend while Python still runs (atexit).

    Gloo's worker threads free each finished collective's tensors, and freeing a tensor that
    Python has seen takes the GIL. A worker that does so after interpreter shutdown has begun is
    killed by Python mid-destructor: ``terminate called without an active exception``, SIGABRT,
    after the tool had finished. ``destroy_process_group`` alone does not free the backend:
    the Runner's DDP wrapper, kept in reference cycles, still owns it. Collecting those cycles
    frees it, and its destructor joins the worker threads before shutdown starts.

    The gloo workers are let go idle first (:func:`wait_for_idle_gloo_workers`): the backend's
    destructor, run by ``gc.collect`` with the GIL held, takes the workers' lock, and with torch
    2.11 a worker holds that lock while it frees the last collective's tensors, which needs the
    GIL: a deadlock at exit (2 of 50 2-process runs here; none of 80 with this wait).

    Skipped when the process dies of an uncaught exception (``sys.last_value`` is set): the
    destructor would wait for collectives in flight, which the other processes may never join.
    """
    if getattr(sys, 'last_value', None) is not None:
        return
    wait_for_idle_gloo_workers()
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()
    gc.collect()


def prepare_cpu_distributed(cfg, launcher):
    """Without CUDA and with ``launcher`` 'pytorch' or 'slurm': init gloo, set the CPU wrapper.

    ``cfg.model_wrapper_cfg`` becomes ``CPUDistributedDataParallel`` when it is unset (with the
    Runner's defaults: ``broadcast_buffers=False``, ``find_unused_parameters`` from the config)
    or names mmengine's DDP; another custom wrapper is left alone. ``cfg.env_cfg.dist_cfg``
    (timeout etc., not the backend) is passed to ``init_process_group``.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        slurm_to_torch_env()
    if not torch_dist.is_initialized():
        dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        dist_cfg.pop('backend', None)
        if 'timeout' in dist_cfg:
            dist_cfg['timeout'] = timedelta(seconds=dist_cfg['timeout'])
        torch_dist.init_process_group(backend='gloo', **dist_cfg)
        atexit.register(release_gloo_at_exit)
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        cfg.model_wrapper_cfg = dict(
            type=CPUDistributedDataParallel.__name__, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper_cfg.get('type', MMENGINE_DDP) == MMENGINE_DDP:
        wrapper_cfg.type = CPUDistributedDataParallel.__name__
