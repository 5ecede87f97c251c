"""mmengine runner checkpoints resume under torch.load(weights_only=True); unsafe pickles do not."""
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmconvnext  # noqa: F401  (registers the allow-list)


class Regressor(BaseModel):
    """A linear model in mmengine's BaseModel protocol."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(torch.stack(inputs)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=(out - torch.stack(labels)).square().mean())
        return out


class RandomPairs(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(4, generator=gen), labels=torch.rand((), generator=gen))


def make_runner(work_dir, max_iters, resume_from=None):
    return Runner(
        model=Regressor(), work_dir=str(work_dir), experiment_name=f'run{max_iters}',
        train_dataloader=dict(dataset=RandomPairs(), batch_size=4,
                              collate_fn=dict(type='pseudo_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
                         dict(type='MultiStepLR', by_epoch=False, milestones=[5])],
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        load_from=resume_from, resume=resume_from is not None, randomness=dict(seed=0))


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    make_runner(work_dir, max_iters=4).train()
    return work_dir / 'iter_4.pth'


def test_plain_torch_refuses_runner_checkpoint(runner_checkpoint):
    """Without mmconvnext the default weights_only load fails: the problem we fix is real."""
    code = f'import torch; torch.load({str(runner_checkpoint)!r})'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode != 0 and 'Weights only load failed' in result.stderr


def test_runner_checkpoint_loads_and_resumes(runner_checkpoint, tmp_path):
    checkpoint = torch.load(runner_checkpoint)  # weights_only=True is torch's default
    lr_history = checkpoint['message_hub']['log_scalars']['train/lr']
    assert isinstance(lr_history, HistoryBuffer) and lr_history.current() > 0
    assert checkpoint['meta']['iter'] == 4

    runner = make_runner(tmp_path, max_iters=6, resume_from=str(runner_checkpoint))
    runner.train()
    assert runner.iter == 6
    resumed = torch.load(tmp_path / 'iter_6.pth')
    # the message hub carried the first 4 iterations over: 4 + 2 learning-rate records
    assert len(resumed['message_hub']['log_scalars']['train/lr'].data[0]) == 6
    assert [s['_global_step'] for s in resumed['param_schedulers']] == [6, 6]
    assert resumed['optimizer']['state'][0]['step'].item() == 6


class RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class ReachesAttribute:

    def __reduce__(self):
        return getattr, (HistoryBuffer, 'register_statistics')


def test_code_executing_pickle_is_still_refused(tmp_path):
    marker = tmp_path / 'executed'
    torch.save({'model': RunsCode(marker)}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='posix.system|os.system'):
        torch.load(tmp_path / 'evil.pth')
    assert not marker.exists()


def test_getattr_is_restricted_to_history_buffer_statistics(tmp_path):
    torch.save({'x': ReachesAttribute()}, tmp_path / 'attr.pth')
    with pytest.raises(pickle.UnpicklingError, match='register_statistics'):
        torch.load(tmp_path / 'attr.pth')


def test_import_is_light():
    """Importing mmconvnext pulls in neither mmdet/mmseg models nor the peer libraries.

    (mmengine.optim itself imports transformers when installed, so it is not listed.)"""
    code = ('import sys, mmconvnext; print(sorted(m for m in ("mmdet.models", "mmseg.models", '
            '"mmpretrain", "timm") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'
