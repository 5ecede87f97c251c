"""The pieces of long runs, on their own: seeded batches, the loop swap, the host memory hook and
the RSS slope.

The runs that stop and resume (a preemption, a killed process, a truncated checkpoint) and end
with the uninterrupted run's weights are in ``test_tools.py`` (torchrun) and ``test_slurm.py``.
"""
import os
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from tiny_runs import CONFIG_DIR, load_tool, run_tool, tool_env
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from mmconvnext.engine.resumable_loops import use_resumable_loop
from mmconvnext.engine.seeded_batches import (SeededBatchSampler, SeededIndex, SeededSamples,
                                              SeedingError, seed_batches)


class RandomSamples:
    """A dataset whose sample ``i`` is ``(i, three draws from random, numpy and torch)``."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return index, (random.random(), float(np.random.rand()), float(torch.rand(())))


def passes(batches, skip=0):
    batches.skip = skip
    return [[(int(index), index.seed) for index in batch] for batch in batches]


def test_seeded_batches_skip_by_index_and_keep_each_samples_seed():
    inner = BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False)
    batches = SeededBatchSampler(inner, seed=7, rank=0)
    full = passes(batches)
    assert [[index for index, _ in batch] for batch in full] == [list(b) for b in inner]
    assert len({seed for batch in full for _, seed in batch}) == 10
    assert passes(batches, skip=2) == full[2:]
    assert passes(batches) == full  # the skip applies to one pass
    assert passes(SeededBatchSampler(inner, seed=7, rank=1)) != full
    assert passes(SeededBatchSampler(inner, seed=8, rank=0)) != full
    assert len(batches) == 4 and batches.sampler is inner.sampler


def test_a_seeded_sample_draws_the_same_numbers_whatever_came_before():
    dataset = RandomSamples()
    read = SeededSamples(dataset)
    first = read([SeededIndex(4, 123)])
    torch.rand(5), np.random.rand(3), random.random()
    assert read([SeededIndex(4, 123)]) == first
    assert read([SeededIndex(4, 124)]) != first
    assert read([2])[0][0] == 2  # a plain index is read as it is
    index = pickle.loads(pickle.dumps(SeededIndex(4, 123)))  # as it goes to a worker
    assert (int(index), index.seed) == (4, 123)


def test_a_worker_reads_the_same_batches_as_the_main_process():
    def read(num_workers):
        loader = DataLoader(RandomSamples(), batch_size=2, num_workers=num_workers,
                            collate_fn=list)
        seed_batches(loader, seed=3, rank=0)
        return list(loader)

    assert read(num_workers=2) == read(num_workers=0)


def test_what_seed_batches_refuses():
    with pytest.raises(SeedingError, match=r'no batch sampler \(batch_size=None\)'):
        seed_batches(DataLoader(RandomSamples(), batch_size=None), seed=0, rank=0)

    class ReadsBatches(RandomSamples):
        def __getitems__(self, indices):
            return [self[index] for index in indices]

    with pytest.raises(SeedingError, match=r'ReadsBatches reads its batches itself'):
        seed_batches(DataLoader(ReadsBatches(), batch_size=2), seed=0, rank=0)


@pytest.mark.parametrize('train_cfg, loop_type', [
    (dict(type='EpochBasedTrainLoop', max_epochs=12), 'mmconvnext.ResumableEpochBasedTrainLoop'),
    (dict(type='IterBasedTrainLoop', max_iters=9), 'mmconvnext.ResumableIterBasedTrainLoop'),
    (dict(by_epoch=True, max_epochs=2), 'mmconvnext.ResumableEpochBasedTrainLoop'),
    (dict(by_epoch=False, max_iters=2), 'mmconvnext.ResumableIterBasedTrainLoop'),
])
def test_mmengines_train_loops_are_swapped_for_the_resumable_ones(train_cfg, loop_type):
    cfg = Config(dict(train_cfg=train_cfg))
    assert use_resumable_loop(cfg) is None
    assert cfg.train_cfg.type == loop_type and 'by_epoch' not in cfg.train_cfg
    assert use_resumable_loop(cfg) is None and cfg.train_cfg.type == loop_type


def test_another_loop_is_kept_and_the_log_says_its_resumption_is_its_own():
    cfg = Config(dict(train_cfg=dict(type='mmdet.MyTrainLoop', max_epochs=2)))
    note = use_resumable_loop(cfg)
    assert cfg.train_cfg.type == 'mmdet.MyTrainLoop'
    assert note.startswith('train_cfg.type MyTrainLoop is not one of mmengine\'s loops')


def test_rss_slope_per_100_iterations():
    rss_slope = load_tool('analysis/rss_slope.py')
    iterations = list(range(1, 201))
    rss = [1000 + (50 if i <= 20 else 0) + 0.02 * i for i in iterations]
    assert rss_slope.slope_per_100(iterations, rss, warmup=20) == pytest.approx(2.0)
    with pytest.raises(ValueError, match='fewer than 2 logged iterations after the warm-up'):
        rss_slope.slope_per_100(iterations[:10], rss[:10], warmup=20)


def test_the_host_memory_hook_fixes_glibcs_thresholds_or_says_it_cannot(
        log_lines, monkeypatch):
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from mmconvnext.engine.hooks import HostMemoryHook, host_memory_hook
    runner = SimpleNamespace(logger=MMLogger.get_current_instance())
    HostMemoryHook().before_run(runner)  # glibc here: mallopt accepts both
    assert 'HostMemoryHook: glibc returns freed blocks of 4194304 bytes or more at once' in (
        log_lines())
    monkeypatch.setattr(host_memory_hook, 'fix_malloc_thresholds', lambda **_: False)
    HostMemoryHook().before_run(runner)
    assert 'the C library is not glibc (no mallopt); its thresholds are left' in log_lines()


def test_requeue_needs_a_slurm_job_and_says_why_scontrol_refused(monkeypatch, tmp_path):
    from mmconvnext.engine.hooks import RequeueError, requeue_slurm_job
    announced = []
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    with pytest.raises(RequeueError, match=r'not in a Slurm job \(SLURM_JOB_ID is unset\)'):
        requeue_slurm_job(announced.append)
    monkeypatch.setenv('SLURM_JOB_ID', '4242')
    monkeypatch.setenv('SLURM_PROCID', '1')
    requeue_slurm_job(announced.append)  # not the first task: nothing to do
    assert announced == []
    monkeypatch.setenv('SLURM_PROCID', '0')
    scontrol = tmp_path / 'scontrol'  # a Slurm that refuses, as for a --no-requeue job
    scontrol.write_text('#!/bin/sh\necho "scontrol: error: Requested operation is presently '
                        'disabled" >&2\nexit 1\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    with pytest.raises(RequeueError, match='scontrol requeue 4242 failed: scontrol: error: '
                       'Requested operation is presently disabled'):
        requeue_slurm_job(announced.append)
    assert announced == ['4242']
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    with pytest.raises(RequeueError, match=r'scontrol requeue 4242: \[Errno 2\]'):
        requeue_slurm_job(announced.append)


def test_train_refuses_requeue_outside_a_slurm_job(tmp_path):
    env = {key: value for key, value in tool_env().items() if key != 'SLURM_JOB_ID'}
    out = run_tool('train.py', CONFIG_DIR / 'mask_rcnn_convnext_t.py', '--requeue',
                   expect_ok=False, env=env).stdout
    assert 'tools/train.py: error: --requeue needs a Slurm batch job (SLURM_JOB_ID is unset)' in out
