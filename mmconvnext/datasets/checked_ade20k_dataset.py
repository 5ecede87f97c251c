"""mmseg's ``ADE20KDataset`` that names bad samples (or skips them)."""
from mmseg.datasets import ADE20KDataset

from mmconvnext.registry import DATASETS
from .sample_guard import SampleGuardMixin


@DATASETS.register_module()
class CheckedADE20KDataset(SampleGuardMixin, ADE20KDataset):
    """``ADE20KDataset`` with :class:`SampleGuardMixin` (``skip_bad_samples``, default False).

    ADE20K's dataset drops nothing: every image of ``data_prefix.img_path`` is a sample.
    """
