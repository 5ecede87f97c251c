from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, latest_checkpoint
from .lr_range_hook import LrRangeHook
from .progress_bar_hook import ProgressBarHook
from .skipped_samples_hook import SkippedSamplesHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'LrRangeHook', 'ProgressBarHook',
    'SkippedSamplesHook', 'latest_checkpoint'
]
