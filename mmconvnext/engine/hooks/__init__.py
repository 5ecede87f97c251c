from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend, DiskFullError
from .checkpoint_load_report_hook import CheckpointLoadReportHook, describe_checkpoint_load
from .host_memory_hook import HostMemoryHook
from .lr_range_hook import LrRangeHook
from .main_process_logger_hook import MainProcessLoggerHook
from .non_finite_step_hook import NonFiniteStepError, NonFiniteStepHook
from .preemption_hook import (PREEMPTED_EXIT_STATUS, PREEMPTION_CHECKPOINT, PreemptionHook,
                              RequeueError, TrainingPreempted, requeue_slurm_job)
from .progress_bar_hook import ProgressBarHook
from .skipped_samples_hook import SkippedSamplesHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointLoadReportHook', 'DiskFullError',
    'HostMemoryHook', 'LrRangeHook', 'MainProcessLoggerHook',
    'NonFiniteStepError', 'NonFiniteStepHook', 'PREEMPTED_EXIT_STATUS', 'PREEMPTION_CHECKPOINT',
    'PreemptionHook', 'ProgressBarHook', 'RequeueError', 'SkippedSamplesHook', 'TrainingPreempted',
    'requeue_slurm_job',
    'describe_checkpoint_load'
]
