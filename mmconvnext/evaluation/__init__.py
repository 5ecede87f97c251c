from .classwise_iou_metric import ClasswiseIoUMetric

__all__ = ['ClasswiseIoUMetric']
