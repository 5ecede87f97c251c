"""Mixed-precision training of the paper configs on CUDA (marker ``cuda``; skipped where torch sees
no GPU, or where mmcv's ops were built without CUDA).

The narrow Mask R-CNN T and UperNet T of ``tiny_runs`` keep their configs' ``AmpOptimWrapper``
(fp16, dynamic loss scale): one training iteration each through ``tools/train.py`` /
``tools/dist_train.sh CONFIG 1`` (nccl), an evaluation with the real metrics (pycocotools'
COCO mAP, mmseg's mIoU), and a ``--resume`` that must restore the loss scaler's state.
"""
import pytest
import torch
from mmengine.config import Config
from tiny_runs import (ade_config, run_tool, saved_metrics, tiny_mask_rcnn_config, tool_env,
                       write_config)

import mmconvnext  # noqa: F401  (checkpoint globals for torch.load(weights_only=True))

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures('mmcv_cuda_ops')]


def loss_scaler_state(checkpoint):
    """The ``AmpOptimWrapper`` loss scaler's state saved in ``checkpoint``."""
    return torch.load(checkpoint, map_location='cpu', weights_only=True)['optimizer']['loss_scaler']


def test_amp_mask_rcnn_trains_one_iteration_and_tests_with_coco_metrics(tmp_path):
    cfg = Config.fromfile(tiny_mask_rcnn_config(tmp_path))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    cfg.train_cfg.max_epochs = 1  # 2 images, batch 2: one iteration
    config = write_config(cfg, tmp_path / 'amp_mask_rcnn.py')
    work_dir = tmp_path / 'work_dir'
    out = run_tool('train.py', config, '--work-dir', work_dir).stdout
    assert 'AmpOptimWrapper replaced' not in out
    assert loss_scaler_state(work_dir / 'epoch_1.pth')['scale'] > 0

    test_dir = tmp_path / 'test_dir'
    run_tool('test.py', config, work_dir / 'epoch_1.pth', '--work-dir', test_dir)
    metrics = saved_metrics(test_dir)
    for metric in ('bbox', 'segm'):
        assert 0 <= metrics[f'coco/{metric}_mAP'] <= 1


def test_amp_upernet_on_one_nccl_process_tests_with_miou_and_resumes_the_loss_scaler(tmp_path):
    config = ade_config(tmp_path, max_iters=2, checkpoint_interval=1)
    work_dir = tmp_path / 'work_dir'
    out = run_tool('dist_train.sh', config, 1, '--work-dir', work_dir, env=tool_env()).stdout
    # mmengine's own process group (the gloo set-up of cpu_distributed is for machines without
    # GPU), with the configs' backend
    assert "dist_cfg: {'backend': 'nccl'" in out
    assert 'Distributed training: True' in out and 'GPU number: 1' in out
    assert 'AmpOptimWrapper replaced' not in out

    test_dir = tmp_path / 'test_dir'
    run_tool('test.py', config, work_dir / 'iter_2.pth', '--work-dir', test_dir)
    assert 0 <= saved_metrics(test_dir)['mIoU'] <= 100

    # A loss scale no fresh scaler has (65536 at start; it grows only every 2000 steps):
    # resuming must carry it on.
    checkpoint = torch.load(work_dir / 'iter_1.pth', map_location='cpu', weights_only=True)
    checkpoint['optimizer']['loss_scaler'].update(scale=1024., _growth_tracker=7)
    marked = tmp_path / 'iter_1_scale_1024.pth'
    torch.save(checkpoint, marked)
    resumed_dir = tmp_path / 'work_dir_resumed'
    run_tool('train.py', config, '--work-dir', resumed_dir, '--resume', marked)
    state = loss_scaler_state(resumed_dir / 'iter_2.pth')
    # one more step: the scale stays (growth tracker 8) or halves on an overflow (tracker 0)
    assert (state['scale'], state['_growth_tracker']) in ((1024., 8), (512., 0))
