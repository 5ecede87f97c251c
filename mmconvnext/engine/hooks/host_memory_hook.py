"""Keep a training's host memory from growing with memory it has freed.

A CPU training's resident memory (RSS) grew by 200-500 MiB an epoch on the demo Mask R-CNN
(``tools/analysis/rss_slope.py``: +117 MiB per 100 iterations over 480) while its Python objects
and live tensors stayed the same (829 tensors, 53.5 MiB). The memory was free: ``malloc_trim(0)``
returned 170-520 MiB each time. glibc raises its mmap threshold each time a large block is freed,
and from then on keeps such blocks in its arenas. A job's memory limit (cgroup, Slurm ``--mem``)
counts them, so a long run can be stopped for memory it does not use. Fixing the thresholds
(:func:`mmconvnext.utils.process_memory.fix_malloc_thresholds`) keeps RSS flat
(``docs/training.md`` has the slope with and without).
"""
from mmengine.hooks import Hook

from mmconvnext.registry import HOOKS
from mmconvnext.utils.process_memory import fix_malloc_thresholds


@HOOKS.register_module()
class HostMemoryHook(Hook):
    """Fix glibc's mmap threshold (bytes, default 4 MiB) and trim threshold (default 128 KiB,
    glibc's) before the run, in the process and in the dataloader workers it forks later;
    ``tools/train.py`` adds it. Where the C library is not glibc it does nothing, and the log
    says so.

    A lower mmap threshold returns more at once but costs speed on CPU: every block above it is
    mapped, and its pages zeroed, afresh (at 128 KiB the demo's iterations took 0.95 s instead of
    0.70 s; at 4 MiB, 0.73 s, with RSS as flat).
    """

    priority = 'VERY_HIGH'

    def __init__(self, mmap_threshold=4 * 2**20, trim_threshold=128 * 1024):
        self.thresholds = dict(mmap_threshold=mmap_threshold, trim_threshold=trim_threshold)

    def before_run(self, runner):
        if fix_malloc_thresholds(**self.thresholds):
            runner.logger.info('HostMemoryHook: glibc returns freed blocks of '
                               f'{self.thresholds["mmap_threshold"]} bytes or more at once')
        else:
            runner.logger.warning('HostMemoryHook: the C library is not glibc (no mallopt); '
                                  'its thresholds are left as they are')
