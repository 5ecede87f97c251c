from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, latest_checkpoint
from .lr_range_hook import LrRangeHook
from .progress_bar_hook import ProgressBarHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'LrRangeHook', 'ProgressBarHook',
    'latest_checkpoint'
]
