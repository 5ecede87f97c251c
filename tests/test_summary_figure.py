"""The demo's summary picture from synthetic rows, losses and metrics (the demo's own run is
covered by ``test_demo.py``)."""
import json

import cv2
import numpy as np
import pytest

from mmconvnext.demo import SHAPE_CLASSES
from mmconvnext.demo.summary_figure import (CELL_INCHES, CLASS_COLOURS, colour_labels, draw_summary,
                                            read_losses)


def scalars_file(path, records):
    path.write_text(''.join(json.dumps(record) + '\n' for record in records))
    return path


def test_read_losses_keeps_training_records_only(tmp_path):
    path = scalars_file(tmp_path / 'scalars.json', [
        dict(lr=0.1, loss=2.0, step=10), dict(lr=0.1, loss=1.5, step=20),
        dict(mIoU=50.0, step=20), dict(loss=1.0, step=30)])
    steps, losses = read_losses(path)
    assert steps.tolist() == [10, 20, 30] and losses.tolist() == [2.0, 1.5, 1.0]
    with pytest.raises(ValueError, match='holds no training loss record'):
        read_losses(scalars_file(tmp_path / 'val_only.json', [dict(mIoU=50.0, step=1)]))


def test_colour_labels_maps_ignored_background_and_classes():
    colours = colour_labels(np.array([[-1, 0, 1, 3]]))
    assert colours.shape == (1, 4, 3)
    assert colours[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert colours[0, 1:].tolist() == [list(CLASS_COLOURS[i]) for i in (0, 1, 3)]


def test_summary_has_a_row_per_scene_and_shows_the_predictions(tmp_path):
    size, rows = 64, []
    for index in range(3):
        image = np.full((size, size, 3), 90, np.uint8)
        truth = np.zeros((size, size), int)
        truth[10:30, 10:30] = index + 1
        mask = truth > 0
        rows.append(dict(image=image, ground_truth=truth, semantic=truth.copy(),
                         instances=[(index, 0.9, [10, 10, 30, 30], mask)]))
    losses = {'Mask R-CNN': (np.arange(1, 11), np.linspace(2, 0.5, 10)),
              'UperNet': (np.arange(1, 21), np.linspace(1.5, 0.2, 20))}
    out_file = tmp_path / 'summary.png'
    draw_summary(rows, SHAPE_CLASSES, losses, ['bbox_mAP=0.9', 'circle 0.9'], out_file, dpi=50)
    picture = cv2.imread(str(out_file))
    assert picture.shape[1] == pytest.approx(4 * CELL_INCHES * 50, abs=2)
    assert picture.shape[0] == pytest.approx((3 + 1.6) * CELL_INCHES * 50, abs=2)
    # each class's colour is drawn (the ground truth of rows 1-3)
    rgb = picture[..., ::-1].reshape(-1, 3).astype(int)
    for colour in CLASS_COLOURS[1:]:
        target = np.round(np.array(colour) * 255)
        assert (np.abs(rgb - target).sum(1) < 12).sum() > 100, colour
