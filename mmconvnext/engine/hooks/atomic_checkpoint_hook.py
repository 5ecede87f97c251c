"""Checkpoints that a kill (even SIGKILL) or a full disk during saving cannot corrupt, and the
resume lookup.

:class:`AtomicLocalBackend` writes every file to a temporary file in the target directory,
fsyncs it and ``os.replace``-s it onto the target: the target is always either the old or the
complete new file. A write that fails removes the temporary file; one that fails for a full disk
(``ENOSPC``, or ``EDQUOT``: quota) raises :class:`DiskFullError`, naming the file, the free space
and the bytes needed. :class:`AtomicCheckpointHook` saves checkpoints through it, and moves the
``last_checkpoint`` pointer (atomically too) and removes outdated checkpoints
(``max_keep_ckpts``) only once the new checkpoint is complete. ``tools/train.py --resume``
(:mod:`mmconvnext.engine.resume_checkpoint`) trusts the pointer only when it names a file that
reads and fits the model, and otherwise takes the newest one that does.
"""
import errno
import os
import os.path as osp
import shutil
import tempfile
from collections import deque
from contextlib import suppress

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmconvnext.registry import HOOKS

#: ``backend_args`` that select :class:`AtomicLocalBackend`.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')
#: ``errno`` values of a write that failed because the disk (or the user's quota) is full.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A file could not be written for lack of space; the message names the file, the free space
    and the bytes needed. The previous version of the file is untouched."""


def _umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mib(size):
    return f'{size / 2**20:.1f} MiB'


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace the file atomically."""

    def put(self, obj, filepath):
        """Write ``obj`` (bytes) to ``filepath`` via a temporary file and ``os.replace``; a full
        disk raises :class:`DiskFullError`."""
        filepath = str(filepath)
        directory = osp.dirname(osp.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f'.{osp.basename(filepath)}.',
                                        suffix='.tmp')
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would create
            with os.fdopen(fd, 'wb') as file:
                file.write(obj)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp_path, filepath)
        except BaseException as error:
            with suppress(FileNotFoundError):
                os.unlink(tmp_path)
            if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
                free = shutil.disk_usage(directory).free
                raise DiskFullError(
                    f'{filepath} not written: {error.strerror}; {_mib(free)} free in {directory} '
                    f'(after removing the partial file), {_mib(len(obj))} needed') from error
            raise

    def put_text(self, obj, filepath, encoding='utf-8'):
        """Write the string ``obj`` to ``filepath`` atomically (see :meth:`put`)."""
        self.put(obj.encode(encoding), filepath)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` writing local checkpoints with :class:`AtomicLocalBackend`.

    Same arguments; ``backend_args`` defaults to :data:`ATOMIC_BACKEND_ARGS` when neither it nor
    ``file_client_args`` is given and ``out_dir`` is local. ``tools/train.py`` sets it as
    ``default_hooks.checkpoint`` type; in a config:
    ``default_hooks = dict(checkpoint=dict(type='mmconvnext.AtomicCheckpointHook', ...))``.

    Unlike mmengine's hook (0.10), which removes the outdated checkpoint before saving the new one
    and writes ``WORK_DIR/last_checkpoint`` in place, a save that fails (full disk, or weights
    that ``NonFiniteStepHook`` refuses to save) leaves the previous checkpoint, the pointer and
    the runtime info (``last_ckpt``, ``keep_ckpt_ids``) as they were. A full disk stops the run
    with :class:`DiskFullError`, which also names the last complete checkpoint.
    """

    def __init__(self, *args, out_dir=None, backend_args=None, file_client_args=None, **kwargs):
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = ATOMIC_BACKEND_ARGS
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save checkpoint ``step``, then move the pointer, then remove the outdated checkpoint.

        The runtime info is updated before saving (the checkpoint records itself as
        ``last_ckpt``, for ``--resume``) and restored when the save fails.
        """
        filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, filename)
        kept = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else []
        if self.max_keep_ckpts > 0 and kept[-1:] != [step]:
            kept.append(step)
        outdated = kept[:-self.max_keep_ckpts] if self.max_keep_ckpts > 0 else []
        info = runner.message_hub.runtime_info
        before = {key: info[key] for key in ('last_ckpt', 'keep_ckpt_ids') if key in info}
        runner.message_hub.update_info('last_ckpt', path)
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids', kept[len(outdated):])
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                backend_args=self.backend_args, **self.args)
        except BaseException as error:
            for key in ('last_ckpt', 'keep_ckpt_ids'):
                info.pop(key, None)
            info.update(before)
            if isinstance(error, DiskFullError):
                raise DiskFullError(f'{error}; the last complete checkpoint: '
                                    f'{before.get("last_ckpt") or "none saved yet"}') from error
            raise
        self.last_ckpt = path
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = deque(kept[len(outdated):], self.max_keep_ckpts)
        if not is_main_process():
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            AtomicLocalBackend().put_text(path, pointer)
        except DiskFullError as error:
            raise DiskFullError(f'{error}; the checkpoint {path} is complete, {pointer} still '
                                'names the one before') from error
        for old_step in outdated:
            old_path = self.file_backend.join_path(self.out_dir,
                                                   self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(old_path):
                self.file_backend.remove(old_path)
            elif self.file_backend.isdir(old_path):  # deepspeed saves directories
                self.file_backend.rmtree(old_path)
