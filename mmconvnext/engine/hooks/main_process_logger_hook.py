"""mmengine's ``LoggerHook`` whose test metrics file only the main process writes.

mmengine 0.10's ``LoggerHook.after_test_epoch`` dumps the test metrics from every rank to the
same ``WORK_DIR/<timestamp>/<timestamp>.json`` (the ranks share the timestamp). Two ranks that
write at once can leave it invalid JSON: on 2 gloo processes one run ended with
``..."time": 0.59186530113220212}`` (one rank's bytes over the other's). The metrics are gathered
to every rank before, so the main process alone writes them.
"""
from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook

from mmconvnext.registry import HOOKS


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """``LoggerHook`` (same arguments) that logs and dumps the test metrics on the main process
    only; ``tools/test.py`` puts it in place of ``LoggerHook``."""

    def after_test_epoch(self, runner, metrics=None):
        if is_main_process():
            super().after_test_epoch(runner, metrics)
