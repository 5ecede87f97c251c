"""The embedded demo on reduced sizes: its data writer, its configs, and ``tools/demo.py``.

The writer is checked for determinism, idempotence and valid COCO / ADE20K layouts (read back
with pycocotools and with the mmdet / mmseg datasets of the demo configs); ``tools/demo.py``
runs once end to end on 8 training scenes (one Mask R-CNN epoch, two UperNet iterations) with
the real tools, metrics and visualizers; bad data roots and work dirs are named.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS as DET_DATASETS
from mmengine.config import Config
from mmseg.registry import DATASETS as SEG_DATASETS
from pycocotools.coco import COCO
from tiny_runs import CONFIG_DIR, TOOLS_DIR, load_tool

from mmconvnext.demo import ADE_CLASSES, SHAPE_CLASSES, draw_scene, write_demo_data
from mmconvnext.demo.shape_scenes import circumscribed_diameter, edge_band, shape_outline
from mmconvnext.demo.summary_figure import CELL_INCHES

DEMO_TOOL = TOOLS_DIR / 'demo.py'
DET_CONFIG = CONFIG_DIR / 'demo' / 'mask_rcnn_convnext_atto_demo.py'
SEG_CONFIG = CONFIG_DIR / 'demo' / 'upernet_convnext_atto_demo.py'
LAST_LINE = re.compile(r'^demo: bbox_mAP=(\d\.\d{3}) segm_mAP=(\d\.\d{3}) mIoU=(\d+\.\d{2}) '
                       r'min_class_IoU=(\d+\.\d{2}) pictures=(\S+) summary=(\S+)$')
#: (num_train, num_val, size, seed) of the small written datasets.
SMALL = dict(num_train=6, num_val=3, size=64, seed=3)


def file_bytes(root):
    return {path.relative_to(root): path.read_bytes()
            for path in sorted(root.rglob('*')) if path.is_file()}


@pytest.fixture(scope='module')
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_data')
    assert write_demo_data(root, **SMALL)
    return root


def redrawn_scenes():
    """The scenes of ``SMALL``, train then val, drawn again from the same seed."""
    rng = np.random.default_rng(SMALL['seed'])
    return [draw_scene(rng, SMALL['size'])
            for _ in range(SMALL['num_train'] + SMALL['num_val'])]


def test_writer_is_deterministic_idempotent_and_seeded(small_root, tmp_path):
    assert write_demo_data(tmp_path / 'same', **SMALL)
    assert file_bytes(tmp_path / 'same') == file_bytes(small_root)
    stamp = (small_root / 'demo_data.json').stat().st_mtime_ns
    assert not write_demo_data(small_root, **SMALL)  # stamp matches: nothing rewritten
    assert (small_root / 'demo_data.json').stat().st_mtime_ns == stamp
    write_demo_data(tmp_path / 'other', **dict(SMALL, seed=4))
    assert file_bytes(tmp_path / 'other') != file_bytes(small_root)


def test_changed_settings_rewrite_the_data(tmp_path):
    write_demo_data(tmp_path, **SMALL)
    assert write_demo_data(tmp_path, **dict(SMALL, num_train=2))
    assert len(list((tmp_path / 'coco' / 'train').iterdir())) == 2
    assert json.loads((tmp_path / 'demo_data.json').read_text())['complete']


def test_coco_polygons_and_boxes_match_the_drawn_masks(small_root):
    scenes = redrawn_scenes()
    image_ids = iter(range(1, len(scenes) + 1))
    ious = []
    for split, count in (('train', SMALL['num_train']), ('val', SMALL['num_val'])):
        coco = COCO(str(small_root / 'coco' / 'annotations' / f'instances_{split}.json'))
        assert [cat['name'] for cat in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
        assert len(coco.getImgIds()) == count
        for image, instances in scenes[:count]:
            image_id = next(image_ids)
            info = coco.loadImgs(image_id)[0]
            written = cv2.imread(str(small_root / 'coco' / split / info['file_name']))
            assert written.shape == image.shape
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert len(annotations) == len(instances)
            for annotation, (label, mask) in zip(annotations, instances):
                assert annotation['category_id'] == label + 1
                polygon_mask = coco.annToMask(annotation).astype(bool)
                ious.append((polygon_mask & mask).sum() / (polygon_mask | mask).sum())
                ys, xs = np.nonzero(mask)
                x, y, w, h = annotation['bbox']
                assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        scenes = scenes[count:]
    assert np.mean(ious) > 0.97 and min(ious) > 0.5  # the lowest: thin slivers left by occlusion


def test_classes_cover_equal_shares_of_the_pixels(tmp_path):
    """Shapes of every class are drawn with the same areas: unequal shares made the segmentor
    learn the rarest class (triangles, 0.36 of the circles' pixels) last, or not at all."""
    for name in SHAPE_CLASSES:  # the outline's area (shoelace formula) is the one asked for
        x, y = shape_outline(name, (64, 64), circumscribed_diameter(name, 40), 0.3).T
        assert abs(x @ np.roll(y, 1) - y @ np.roll(x, 1)) / 2 == pytest.approx(40 ** 2), name
    write_demo_data(tmp_path, num_train=120, num_val=1, size=64, seed=1)
    pixels = np.zeros(256, int)
    for label_file in (tmp_path / 'ade' / 'annotations' / 'training').glob('*.png'):
        pixels += np.bincount(cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED).ravel(),
                              minlength=256)
    shares = pixels[2:2 + len(SHAPE_CLASSES)]
    assert shares.max() / shares.min() < 1.25, shares


def test_ade_labels_match_the_drawn_masks(small_root):
    scenes = redrawn_scenes()
    labels = sorted((small_root / 'ade' / 'annotations' / 'training').glob('*.png')) + sorted(
        (small_root / 'ade' / 'annotations' / 'validation').glob('*.png'))
    assert len(labels) == len(scenes)
    for label_file, (_, instances) in zip(labels, scenes):
        label = cv2.imread(str(label_file), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.max() <= len(ADE_CLASSES)
        edges = np.zeros(label.shape, bool)
        for _, mask in instances:
            edges |= edge_band(mask)
        assert (label[edges] == 0).all() and (label[~edges] > 0).all()
        for class_index, mask in instances:
            assert (label[mask & ~edges] == class_index + 2).all()


def test_demo_configs_load_the_written_layouts_with_their_classes(small_root):
    det_cfg = Config.fromfile(DET_CONFIG)
    det_cfg.train_dataloader.dataset.data_root = str(small_root / 'coco')
    det_dataset = DET_DATASETS.build(det_cfg.train_dataloader.dataset)
    assert det_dataset.metainfo['classes'] == SHAPE_CLASSES
    sample = det_dataset[0]['data_samples']
    assert len(sample.gt_instances) >= 1 and len(sample.gt_instances.masks) == len(
        sample.gt_instances)
    seg_cfg = Config.fromfile(SEG_CONFIG)
    for split in ('train_dataloader', 'val_dataloader'):
        seg_cfg[split].dataset.data_root = str(small_root / 'ade')
        seg_dataset = SEG_DATASETS.build(seg_cfg[split].dataset)
        assert seg_dataset.metainfo['classes'] == ADE_CLASSES
        labels = seg_dataset[0]['data_samples'].gt_sem_seg.data
        assert set(labels.unique().tolist()) <= {*range(len(ADE_CLASSES)), 255}
    assert len(seg_dataset) == SMALL['num_val']


def test_demo_trains_evaluates_draws_and_flags_a_missed_minimum(tmp_path):
    """One run: minima 0 but 100 for the smallest class IoU, so its warning and exit 1 show."""
    result = subprocess.run(
        [sys.executable, str(DEMO_TOOL), '--data-root', tmp_path / 'data', '--work-dir',
         tmp_path / 'work', '--num-train', '8', '--num-val', '2', '--det-epochs', '1',
         '--seg-iters', '2', '--min-metrics', '0', '0', '0', '100'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=800)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout[-5000:]
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-5:]
    bbox_map, segm_map, miou, min_class_iou = map(float, match.groups()[:4])
    assert 0 <= bbox_map <= 1 and 0 <= segm_map <= 1 and 0 <= min_class_iou <= miou < 100
    assert lines[-2].startswith('demo: WARNING: min_class_IoU') and 'WARNING' not in lines[-3]
    pictures, summary = Path(match.group(5)), Path(match.group(6))
    assert pictures == tmp_path / 'work' / 'pictures'
    for task in ('mask_rcnn', 'upernet'):
        assert len(list((pictures / task).rglob('*.png'))) == 2, task
        assert (tmp_path / 'work' / 'logs' / f'{task}_train.log').is_file()
    assert summary == tmp_path / 'work' / 'summary.png'
    picture = cv2.imread(str(summary))  # a row per held-out scene, then the curves and metrics
    assert picture.shape[:2] == (round((2 + 1.6) * CELL_INCHES * 100), 4 * CELL_INCHES * 100)
    # the per-class tables: every class with its bbox / segm AP, then its IoU
    table = [line for line in lines if re.match(r'demo:   \w+ +[\d.na]+', line)]
    assert [line.split()[1] for line in table] == list(SHAPE_CLASSES) + list(ADE_CLASSES)
    class_ious = [float(line.split()[-1]) for line in table[3:]]  # NaN: absent, not predicted
    assert f'{min(np.nan_to_num(class_ious)):.2f}' == match.group(4)
    assert any(line.startswith('demo: wall times: data') for line in lines)
    assert any('summary picture' in line for line in lines)


def test_unusable_data_root_or_work_dir_is_named(tmp_path, capsys):
    demo = load_tool('demo.py')
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    for argv, named in (
        (['--data-root', a_file / 'data', '--work-dir', tmp_path / 'w'], 'data-root'),
        (['--work-dir', a_file / 'work'], 'work-dir'),
    ):
        with pytest.raises(SystemExit, match=re.escape(f'demo: error: --{named} {a_file}')):
            demo.main([str(arg) for arg in argv])
    (tmp_path / 'foreign' / 'coco').mkdir(parents=True)
    with pytest.raises(SystemExit, match='coco exists but .* does not: not demo data'):
        demo.main(['--data-root', str(tmp_path / 'foreign'), '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(SystemExit):
        demo.main(['--num-train', '0'])
    assert '--num-train 0: must be >= 1' in capsys.readouterr().err


@pytest.mark.parametrize('side_by_side', (False, True))
def test_failed_tools_are_named_with_their_logs_in_either_order(tmp_path, side_by_side):
    demo = load_tool('demo.py')
    jobs = [demo.Job(task, 'test.py', [tmp_path / f'{task}.py', tmp_path / 'none.pth'],
                     tmp_path / f'{task}.log') for task in ('mask_rcnn', 'upernet')]
    with pytest.raises(demo.DemoError) as error:
        demo.run_jobs(jobs, 1, side_by_side)
    for job in jobs:  # both ran, both failures are reported with the end of their log
        assert f'tools/test.py ({job.task}) failed (exit 1)' in str(error.value)
        assert f'config file {tmp_path / job.task}.py does not exist' in job.log_file.read_text()
