"""mmseg's ``IoUMetric`` that also returns each class's IoU, not only the mean.

mmseg prints a per-class table to the log but returns only ``aAcc`` / ``mIoU`` / ``mAcc``; the
saved metrics file, the visualisation backends and any tool reading them then lack the classes.
"""
import numpy as np
from mmseg.evaluation import IoUMetric

from mmconvnext.registry import METRICS, register_downstream


@METRICS.register_module()
class ClasswiseIoUMetric(IoUMetric):
    """``IoUMetric`` (same arguments) whose results add ``IoU.<class name>`` for every class of
    ``dataset_meta['classes']``: percent (0-100, 2 decimals), NaN for a class that is neither in
    the ground truth nor predicted."""

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        intersect = sum(result[0] for result in results).numpy()
        union = sum(result[1] for result in results).numpy()
        with np.errstate(invalid='ignore', divide='ignore'):
            class_iou = np.round(intersect / union * 100, 2)
        for name, iou in zip(self.dataset_meta['classes'], class_iou):
            metrics[f'IoU.{name}'] = float(iou)
        return metrics


register_downstream(ClasswiseIoUMetric, 'METRICS')
