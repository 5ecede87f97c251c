"""Test-only hooks that inject the failures of a long training into a run, also one of
``tools/train.py`` (``custom_imports=dict(imports=['fault_injection'])`` with this folder on
``PYTHONPATH``: :func:`inject`, :func:`injection_env`).

- :class:`PoisonWeightsHook`: NaN in the backbone's stem weight at a chosen iteration.
- :class:`FullDiskHook`: the n-th checkpoint write fails half-way with ``ENOSPC``.

:func:`failed_training` runs ``tools/train.py`` with them.
"""
import errno
import hashlib
import json
import os
from pathlib import Path
from unittest import mock

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from tiny_runs import run_tool, tool_env, write_config

#: Where :class:`PoisonWeightsHook` records the work dir's checkpoints when it poisons.
DIGESTS_FILE = 'digests_before_poison.json'


def checkpoint_digests(work_dir):
    """{file name: sha256} of the ``*.pth`` files in ``work_dir``."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(work_dir).glob('*.pth'))}


def stem_weight(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return model.backbone.downsample_layers[0][0].weight


@HOOKS.register_module(force=True)
class PoisonWeightsHook(Hook):
    """Writes NaN into the backbone's stem conv weight.

    Args:
        iteration (int): the (1-based) iteration whose forward sees the NaN (``before_train_iter``)
            or, with ``after_step=True``, after whose optimizer step it is written
            (``after_train_iter``, before any checkpoint of that iteration is saved).
        until (int): with ``after_step=False``, the weight is restored after this iteration
            (``after_train_iter``); None: it stays NaN.
        after_step (bool): poison after the step instead of before the forward.

    When it poisons it records :func:`checkpoint_digests` of the work dir in
    ``WORK_DIR/digests_before_poison.json`` and the weights of the whole model (before the NaN)
    in ``self.weights_before``.
    """

    priority = 'HIGHEST'

    def __init__(self, iteration, until=None, after_step=False):
        self.iteration, self.until, self.after_step = iteration, until, after_step
        self.weights_before = None
        self._saved_stem = None

    def _poison(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.weights_before = {name: value.detach().clone()
                               for name, value in model.state_dict().items()}
        Path(runner.work_dir, DIGESTS_FILE).write_text(
            json.dumps(checkpoint_digests(runner.work_dir)))
        with torch.no_grad():
            self._saved_stem = stem_weight(runner).clone()
            stem_weight(runner).fill_(float('nan'))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.after_step and runner.iter + 1 == self.iteration:
            self._poison(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.after_step and runner.iter + 1 == self.iteration:
            self._poison(runner)
        elif self.until is not None and runner.iter + 1 == self.until:
            with torch.no_grad():
                stem_weight(runner).copy_(self._saved_stem)


class DiskFullFile:
    """A binary file whose ``write`` writes half of the data, then fails with ``ENOSPC``."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        self._file.write(data[:len(data) // 2])
        self._file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()


def disk_full():
    """Patch ``os.fdopen`` (the checkpoint backend's writer) to open :class:`DiskFullFile`-s."""
    real_fdopen = os.fdopen
    return mock.patch('os.fdopen', lambda fd, *args, **kwargs: DiskFullFile(
        real_fdopen(fd, *args, **kwargs)))


@HOOKS.register_module(force=True)
class FullDiskHook(Hook):
    """From the ``save``-th checkpoint (1-based) on, every file write fails with ``ENOSPC``."""

    priority = 'LOWEST'

    def __init__(self, save):
        self.save, self._saves = save, 0

    def before_save_checkpoint(self, runner, checkpoint):
        self._saves += 1
        if self._saves == self.save:
            disk_full().start()  # the run stops at this save: nothing stops the patch


def inject(cfg, *hooks):
    """Add the hook configs ``hooks`` to ``cfg.custom_hooks`` and this module to its
    ``custom_imports`` (a tool run then needs :func:`injection_env`)."""
    cfg.custom_imports.imports = [*cfg.custom_imports.imports, __name__]
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), *hooks]
    return cfg


def injection_env(env):
    """``env`` (a tool run's environment) with this folder on ``PYTHONPATH``."""
    paths = [str(Path(__file__).parent), env.get('PYTHONPATH', '')]
    return {**env, 'PYTHONPATH': os.pathsep.join(path for path in paths if path)}


def failed_training(cfg, tmp_path, *hooks):
    """``tools/train.py`` (one thread) on ``cfg`` with ``hooks`` injected, which must fail:
    its work dir, its ``tools/train.py: error: ...`` line and its whole output."""
    config = write_config(inject(cfg, *hooks), tmp_path / 'injected.py')
    work_dir = tmp_path / 'work_dir'
    out = run_tool('train.py', config, '--work-dir', work_dir, expect_ok=False,
                   env=injection_env(tool_env(OMP_NUM_THREADS='1'))).stdout
    (error, ) = [line for line in out.splitlines() if line.startswith('tools/train.py: error:')]
    return work_dir, error, out
