"""A bad step: ``NonFiniteStepHook`` on the tiny runs, with NaN injected into the backbone's stem
weight at a chosen iteration (``fault_injection.PoisonWeightsHook``).

fp32 stops at the first non-finite loss / gradient before the optimizer step, naming the
iteration, the loss terms and the last good checkpoint, which stays byte-identical; weights that
went non-finite are never saved; under AMP (mmengine's ``AmpOptimWrapper`` with torch's CPU
GradScaler) each skipped step is logged and too many in a row stop the run.
"""
import json
import re
from importlib import import_module
from unittest import mock

import pytest
import torch
from fault_injection import (DIGESTS_FILE, PoisonWeightsHook, checkpoint_digests, failed_training,
                             stem_weight)
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner
from tiny_runs import tiny_mask_rcnn_config, tiny_upernet_run, upstream_deprecations

from mmconvnext.engine.hooks import NonFiniteStepError, NonFiniteStepHook

STEM = 'backbone.downsample_layers.0.0.weight'


@OPTIM_WRAPPERS.register_module(force=True)
class CpuAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with torch's CPU ``GradScaler`` (bf16 autocast): mmengine
    0.10 asserts a GPU and builds a CUDA scaler, which disables itself on the CPU."""

    def __init__(self, **kwargs):
        with mock.patch.object(amp_optimizer_wrapper, 'is_cuda_available', return_value=True):
            super().__init__(**kwargs)
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)


def upernet_runner(tmp_path, max_iters, checkpoint_interval, hooks, amp=False, **hook_args):
    """The tiny UperNet (fp32, or AMP on the CPU) with the config's NonFiniteStepHook (with
    ``hook_args``), atomic checkpoints every ``checkpoint_interval`` iterations (the last one
    kept) and ``hooks``."""
    cfg = tiny_upernet_run(tmp_path)
    guard, = [hook for hook in cfg.custom_hooks if hook.type == 'mmconvnext.NonFiniteStepHook']
    guard.update(hook_args)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters + 1)
    cfg.default_hooks.checkpoint = dict(type='mmconvnext.AtomicCheckpointHook', by_epoch=False,
                                        interval=checkpoint_interval, max_keep_ckpts=1)
    if amp:
        cfg.optim_wrapper.type = 'CpuAmpOptimWrapper'
    cfg.custom_hooks = [*cfg.custom_hooks, *hooks]
    return Runner.from_cfg(cfg)


def hook_of(runner, hook_type, index=0):
    return [hook for hook in runner.hooks if isinstance(hook, hook_type)][index]


def assert_checkpoints_untouched(work_dir, expected_last):
    """The checkpoints are those there when the NaN was injected, ``last_checkpoint`` names
    ``expected_last``, which loads and holds finite weights; no temporary file is left."""
    assert checkpoint_digests(work_dir) == json.loads((work_dir / DIGESTS_FILE).read_text())
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / expected_last)
    saved = torch.load(work_dir / expected_last, map_location='cpu', weights_only=True)
    assert all(torch.isfinite(value).all() for value in saved['state_dict'].values())
    assert not list(work_dir.glob('.*.tmp'))


@pytest.mark.usefixtures('single_thread')
def test_fp32_stops_at_the_first_nan_before_the_optimizer_step(tmp_path):
    runner = upernet_runner(tmp_path, max_iters=4, checkpoint_interval=2,
                            hooks=[dict(type='PoisonWeightsHook', iteration=3)])

    with pytest.raises(NonFiniteStepError) as raised:
        runner.train()

    work_dir = tmp_path / 'work_dir'
    assert re.fullmatch(
        r'iteration 3: non-finite loss: decode\.loss_ce=nan, aux\.loss_ce=nan; non-finite '
        rf'gradients in \d+ parameters: {STEM}, .* and \d+ more; stopped before the optimizer '
        rf'step: no update was applied\. Last good checkpoint: {work_dir}/iter_2\.pth',
        str(raised.value))
    # no update: every weight but the poisoned one is as before iteration 3; AdamW took 2 steps
    before = hook_of(runner, PoisonWeightsHook).weights_before
    for name, value in runner.model.named_parameters():
        assert name == STEM or torch.equal(value, before[name]), name
    assert torch.isnan(stem_weight(runner)).all()
    optimizer = runner.optim_wrapper.optimizer
    assert {int(state['step']) for state in optimizer.state.values()} == {2}
    assert_checkpoints_untouched(work_dir, 'iter_2.pth')


@pytest.mark.usefixtures('single_thread')
def test_weights_that_went_non_finite_are_not_saved(tmp_path):
    """NaN written after iteration 4's step, before its checkpoint: the save is refused and the
    previous checkpoint (``max_keep_ckpts=1``) stays."""
    runner = upernet_runner(tmp_path, max_iters=6, checkpoint_interval=2,
                            hooks=[dict(type='PoisonWeightsHook', iteration=4, after_step=True)])

    with pytest.raises(NonFiniteStepError, match=re.escape(
            f'iteration 4: non-finite weights in 1 tensors: {STEM}; the checkpoint was not saved. '
            f'Last good checkpoint: {tmp_path}/work_dir/iter_2.pth')):
        runner.train()

    assert_checkpoints_untouched(tmp_path / 'work_dir', 'iter_2.pth')
    assert runner.message_hub.get_info('last_ckpt') == str(tmp_path / 'work_dir' / 'iter_2.pth')


def logged_lines(work_dir, level):
    (log, ) = work_dir.glob('*/*.log')
    return [line.split(f' - {level} - ')[1] for line in log.read_text().splitlines()
            if f' - {level} - ' in line]


@pytest.mark.usefixtures('single_thread')
def test_amp_skips_are_logged_and_too_many_in_a_row_stop_the_run(tmp_path):
    """NaN weights during iteration 2 only, then from iteration 4 on; 2 bad steps in a row are
    tolerated: the scaler skips 2, 4 and 5, and iteration 6 stops the run."""
    hooks = [dict(type='PoisonWeightsHook', iteration=2, until=2),
             dict(type='PoisonWeightsHook', iteration=4)]
    runner = upernet_runner(tmp_path, max_iters=8, checkpoint_interval=3, hooks=hooks, amp=True,
                            max_skips_in_row=2)

    with pytest.raises(NonFiniteStepError) as raised:
        runner.train()

    skip = ('non-finite loss: decode.loss_ce=nan, aux.loss_ce=nan; AMP skipped the step '
            '(inf / NaN gradients); loss scale now {scale}; {row} bad step(s) in a row (the run '
            'stops after 2)')
    warnings = [line for line in logged_lines(tmp_path / 'work_dir', 'WARNING')
                if 'AMP skipped' in line]
    assert warnings == [
        f'iteration 2: {skip.format(scale=32768, row=1)}',
        f'iteration 4: {skip.format(scale=16384, row=1)}',
        f'iteration 5: {skip.format(scale=8192, row=2)}',
    ]
    assert str(raised.value) == (f'iteration 6: {skip.format(scale=4096, row=3)}. Last good '
                                 f'checkpoint: {tmp_path}/work_dir/iter_3.pth')
    assert_checkpoints_untouched(tmp_path / 'work_dir', 'iter_3.pth')
    # the skipped steps changed nothing: weights but the stem, and BatchNorm statistics (restored)
    before = hook_of(runner, PoisonWeightsHook, index=1).weights_before
    for name, value in runner.model.state_dict().items():
        assert name == STEM or torch.equal(value, before[name]), name


def test_tools_train_stops_the_issues_mask_rcnn_at_the_poisoned_epoch(tmp_path):
    """The issue's run: Mask R-CNN T, the backbone poisoned at the start of epoch 2 (fp32 on the
    CPU), through tools/train.py; its output holds no upstream deprecation warning."""
    cfg = Config.fromfile(tiny_mask_rcnn_config(tmp_path))

    work_dir, error, out = failed_training(cfg, tmp_path,
                                           dict(type='PoisonWeightsHook', iteration=2))

    assert re.fullmatch(
        r'tools/train.py: error: iteration 2 \(epoch 2\): non-finite loss: loss_rpn_cls=nan, '
        r'loss_rpn_bbox=nan, loss_cls=nan, loss_bbox=nan, loss_mask=nan; non-finite gradients '
        rf'in \d+ parameters: {STEM}, .*; stopped before the optimizer step: no update was '
        rf'applied\. Last good checkpoint: {work_dir}/epoch_1\.pth', error)
    assert not (work_dir / 'epoch_2.pth').exists()
    assert_checkpoints_untouched(work_dir, 'epoch_1.pth')
    assert upstream_deprecations(out) == []
    assert 'UserWarning: no GPU: AmpOptimWrapper replaced by OptimWrapper' in out  # ours stays


def test_the_hook_builds_in_mmdet_and_mmseg_configs():
    for scope in ('mmdet', 'mmseg'):
        hooks = import_module(f'{scope}.registry').HOOKS
        for name in ('mmconvnext.NonFiniteStepHook', 'NonFiniteStepHook'):
            assert isinstance(hooks.build(dict(type=name)), NonFiniteStepHook), (scope, name)


def test_max_skips_in_row_is_checked():
    assert NonFiniteStepHook().max_skips_in_row == 20
    with pytest.raises(ValueError, match='max_skips_in_row must be an int >= 0, got -1'):
        NonFiniteStepHook(max_skips_in_row=-1)
