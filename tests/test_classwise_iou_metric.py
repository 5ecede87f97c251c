"""``ClasswiseIoUMetric``: mmseg's IoUMetric plus the IoU of every class, from its config name."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

CLASSES = ('background', 'circle', 'square', 'triangle')


def sample(prediction, label):
    data_sample = SegDataSample()
    data_sample.pred_sem_seg = PixelData(data=torch.as_tensor(prediction)[None])
    data_sample.gt_sem_seg = PixelData(data=torch.as_tensor(label)[None])
    return data_sample.to_dict()


def expected_iou(predictions, labels, index):
    """Percent IoU of class ``index`` over all pixels not labelled 255, or NaN."""
    pred, label = np.concatenate(predictions).ravel(), np.concatenate(labels).ravel()
    pred, label = pred[label != 255], label[label != 255]
    union = ((pred == index) | (label == index)).sum()
    return ((pred == index) & (label == index)).sum() / union * 100 if union else np.nan


def test_each_class_iou_is_returned_and_averages_to_miou():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 3, (16, 16)) for _ in range(3)]  # class 3 never labelled ...
    labels[0][:2] = 255
    predictions = [np.where(rng.random((16, 16)) < 0.7, label, rng.integers(0, 3, (16, 16)))
                   for label in labels]  # ... nor predicted: NaN
    metric = METRICS.build(dict(type='mmconvnext.ClasswiseIoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, [sample(p, l) for p, l in zip(predictions, labels)])
    results = metric.compute_metrics(metric.results)
    for index, name in enumerate(CLASSES[:3]):
        assert results[f'IoU.{name}'] == pytest.approx(
            expected_iou(predictions, labels, index), abs=0.006)
    assert np.isnan(results['IoU.triangle'])
    assert results['mIoU'] == pytest.approx(
        np.mean([results[f'IoU.{name}'] for name in CLASSES[:3]]), abs=0.01)


def test_plain_iou_metric_is_unchanged_and_format_only_returns_nothing(tmp_path):
    metric = METRICS.build(dict(type='ClasswiseIoUMetric', format_only=True,
                                output_dir=str(tmp_path)))
    metric.dataset_meta = dict(classes=CLASSES)
    assert metric.compute_metrics([]) == {}
