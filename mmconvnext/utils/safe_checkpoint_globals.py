"""Allow mmengine runner checkpoints under ``torch.load(weights_only=True)`` (torch >= 2.6).

A runner checkpoint's ``message_hub`` holds :class:`~mmengine.logging.HistoryBuffer` objects
(numpy arrays inside, numpy scalars in ``runtime_info``), and each buffer pickles its statistics
methods as ``getattr(HistoryBuffer, 'min')``. We allow exactly those classes and functions.
Instead of the real ``builtins.getattr``, which would let a pickle reach any attribute, the name
is bound to :func:`history_buffer_method`, which resolves only HistoryBuffer's statistics
methods. Everything else, in particular any ``__reduce__`` that calls code, stays refused.
"""
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

#: HistoryBuffer methods that its ``__getstate__`` pickles by reference.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner, name):
    """``getattr`` for unpickling: only ``HistoryBuffer.<statistics method>`` resolves."""
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({owner!r}, {name!r}) is not allowed in a weights_only checkpoint: mmconvnext '
        f'allows only HistoryBuffer.{{{",".join(HISTORY_BUFFER_STATISTICS)}}}')


def _numpy_globals():
    """numpy arrays, dtypes (and their per-type classes) and scalars, under numpy 2 and numpy 1
    module paths of the rebuild functions."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    rebuilders = [(multiarray._reconstruct, '_reconstruct'), (multiarray.scalar, 'scalar')]
    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return [np.ndarray, np.dtype] + dtype_classes + [
        (func, f'{package}.multiarray.{name}') for func, name in rebuilders
        for package in ('numpy._core', 'numpy.core')]


def allow_mmengine_checkpoint_globals():
    """Register the globals of mmengine runner checkpoints as safe (idempotent)."""
    torch.serialization.add_safe_globals(
        [HistoryBuffer, (history_buffer_method, 'builtins.getattr')] + _numpy_globals())
