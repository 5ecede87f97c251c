"""A dataset whose bad samples are named, or skipped and counted, instead of stopping training
with an error that names neither the sample nor its dataset index."""
import logging
import multiprocessing

from mmengine.logging import print_log


class BadSampleError(RuntimeError):
    """A sample that failed to load or transform; the message names its files and index."""


class SampleGuardMixin:
    """Mix into an mmengine ``BaseDataset`` subclass (before it, so its ``prepare_data`` wraps).

    A sample whose loading or transform raises, or that :meth:`check_sample` refuses, raises
    :class:`BadSampleError` naming the dataset index, the image / label-map files (and COCO image
    id) and the original error. With
    ``skip_bad_samples=True`` a training dataset (not ``test_mode``: evaluating fewer samples
    would change the metrics) logs a warning instead, counts the sample in
    :attr:`skipped_samples` and lets mmengine's ``BaseDataset.__getitem__`` draw another index
    (at most ``max_refetch`` times).

    :attr:`skipped_samples` is a ``multiprocessing.Value`` created with the dataset in the main
    process, so dataloader workers (forked, or spawned: it travels with the pickled dataset)
    increment the count the main process reads (:class:`mmconvnext.engine.hooks.SkippedSamplesHook`
    logs it).
    """

    def __init__(self, *args, skip_bad_samples=False, **kwargs):
        self.skip_bad_samples = skip_bad_samples
        self.skipped_samples = multiprocessing.Value('q', 0)
        super().__init__(*args, **kwargs)

    def prepare_data(self, idx):
        try:
            sample = super().prepare_data(idx)
            if sample is not None:
                self.check_sample(idx, sample)
            return sample
        except Exception as error:
            message = (f'{type(self).__name__}: {self.describe_sample(idx)}: '
                       f'{type(error).__name__}: {error}')
            if not self.skip_bad_samples or self.test_mode:
                raise BadSampleError(message) from error
            with self.skipped_samples.get_lock():
                self.skipped_samples.value += 1
            print_log(f'skipped {message}', logger='current', level=logging.WARNING)
            return None

    def check_sample(self, idx, sample):
        """Raise an exception if ``sample`` (sample ``idx`` transformed) would fail later, outside
        the dataset (in collation or the loss), where the error could not name it, or would
        train on wrong targets. Here: nothing."""

    def describe_sample(self, idx):
        """``dataset index N, image PATH[, label map PATH][, image id N]`` of sample ``idx``."""
        info = self.get_data_info(idx)
        parts = [f'dataset index {idx}', f'image {info.get("img_path")}']
        if info.get('seg_map_path'):
            parts.append(f'label map {info["seg_map_path"]}')
        if 'img_id' in info:
            parts.append(f'image id {info["img_id"]}')
        return ', '.join(parts)
