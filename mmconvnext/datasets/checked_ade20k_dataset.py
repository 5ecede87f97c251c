"""mmseg's ``ADE20KDataset`` that names bad samples (or skips them)."""
from mmseg.datasets import ADE20KDataset
from PIL import Image

from mmconvnext.registry import DATASETS
from .label_maps import IGNORE_INDEX
from .sample_guard import SampleGuardMixin


@DATASETS.register_module()
class CheckedADE20KDataset(SampleGuardMixin, ADE20KDataset):
    """``ADE20KDataset`` with :class:`SampleGuardMixin` (``skip_bad_samples``, default False).

    Beyond a failing load or transform, a sample is bad if its label map's size (read from its
    header) is not the image's as loaded (``ori_shape``; the pipeline would crop and resize
    both out of register, or the batch collation fail naming no file), or if the transformed
    labels hold values outside the classes and :data:`~.label_maps.IGNORE_INDEX` (the loss
    would fail). ADE20K's dataset drops nothing: every image of ``data_prefix.img_path`` is a
    sample.
    """

    def check_sample(self, idx, sample):
        data_samples = sample['data_samples']
        # Test-time augmentation packs a list of augmented samples.
        data_samples = data_samples if isinstance(data_samples, list) else [data_samples]
        data_samples = [data_sample for data_sample in data_samples if 'gt_sem_seg' in data_sample]
        if not data_samples:
            return  # a pipeline without LoadAnnotations
        with Image.open(self.get_data_info(idx)['seg_map_path']) as label_image:
            label_width, label_height = label_image.size
        image_height, image_width = data_samples[0].ori_shape
        if (label_height, label_width) != (image_height, image_width):
            raise ValueError(f'label map {label_width}x{label_height}, image '
                             f'{image_width}x{image_height}')
        for data_sample in data_samples:
            self._check_labels(data_sample.gt_sem_seg.data)

    def _check_labels(self, labels):
        num_classes = len(self.metainfo['classes'])
        outside = labels[(labels >= num_classes) & (labels != IGNORE_INDEX)].unique().tolist()
        if outside:
            stored = ' (stored value - 1: reduce_zero_label)' if self.reduce_zero_label else ''
            raise ValueError(f'labels {outside[:10]}{stored} outside the classes '
                             f'0..{num_classes - 1} and {IGNORE_INDEX}')
