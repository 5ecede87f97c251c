"""A log worth reading: our tools print no upstream deprecation note, and every other warning,
in particular one from the user's own code, config or data, still shows.

(The tiny ``tools/train.py`` runs of ``test_non_finite_step`` and ``test_checkpoint_disk_full``
check their output too.)
"""
import logging
import subprocess
import sys

from mmengine.logging import MMLogger, print_log
from tiny_runs import CONFIG_DIR, run_tool, tool_env, upstream_deprecations

from mmconvnext.utils import quiet_upstream_log_notes

#: Triggers each upstream deprecation warning that mmconvnext filters, then one from the user's
#: code with the words of a filtered one; ``{setup}``: ``import mmconvnext`` or nothing.
TRIGGERS = '''
{setup}
import warnings
from unittest import mock
import torch
from mmengine.utils import is_installed
from mmengine.optim.optimizer import amp_optimizer_wrapper
is_installed('mmdet')  # mmengine's import (and reload) of pkg_resources
import mmcv.cnn.bricks.transformer  # mmcv's moved MultiScaleDeformableAttention
from mmseg.models.builder import build_loss
build_loss(dict(type='mmseg.CrossEntropyLoss'))  # mmseg's own deprecated builder
with mock.patch.object(amp_optimizer_wrapper, 'is_cuda_available', return_value=True):
    amp_optimizer_wrapper.AmpOptimWrapper(  # torch.cuda.amp.GradScaler
        optimizer=torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.))
warnings.warn('pkg_resources is deprecated as an API: said by the user', UserWarning)
'''


def deprecation_notes(setup):
    """The deprecation notes that :data:`TRIGGERS` prints under ``-W always``."""
    result = subprocess.run([sys.executable, '-W', 'always', '-c', TRIGGERS.format(setup=setup)],
                            env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-4000:]
    return [line.split('Warning: ')[1] for line in upstream_deprecations(result.stdout)]


def test_upstream_deprecations_are_filtered_and_the_users_warnings_are_not():
    user = 'pkg_resources is deprecated as an API: said by the user'
    without = deprecation_notes(setup='')
    for upstream in ('pkg_resources is deprecated as an API. ', '``build_loss`` would be',
                     '``MultiScaleDeformableAttention`` has been moved',
                     '`torch.cuda.amp.GradScaler(args...)` is deprecated'):
        assert any(note.startswith(upstream) for note in without[:-1]), (upstream, without)
    assert without[-1] == user

    assert deprecation_notes(setup='import mmconvnext') == [user]


def test_get_flops_prints_its_table_alone():
    """The issue's command: 8 lines of pkg_resources notes used to sit inside the table."""
    out = run_tool('analysis/get_flops.py', CONFIG_DIR / 'mask_rcnn_convnext_t.py',
                   env=tool_env(OMP_NUM_THREADS='1')).stdout
    header, rule, row = out.splitlines()
    assert header == '| config | input HxW | #params (M) | FLOPs (G) |'
    assert row.startswith('| mask_rcnn_convnext_t | 800x1280 | 48.095 |')


def test_mmengines_logged_deprecation_notes_are_dropped_and_others_kept(capsys):
    logger = MMLogger.get_instance('test_upstream_warnings')
    quiet_upstream_log_notes(logger)
    quiet_upstream_log_notes(logger)
    assert len(logger.filters) == 1
    for note in ('"FileClient" will be deprecated in future. Please use io functions',
                 '"HardDiskBackend" is the alias of "LocalBackend" and the former will be '
                 'deprecated in future.', 'The prefix is not set in metric class IoUMetric.'):
        print_log(note, logger=logger, level=logging.WARNING)
    logged = capsys.readouterr().out
    assert 'FileClient' not in logged and 'HardDiskBackend' not in logged
    assert 'WARNING - The prefix is not set in metric class IoUMetric.' in logged
