"""The demo's summary picture: both models' predictions on held-out scenes, their training-loss
curves and their final metrics, in one matplotlib figure.

A row per held-out image: the input, then three class maps drawn alike (background grey, each
shape class in its colour): the ground truth (the ADE20K label map, its ignored edge band
white), the Mask R-CNN prediction (each instance's mask filled, its box outlined and captioned
with class and score) and the UperNet prediction. Below the rows, the training loss of each run
against its iteration (read from mmengine's ``vis_data/scalars.json``) and the metrics.
"""
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use('Agg')  # files only: no display is needed, none is opened
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from mmdet.apis import inference_detector  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmseg.apis import inference_model  # noqa: E402

from mmconvnext.apis import init_inference_model  # noqa: E402

#: RGB (0-1) of background and of each shape class, in ``ADE_CLASSES`` order.
CLASS_COLOURS = ((0.35, 0.35, 0.35), (0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (0.0, 0.51, 0.78))
#: Colour of the ignored edge band in the ground truth.
IGNORED_COLOUR = (1.0, 1.0, 1.0)
#: Opacity of an instance's mask over the background and the instances drawn before it.
MASK_ALPHA = 0.7
#: Inches per image cell; the figure is 4 cells wide.
CELL_INCHES = 2.6
#: Mask R-CNN instances scoring below this are not drawn.
SCORE_THR = 0.5


def held_out_rows(ade_root, det_cfg, det_checkpoint, seg_cfg, seg_checkpoint, count):
    """The rows of :func:`draw_summary` for the first ``count`` held-out scenes (by name).

    Args:
        ade_root (Path): the demo data in the ADE20K layout (``images/validation/*.jpg`` and
            their label PNGs under ``annotations/validation/``, 0 ignored, 1 background).
        det_cfg, seg_cfg (mmengine.Config): the demo's Mask R-CNN and UperNet configs.
        det_checkpoint, seg_checkpoint (Path): their trained weights (must fit exactly).
        count (int): rows wanted; fewer if there are fewer held-out scenes.
    """
    detector = init_inference_model(det_cfg, str(det_checkpoint))
    segmentor = init_inference_model(seg_cfg, str(seg_checkpoint))
    rows = []
    for image_file in sorted((ade_root / 'images' / 'validation').glob('*.jpg'))[:count]:
        image = cv2.imread(str(image_file))
        labels = cv2.imread(str(ade_root / 'annotations' / 'validation' /
                                f'{image_file.stem}.png'), cv2.IMREAD_UNCHANGED)
        # Each package builds its test pipeline in the current default scope: set it per call.
        with DefaultScope.overwrite_default_scope('mmdet'):
            instances = inference_detector(detector, image).pred_instances.cpu()
        instances = instances[instances.scores >= SCORE_THR]
        with DefaultScope.overwrite_default_scope('mmseg'):
            semantic = inference_model(segmentor, image).pred_sem_seg.data[0].cpu().numpy()
        rows.append(dict(
            image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
            ground_truth=labels.astype(int) - 1,
            instances=[(int(label), float(score), box.tolist(), mask.numpy())
                       for label, score, box, mask in zip(
                           instances.labels, instances.scores, instances.bboxes,
                           instances.masks)],
            semantic=semantic))
    return rows


def read_losses(scalars_file):
    """(iterations, losses) of the training records in an mmengine ``scalars.json``.

    Each line is one JSON record; training records carry ``loss`` and the global ``step``
    (iteration); validation records carry no ``loss`` and are skipped.
    """
    steps, losses = [], []
    for line in Path(scalars_file).read_text().splitlines():
        record = json.loads(line)
        if 'loss' in record:
            steps.append(record['step'])
            losses.append(record['loss'])
    if not steps:
        raise ValueError(f'{scalars_file} holds no training loss record')
    return np.array(steps), np.array(losses)


def colour_labels(labels):
    """(H, W) int map: -1 ignored, 0 background, k class k -> (H, W, 3) float RGB."""
    colours = np.array((IGNORED_COLOUR, ) + CLASS_COLOURS)
    return colours[labels + 1]


def draw_instances(axis, shape, instances, class_names):
    """Mask R-CNN's instances on the background colour: filled masks (lowest score first),
    boxes and ``class score`` captions.

    Args:
        shape (tuple): (H, W) of the image.
        instances (list): ``(label, score, box (x0, y0, x1, y1), bool mask (H, W))``, with
            ``label`` indexing ``class_names``.
    """
    shown = np.broadcast_to(np.array(CLASS_COLOURS[0]), (*shape, 3)).copy()
    for label, _, _, mask in sorted(instances, key=lambda instance: instance[1]):
        shown[mask] = (1 - MASK_ALPHA) * shown[mask] + MASK_ALPHA * np.array(
            CLASS_COLOURS[label + 1])
    axis.imshow(shown, interpolation='nearest')
    for label, score, (x0, y0, x1, y1), _ in instances:
        colour = CLASS_COLOURS[label + 1]
        axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                 edgecolor=colour, linewidth=1.5))
        axis.text(x0 - 0.5, y0 - 1.5, f'{class_names[label]} {score:.2f}', fontsize=7,
                  color='white', va='bottom', bbox=dict(facecolor=colour, edgecolor='none',
                                                        pad=1, alpha=0.85))


def draw_summary(rows, class_names, losses, metrics_lines, out_file, dpi=100):
    """Write the summary figure to ``out_file`` (PNG).

    Args:
        rows (list[dict]): per held-out image: ``image`` (H, W, 3) uint8 RGB, ``ground_truth``
            (H, W) int (-1 ignored, 0 background, k >= 1 class ``k - 1`` of ``class_names``),
            ``instances`` (see :func:`draw_instances`) and ``semantic`` (H, W) int (0
            background, k class ``k - 1``).
        class_names (Sequence[str]): the shape classes, in label order.
        losses (dict[str, tuple]): run name -> (iterations, losses), see :func:`read_losses`.
        metrics_lines (list[str]): the text shown beside the loss curves.
        out_file (str | Path): the PNG written (its folder must exist).
        dpi (int): pixels per inch; a cell is ``CELL_INCHES * dpi`` pixels wide.
    """
    columns = ('input', 'ground truth', 'Mask R-CNN', 'UperNet')
    figure = plt.figure(figsize=(4 * CELL_INCHES, CELL_INCHES * (len(rows) + 1.6)),
                        layout='constrained')
    grid = figure.add_gridspec(len(rows) + 1, 4, height_ratios=[1] * len(rows) + [1.6])
    for row, scene in enumerate(rows):
        axes = [figure.add_subplot(grid[row, column]) for column in range(4)]
        axes[0].imshow(scene['image'], interpolation='nearest')
        axes[1].imshow(colour_labels(scene['ground_truth']), interpolation='nearest')
        draw_instances(axes[2], scene['image'].shape[:2], scene['instances'], class_names)
        axes[3].imshow(colour_labels(scene['semantic']), interpolation='nearest')
        for column, axis in enumerate(axes):
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(columns[column], fontsize=11)
    curves = figure.add_subplot(grid[-1, :2])
    for name, (steps, values) in losses.items():
        curves.plot(steps, values, label=name, linewidth=1.2)
    curves.set_yscale('log')
    curves.set_xlabel('iteration')
    curves.set_ylabel('training loss (sum of terms)')
    curves.grid(alpha=0.3)
    curves.legend(fontsize=9)
    text = figure.add_subplot(grid[-1, 2:])
    text.axis('off')
    text.text(0, 1, '\n'.join(metrics_lines), va='top', family='monospace', fontsize=9)
    legend = [Patch(color=colour, label=name) for colour, name in
              zip(CLASS_COLOURS, ('background', ) + tuple(class_names))]
    legend.append(Patch(facecolor=IGNORED_COLOUR, edgecolor='black', label='ignored edge'))
    text.legend(handles=legend, loc='lower left', ncols=3, fontsize=8, frameon=False)
    figure.savefig(out_file, dpi=dpi)
    plt.close(figure)
