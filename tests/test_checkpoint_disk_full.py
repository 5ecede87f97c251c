"""A full disk while a checkpoint is written: the write fails half-way with ``ENOSPC`` (a patched
file write, ``fault_injection.disk_full``).

The partial temporary file is removed, the previous checkpoint stays byte-identical and loadable,
``last_checkpoint`` still names it, and the run stops with a message that names the file, the
free space and the last complete checkpoint.
"""
import os
import re
import shutil

import pytest
import torch
from fault_injection import disk_full, failed_training
from mmengine.config import Config
from tiny_runs import ade_config, upstream_deprecations

from mmconvnext.engine.hooks import AtomicLocalBackend, DiskFullError


def test_a_full_disk_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    target = tmp_path / 'epoch_1.pth'
    AtomicLocalBackend().put(b'complete checkpoint', target)
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it

    with disk_full(), pytest.raises(DiskFullError) as raised:
        AtomicLocalBackend().put(b'x' * 3 * 2**20, target)

    assert target.read_bytes() == b'complete checkpoint'
    assert [path.name for path in tmp_path.iterdir()] == ['epoch_1.pth']
    match = re.fullmatch(rf'{target} not written: No space left on device; ([0-9.]+) MiB free in '
                         rf'{tmp_path} \(after removing the partial file\), 3\.0 MiB needed',
                         str(raised.value))
    assert match, raised.value
    assert float(match[1]) == pytest.approx(shutil.disk_usage(tmp_path).free / 2**20, abs=64)


def test_tools_train_stops_at_a_full_disk_and_keeps_the_previous_checkpoint(tmp_path):
    """UperNet, a checkpoint every iteration, the last one kept: the second save fails."""
    cfg = Config.fromfile(ade_config(tmp_path, max_iters=3, checkpoint_interval=1))
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1

    work_dir, error, out = failed_training(cfg, tmp_path, dict(type='FullDiskHook', save=2))

    assert re.fullmatch(
        rf'tools/train.py: error: {work_dir}/iter_2.pth not written: No space left on device; '
        rf'[0-9.]+ MiB free in {work_dir} \(after removing the partial file\), [0-9.]+ MiB '
        rf'needed; the last complete checkpoint: {work_dir}/iter_1.pth', error)
    assert sorted(path.name for path in work_dir.glob('*.pth*')) == ['iter_1.pth']
    assert not list(work_dir.glob('.*.tmp'))
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_1.pth')
    saved = torch.load(work_dir / 'iter_1.pth', map_location='cpu', weights_only=True)
    assert saved['meta']['iter'] == 1
    # mmseg's notes on its own code are filtered; those on a setting of the config stay: the
    # ADE20K pipeline's LoadAnnotations(reduce_zero_label=True), the loss's avg_non_ignore
    assert [line.split('UserWarning: ')[1] for line in upstream_deprecations(out)] == [
        '`reduce_zero_label` will be deprecated, if you would like to ignore the zero label, '
        'please set `reduce_zero_label=True` when dataset initialized']
    assert 'UserWarning: Default ``avg_non_ignore`` is False' in out
