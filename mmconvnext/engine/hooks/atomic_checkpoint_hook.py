"""Checkpoints that a kill (even SIGKILL) during saving cannot corrupt, and the resume lookup.

:class:`AtomicLocalBackend` writes every file to a temporary file in the target directory,
fsyncs it and ``os.replace``-s it onto the target: the target is always either the old or the
complete new file. :class:`AtomicCheckpointHook` saves checkpoints through it. mmengine's hook
writes the ``last_checkpoint`` pointer in place itself; :func:`latest_checkpoint` therefore
trusts the pointer only when it names an existing file and otherwise takes the newest complete
checkpoint, so ``tools/train.py --resume`` always finds a loadable one.
"""
import glob
import os
import os.path as osp
import tempfile

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmconvnext.registry import HOOKS

#: ``backend_args`` that select :class:`AtomicLocalBackend`.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace the file atomically."""

    def put(self, obj, filepath):
        """Write ``obj`` (bytes) to ``filepath`` via a temporary file and ``os.replace``."""
        filepath = str(filepath)
        directory = osp.dirname(osp.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f'.{osp.basename(filepath)}.',
                                        suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as file:
                file.write(obj)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp_path, filepath)
        except BaseException:
            os.unlink(tmp_path)
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
    """

    def __init__(self, *args, out_dir=None, backend_args=None, file_client_args=None, **kwargs):
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = ATOMIC_BACKEND_ARGS
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)


def latest_checkpoint(work_dir):
    """The checkpoint to resume in ``work_dir``, or None.

    The file named in ``work_dir/last_checkpoint`` if it exists, else the most recently written
    ``epoch_*.pth`` / ``iter_*.pth`` in ``work_dir`` (complete files, see the module doc).
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as file:
            named = file.read().strip()
        if named and osp.isfile(named):
            return named
    candidates = glob.glob(osp.join(work_dir, 'epoch_*.pth')) + glob.glob(
        osp.join(work_dir, 'iter_*.pth'))
    return max(candidates, key=osp.getmtime, default=None)
