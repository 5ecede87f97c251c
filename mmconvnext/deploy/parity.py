"""How far an exported model's outputs are from PyTorch's, by the measures docs/deploy.md
reports: the largest difference of each output, the share of PyTorch's confident detections
found again, the share of pixels whose class agrees."""
import numpy as np
import torch
from torchvision.ops import box_iou


def largest_differences(reference, exported):
    """{output name: largest |difference|} of the outputs in both dicts (name -> array or
    tensor) whose shapes agree; None where the shapes differ (detectors: another count)."""
    differences = {}
    for name, expected in reference.items():
        if name not in exported:
            continue
        expected = torch.as_tensor(np.asarray(expected)).double()
        actual = torch.as_tensor(np.asarray(exported[name])).double()
        if expected.shape != actual.shape:
            differences[name] = None
        else:
            differences[name] = (expected - actual).abs().max().item() if expected.numel() else 0.
    return differences


def matched_detections(reference, exported, min_score=0.05, min_iou=0.99):
    """(found, total): of the ``reference`` detections scoring at least ``min_score``, how many
    have an ``exported`` detection of the same label with box IoU >= ``min_iou``. Both are dicts
    with ``boxes`` (K, 4), ``scores`` (K,) and ``labels`` (K,)."""
    boxes, labels = (torch.as_tensor(np.asarray(reference[key])) for key in ('boxes', 'labels'))
    confident = torch.as_tensor(np.asarray(reference['scores'])) >= min_score
    boxes, labels = boxes[confident].float(), labels[confident]
    other_boxes, other_labels = (torch.as_tensor(np.asarray(exported[key]))
                                 for key in ('boxes', 'labels'))
    if not len(boxes) or not len(other_boxes):
        return 0, len(boxes)
    same = (box_iou(boxes, other_boxes.float()) >= min_iou) & (labels[:, None] == other_labels)
    return int(same.any(dim=1).sum()), len(boxes)


def class_map_agreement(reference, exported):
    """Share of pixels (0-1) whose class agrees between two class maps of one shape."""
    reference, exported = np.asarray(reference), np.asarray(exported)
    return float((reference == exported).mean())
