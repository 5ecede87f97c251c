"""tools/train.py, tools/test.py and the torchrun launchers, on CPU with gloo.

A narrow ConvNeXt Mask R-CNN and UperNet (slimmed as in ``tiny_runs``) train a few
iterations on 2 gloo processes through ``tools/dist_train.sh`` (Mask R-CNN: ``GPUS=2`` on one
node; UperNet: two torchrun groups simulating 2 nodes) on tiny datasets in the real COCO and
ADEChallengeData2016 layouts, and ``tools/dist_test.sh`` evaluates the checkpoints with the real
metrics; a SIGKILLed run resumes; bad input is refused before training.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from tiny_runs import (TIMEOUT_S, TOOLS_DIR, ade_config, run_tool, saved_metrics,
                       state_dicts_differ, tiny_mask_rcnn_config, tool_env, train_scalars,
                       write_config)

import mmconvnext  # noqa: F401  (checkpoint globals for torch.load(weights_only=True))


@pytest.fixture(scope='module')
def coco_config(tmp_path_factory):
    return tiny_mask_rcnn_config(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='module')
def ade_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp('ade')


# --- 2 processes: train, then test ----------------------------------------------------------


def test_mask_rcnn_trains_on_2_gloo_processes_and_tests_with_coco_metrics(
        mask_rcnn_reference, tmp_path):
    out, work_dir = mask_rcnn_reference.output, mask_rcnn_reference.work_dir
    assert 'GPU number: 2' in out and 'AmpOptimWrapper replaced by OptimWrapper' in out
    checkpoint = work_dir / 'iter_8.pth'
    assert (work_dir / 'last_checkpoint').read_text() == str(checkpoint)

    results = tmp_path / 'results.pkl'
    test_dir = tmp_path / 'test_dir'
    pictures = tmp_path / 'pictures'
    run_tool('dist_test.sh', mask_rcnn_reference.config, checkpoint, 2, '--work-dir', test_dir,
             '--out', results, '--show-dir', pictures)

    metrics = saved_metrics(test_dir)
    for metric in ('bbox', 'segm'):
        assert 0 <= metrics[f'coco/{metric}_mAP'] <= 1
    assert results.stat().st_size > 0
    assert len(list(pictures.rglob('*.png'))) == 1  # rank 0's image; the visualizer is master-only


def test_only_the_main_process_writes_the_test_metrics_file(monkeypatch):
    """mmengine's LoggerHook dumps them from every rank to one file; two ranks writing at once
    left invalid JSON once. A rank other than the main one touches nothing of the runner."""
    from mmconvnext.engine.hooks import MainProcessLoggerHook, main_process_logger_hook
    monkeypatch.setattr(main_process_logger_hook, 'is_main_process', lambda: False)
    MainProcessLoggerHook().after_test_epoch(runner=None, metrics={'mIoU': 1.0})


def test_upernet_trains_on_two_torchrun_nodes_and_tests_with_miou(ade_tmp):
    """2 gloo processes as 2 simulated nodes (NNODES=2, NODE_RANK=0/1), then dist_test.sh 2."""
    config = ade_config(ade_tmp, max_iters=2, checkpoint_interval=2)
    work_dir = ade_tmp / 'work_dir_2nodes'
    env = tool_env(NNODES='2', MASTER_ADDR='127.0.0.1')
    nodes = [subprocess.Popen(
        [str(TOOLS_DIR / 'dist_train.sh'), str(config), '1', '--work-dir', str(work_dir)],
        env={**env, 'NODE_RANK': str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for rank in (0, 1)]
    outputs = [node.communicate(timeout=TIMEOUT_S)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-4000:] + outputs[1][-4000:]
    assert 'GPU number: 2' in outputs[0]

    test_dir = ade_tmp / 'test_dir'
    out = run_tool('dist_test.sh', config, work_dir / 'iter_2.pth', 2, '--work-dir',
                   test_dir).stdout
    assert '1/1, ' in out and 'task/s' in out  # progress bar: 1 batch per process
    metrics = saved_metrics(test_dir)
    assert {'aAcc', 'mIoU', 'mAcc'} <= metrics.keys()
    assert 0 <= metrics['mIoU'] <= 100

    # one process, multi-scale + flip (--tta) and drawn predictions (--show-dir)
    tta_dir, show_dir = ade_tmp / 'tta_dir', ade_tmp / 'pictures'
    run_tool('test.py', config, work_dir / 'iter_2.pth', '--work-dir', tta_dir, '--tta',
             '--show-dir', show_dir)
    assert 0 <= saved_metrics(tta_dir)['mIoU'] <= 100
    assert len(list(show_dir.rglob('*.png'))) == 2  # the two validation images


# --- SIGKILL and --resume -------------------------------------------------------------------


def test_resume_after_sigkill_continues_at_the_checkpoint_iteration_and_lr(ade_tmp):
    max_iters = 6
    config = ade_config(ade_tmp, max_iters=max_iters, checkpoint_interval=2)
    work_dir = ade_tmp / 'work_dir_resume'
    first = subprocess.Popen(
        [sys.executable, str(TOOLS_DIR / 'train.py'), str(config), '--work-dir', str(work_dir)],
        env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not (work_dir / 'last_checkpoint').exists() and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, first.stdout.read()[-4000:]
    assert not (work_dir / f'iter_{max_iters}.pth').exists()

    latest = Path((work_dir / 'last_checkpoint').read_text())
    saved = torch.load(latest, map_location='cpu', weights_only=True)
    saved_iter = saved['meta']['iter']
    assert latest.name == f'iter_{saved_iter}.pth' and saved_iter < max_iters

    # the newest checkpoint, as a copy that died halfway leaves it, and the pointer names it
    truncated = work_dir / f'iter_{saved_iter + 1}.pth'
    truncated.write_bytes(latest.read_bytes()[:latest.stat().st_size // 2])
    (work_dir / 'last_checkpoint').write_text(str(truncated))
    # the user's config replaces custom_hooks and turns one guard off
    user_config = ade_tmp / 'user_config.py'
    user_config.write_text(f"_base_ = ['{config}']\ncustom_hooks = []\n"
                           "disabled_guards = ['SkippedSamplesHook']\n")

    out = run_tool('train.py', user_config, '--work-dir', work_dir, '--resume').stdout

    assert f'--resume passes over {truncated}: unreadable, truncated or not a checkpoint' in out
    assert f'Loads checkpoint by local backend from path: {latest}' in out
    assert 'guard hooks: NonFiniteStepHook added' in out
    assert 'guard hooks: SkippedSamplesHook is off: the config disables it' in out
    resumed = train_scalars(work_dir)[-1]
    assert resumed[0]['iter'] == saved_iter + 1  # first iteration after the checkpoint
    assert resumed[0]['lr'] == pytest.approx(saved['optimizer']['param_groups'][0]['lr'],
                                             rel=1e-6)
    assert resumed[-1]['iter'] == max_iters
    assert (work_dir / f'iter_{max_iters}.pth').is_file()


def worker_pids(torchrun_pid):
    """The processes torchrun ``torchrun_pid`` runs now (its children)."""
    return [int(pid) for pid in
            Path(f'/proc/{torchrun_pid}/task/{torchrun_pid}/children').read_text().split()]


def test_a_preempted_then_killed_torchrun_run_restarts_itself_and_ends_with_the_same_weights(
        mask_rcnn_reference, tmp_path):
    """MAX_RESTARTS=2: SIGUSR1 to one of the 2 processes mid-epoch 1 (both stop at one iteration,
    preempted.pth, exit 75), then SIGKILL to one in iteration 7 (the newest checkpoint is
    iteration 6's, mid-epoch 2); torchrun restarts both each time and each start resumes by
    itself, at the next batch. The weights equal the uninterrupted run's, bit for bit."""
    work_dir = tmp_path / 'work_dir'
    run = subprocess.Popen(
        [str(TOOLS_DIR / 'dist_train.sh'), str(mask_rcnn_reference.config), '2', '--work-dir',
         str(work_dir)], env=tool_env(MAX_RESTARTS='2'), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    faults = [(re.compile(r'Epoch\(train\) +\[1\]\[2/4\]'), signal.SIGUSR1),
              (re.compile(r'Epoch\(train\) +\[2\]\[3/4\]'), signal.SIGKILL)]
    lines = []
    for line in run.stdout:
        lines.append(line)
        if faults and faults[0][0].search(line):
            os.kill(worker_pids(run.pid)[-1], faults.pop(0)[1])
    out = ''.join(lines)
    assert run.wait(timeout=TIMEOUT_S) == 0 and not faults, out[-6000:]

    assert re.search(r'SIGUSR1: stopping after iteration [234] \(epoch 1\)', out)
    assert out.count('tools/train.py: preempted: SIGUSR1 received') == 2  # both processes
    assert 'torchrun start 3 of at most 3 (MAX_RESTARTS)' in out
    assert re.search(r'resuming epoch 1 at batch [345] of 4', out)
    assert 'resuming epoch 2 at batch 3 of 4' in out  # after the SIGKILL, from iter_6.pth
    assert state_dicts_differ(work_dir / 'iter_8.pth',
                              mask_rcnn_reference.work_dir / 'iter_8.pth') == []


# --- bad input ------------------------------------------------------------------------------


def test_nonexistent_config_is_named(tmp_path):
    missing = tmp_path / 'no_such_config.py'
    out = run_tool('train.py', missing, expect_ok=False).stdout
    assert f'config file {missing} does not exist' in out


def test_missing_data_root_is_named_before_training(ade_tmp, tmp_path):
    cfg = Config.fromfile(ade_config(ade_tmp, max_iters=2, checkpoint_interval=2))
    missing = tmp_path / 'no_ade'
    for split in ('train_dataloader', 'test_dataloader'):
        cfg[split].dataset.data_root = str(missing)
    config = write_config(cfg, tmp_path / 'missing_root.py')
    out = run_tool('train.py', config, '--work-dir', tmp_path / 'work_dir', expect_ok=False).stdout
    assert f'train_dataloader.dataset.data_root: {missing} does not exist' in out
    assert not (tmp_path / 'work_dir').exists()


def test_missing_annotation_file_is_named_before_testing(coco_config, tmp_path):
    cfg = Config.fromfile(coco_config)
    data_root = Path(cfg.test_dataloader.dataset.data_root)
    missing = data_root / 'annotations' / 'instances_missing.json'
    config = write_config(cfg, tmp_path / 'missing_ann.py')
    relative = missing.relative_to(data_root)
    out = run_tool('test.py', config, __file__, '--work-dir', tmp_path / 'work_dir',
                   '--cfg-options', f'test_dataloader.dataset.ann_file={relative}',
                   expect_ok=False).stdout
    assert f'test_dataloader.dataset.ann_file: {missing} does not exist' in out
    assert not (tmp_path / 'work_dir').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU-core limit applies without GPU')
def test_more_processes_than_cpu_cores_is_refused(tmp_path):
    cores = len(os.sched_getaffinity(0))
    out = run_tool('dist_train.sh', tmp_path / 'any.py', cores + 1, expect_ok=False).stdout
    assert (f'{cores + 1} processes per node requested (GPUS={cores + 1}) but this machine has '
            f'{cores} CPU cores and no GPU' in out)
