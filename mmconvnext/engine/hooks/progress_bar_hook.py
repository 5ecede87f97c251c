"""A progress bar over the batches of ``runner.test()`` (main process only)."""
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmconvnext.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Draw mmengine's ``ProgressBar`` (count, rate, ETA) over the batches of ``runner.test()``.

    Counts the main process's batches (each rank sees ``1 / world_size`` of the data). Use:
    ``custom_hooks = [dict(type='mmconvnext.ProgressBarHook')]`` (``tools/test.py`` adds it).
    """

    def __init__(self):
        self._bar = None

    def before_test_epoch(self, runner):
        if is_main_process():
            self._bar = ProgressBar(len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._bar is not None:
            self._bar.update()

    def after_test_epoch(self, runner, metrics=None):
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar = None
