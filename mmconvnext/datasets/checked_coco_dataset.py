"""mmdet's ``CocoDataset`` that names bad samples (or skips them) and reports the annotations
it drops."""
import logging
from collections import defaultdict

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log

from mmconvnext.registry import DATASETS
from .coco_annotations import dropped_reason
from .sample_guard import SampleGuardMixin

#: How many dropped annotations of each reason the start-of-run report shows.
EXAMPLES_PER_REASON = 3


@DATASETS.register_module()
class CheckedCocoDataset(SampleGuardMixin, CocoDataset):
    """``CocoDataset`` with :class:`SampleGuardMixin` (``skip_bad_samples``, default False).

    ``CocoDataset`` silently leaves out annotations whose box lies outside the image or has zero
    size, or whose category is not among the classes. This one counts them by the
    kind of reason (:func:`~mmconvnext.datasets.coco_annotations.dropped_reason`) while it
    loads and logs one warning with the counts and a few examples (annotation id, file name)
    once the data list is ready; :attr:`dropped_annotations` holds them (kind of reason: list of
    ``(annotation id, file name, message)``).
    """

    def load_data_list(self):
        self.dropped_annotations = defaultdict(list)
        self._category_id_set = None
        data_list = super().load_data_list()
        self._report_dropped_annotations(sum(len(info['instances']) for info in data_list))
        return data_list

    def parse_data_info(self, raw_data_info):
        if self._category_id_set is None:
            self._category_id_set = set(self.cat_ids)
        image = raw_data_info['raw_img_info']
        for annotation in raw_data_info['raw_ann_info']:
            dropped = dropped_reason(annotation, image, self._category_id_set)
            if dropped is not None:
                kind, message = dropped
                self.dropped_annotations[kind].append(
                    (annotation['id'], image['file_name'], message))
        return super().parse_data_info(raw_data_info)

    def _report_dropped_annotations(self, kept):
        if not self.dropped_annotations:
            return
        dropped = sum(map(len, self.dropped_annotations.values()))
        lines = [f'{type(self).__name__} {self.ann_file}: {dropped} of {dropped + kept} '
                 'annotations dropped (the model never sees them):']
        for kind, entries in self.dropped_annotations.items():
            examples = '; '.join(f'annotation id {annotation_id} in {file_name}: {message}'
                                 for annotation_id, file_name, message
                                 in entries[:EXAMPLES_PER_REASON])
            more = f'; {len(entries) - EXAMPLES_PER_REASON} more' \
                if len(entries) > EXAMPLES_PER_REASON else ''
            lines.append(f'  {len(entries)} {kind}: {examples}{more}')
        lines.append('  (tools/check_dataset.py CONFIG lists them all)')
        print_log('\n'.join(lines), logger='current', level=logging.WARNING)
