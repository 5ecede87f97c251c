"""The number of skipped bad training samples, in the log at every logging interval."""
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook

from mmconvnext.registry import HOOKS


def skip_counters(dataset):
    """The ``skipped_samples`` counters of the datasets in ``dataset`` (dataset wrappers'
    ``dataset`` / ``datasets`` included) that skip bad samples (``skip_bad_samples=True``)."""
    if getattr(dataset, 'skip_bad_samples', False):
        yield dataset.skipped_samples
    if hasattr(dataset, 'dataset'):
        yield from skip_counters(dataset.dataset)
    for child in getattr(dataset, 'datasets', []):
        yield from skip_counters(child)


@HOOKS.register_module()
class SkippedSamplesHook(Hook):
    """Put the bad training samples skipped so far (all processes, all dataloader workers) into
    the message hub as ``train/skipped_samples``; mmengine's log processor logs its current value
    at every logging interval, e.g. ``skipped_samples: 2``.

    Does nothing unless the training dataset skips bad samples
    (:class:`mmconvnext.datasets.SampleGuardMixin`, ``skip_bad_samples=True``). Samples that
    workers prefetch ahead of training count when loaded. With several processes the counts are
    summed (one all-reduce of a scalar per iteration).
    """

    def __init__(self):
        self._counters = []

    def before_train(self, runner):
        self._counters = list(skip_counters(runner.train_dataloader.dataset))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self._counters:
            return
        skipped = torch.tensor(sum(counter.value for counter in self._counters))
        all_reduce(skipped)
        runner.message_hub.update_scalar('train/skipped_samples', int(skipped))
