"""The demo dataset on disk: the same shape scenes in the COCO and the ADE20K layouts.

    ROOT/coco/{train,val}/NNNNN.jpg       ROOT/coco/annotations/instances_{train,val}.json
    ROOT/ade/images/{training,validation}/NNNNN.jpg
    ROOT/ade/annotations/{training,validation}/NNNNN.png
    ROOT/demo_data.json                   (stamp: generator version and settings)

COCO: one instance per visible shape, its segmentation as polygons (one per connected part of
the visible mask), category ids 1.. in :data:`SHAPE_CLASSES` order. ADE20K label PNGs follow
ADEChallengeData2016, read with mmseg's ``reduce_zero_label=True``: 0 is "unlabelled" (here the
ambiguous anti-aliased band around each shape, ignored), 1 is background and 2.. the shapes, in
:data:`ADE_CLASSES` order. Writing is deterministic in ``seed`` and skipped when the stamp
already records the same settings.
"""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from .shape_scenes import SHAPE_CLASSES, draw_scene, edge_band

#: Bump when the drawn data changes, so older demo data is rewritten.
GENERATOR_VERSION = 3
#: The stamp file under the data root.
STAMP_NAME = 'demo_data.json'
#: Semantic classes after ``reduce_zero_label`` (label PNG value - 1).
ADE_CLASSES = ('background', ) + SHAPE_CLASSES
#: (COCO split, ADE split) folder names.
SPLITS = (('train', 'training'), ('val', 'validation'))


def mask_polygons(mask, upsampling=4):
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` of a bool mask, one per connected part.

    The outer contours are traced on the mask upsampled ``upsampling`` times (nearest), so they
    run along pixel borders rather than through the border pixels' centres: rasterised again by
    pycocotools they give back the mask (up to a few pixels).
    """
    upsampled = cv2.resize(mask.astype(np.uint8), None, fx=upsampling, fy=upsampling,
                           interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(contour.reshape(-1) / upsampling).tolist() for contour in contours
            if len(contour) >= 3]


def label_map(instances, size):
    """The ADE20K label PNG of a scene: (size, size) uint8, 1 background, 2.. shapes, 0 on each
    shape's edge band."""
    labels = np.ones((size, size), np.uint8)
    edges = np.zeros((size, size), bool)
    for label, mask in instances:
        labels[mask] = label + 2
        edges |= edge_band(mask)
    labels[edges] = 0
    return labels


def write_split(root, coco_split, ade_split, rng, count, size, first_id):
    """Draw ``count`` scenes (image ids from ``first_id``) and write them as one split of both
    layouts."""
    folders = dict(coco=root / 'coco' / coco_split,
                   ade_images=root / 'ade' / 'images' / ade_split,
                   ade_labels=root / 'ade' / 'annotations' / ade_split)
    for folder in folders.values():
        folder.mkdir(parents=True)
    coco = dict(images=[], annotations=[], categories=[
        dict(id=index, name=name) for index, name in enumerate(SHAPE_CLASSES, start=1)])
    for image_id in range(first_id, first_id + count):
        image, instances = draw_scene(rng, size)
        name = f'{image_id:05d}'
        cv2.imwrite(str(folders['coco'] / f'{name}.jpg'), image)
        shutil.copyfile(folders['coco'] / f'{name}.jpg', folders['ade_images'] / f'{name}.jpg')
        cv2.imwrite(str(folders['ade_labels'] / f'{name}.png'), label_map(instances, size))
        coco['images'].append(dict(id=image_id, file_name=f'{name}.jpg', height=size, width=size))
        for label, mask in instances:
            ys, xs = np.nonzero(mask)
            x, y = int(xs.min()), int(ys.min())
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=image_id,
                category_id=label + 1, segmentation=mask_polygons(mask), area=int(mask.sum()),
                bbox=[x, y, int(xs.max()) + 1 - x, int(ys.max()) + 1 - y], iscrowd=0))
    annotation_file = root / 'coco' / 'annotations' / f'instances_{coco_split}.json'
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    annotation_file.write_text(json.dumps(coco))


def write_demo_data(root, num_train=320, num_val=80, size=128, seed=0):
    """Write the demo dataset under ``root`` unless its stamp records the same settings.

    Args:
        root (str | Path): data root (created if missing).
        num_train (int): training scenes. num_val (int): held-out scenes.
        size (int): image side in pixels.
        seed (int): seed of the one random generator that draws every scene.

    Returns:
        bool: True if the data was written, False if it was already there.

    Raises:
        ValueError: a count below 1 or a size below 32.
        FileExistsError: ``root/coco`` or ``root/ade`` exist without a stamp (not demo data).
    """
    if min(num_train, num_val) < 1 or size < 32:
        raise ValueError(f'demo data: num_train={num_train}, num_val={num_val} must be >= 1 and '
                         f'size={size} >= 32')
    root = Path(root)
    stamp_file = root / STAMP_NAME
    settings = dict(generator_version=GENERATOR_VERSION, num_train=num_train, num_val=num_val,
                    size=size, seed=seed)
    if stamp_file.is_file():
        if json.loads(stamp_file.read_text()) == dict(settings, complete=True):
            return False
    else:
        for layout in ('coco', 'ade'):
            if (root / layout).exists():
                raise FileExistsError(f'{root / layout} exists but {stamp_file} does not: not '
                                      'demo data, remove it or choose another data root')
    root.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(json.dumps(dict(settings, complete=False)))
    for layout in ('coco', 'ade'):
        shutil.rmtree(root / layout, ignore_errors=True)
    rng = np.random.default_rng(seed)
    first_id = 1
    for (coco_split, ade_split), count in zip(SPLITS, (num_train, num_val)):
        write_split(root, coco_split, ade_split, rng, count, size, first_id)
        first_id += count
    stamp_file.write_text(json.dumps(dict(settings, complete=True)))
    return True
