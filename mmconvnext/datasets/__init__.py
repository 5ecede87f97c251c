"""Datasets that name or skip bad samples, and the checks of ``tools/check_dataset.py``.

Imported on demand (registry location ``mmconvnext.datasets``), not by ``import mmconvnext``:
``mmdet.datasets`` needs mmcv's compiled ops.
"""
from .checked_ade20k_dataset import CheckedADE20KDataset
from .checked_coco_dataset import CheckedCocoDataset
from .sample_guard import BadSampleError, SampleGuardMixin

__all__ = ['BadSampleError', 'CheckedADE20KDataset', 'CheckedCocoDataset', 'SampleGuardMixin']
