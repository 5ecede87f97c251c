"""What is wrong with a COCO annotation, by the rules mmdet's ``CocoDataset`` and
``LoadAnnotations`` apply to it.

:func:`dropped_reason` is why ``CocoDataset.parse_data_info`` leaves an annotation out (it does
so silently); :func:`annotation_problems` adds what fails or degrades later in the pipeline.
"""

#: How far (pixels) a kept box may reach beyond its image before it is reported.
BOX_OVERHANG_PX = 1


def dropped_reason(annotation, image, category_ids):
    """Why ``CocoDataset.parse_data_info`` drops ``annotation`` (its tests; a zero-size box is
    named as such, not as "outside"): a ``(kind, message)`` pair, kind one of
    ``'zero-size box'``, ``'box outside the image'``, ``'unknown category'``; None if kept.

    Args:
        annotation (dict): a COCO annotation (``bbox`` as x, y, w, h; ``area``; ``category_id``).
        image (dict): its COCO image entry (``width``, ``height``).
        category_ids (set): the category ids of the dataset's classes.
    """
    if annotation.get('ignore', False):
        return None  # left out on purpose by whoever wrote the annotation
    x, y, w, h = annotation['bbox']
    if annotation['area'] <= 0 or w < 1 or h < 1:
        return 'zero-size box', f'zero-size box {_box(annotation)} (area {annotation["area"]})'
    overlap_w = max(0, min(x + w, image['width']) - max(x, 0))
    overlap_h = max(0, min(y + h, image['height']) - max(y, 0))
    if overlap_w * overlap_h == 0:
        return ('box outside the image',
                f'box {_box(annotation)} outside the {image["width"]}x{image["height"]} image')
    if annotation['category_id'] not in category_ids:
        return ('unknown category',
                f'category id {annotation["category_id"]} is none of the {len(category_ids)} '
                'category ids of the dataset\'s classes')
    return None


def annotation_problems(annotation, image, category_ids, with_mask):
    """Every problem of ``annotation`` (messages; empty if none).

    Beyond :func:`dropped_reason`: a missing or malformed ``bbox`` / ``area`` (``CocoDataset``
    fails), a box reaching more than :data:`BOX_OVERHANG_PX` beyond the image, and with
    ``with_mask`` a missing segmentation (``LoadAnnotations`` fails) or invalid polygons / RLE
    (``LoadAnnotations`` turns the instance into an ignored one).
    """
    bbox = annotation.get('bbox')
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return [f'bbox {bbox!r} is not [x, y, width, height]']
    if 'area' not in annotation:
        return ['no area']
    dropped = dropped_reason(annotation, image, category_ids)
    if dropped is not None:
        return [f'{dropped[1]} (dropped by the dataset)']
    problems = []
    x, y, w, h = bbox
    if (x < -BOX_OVERHANG_PX or y < -BOX_OVERHANG_PX or x + w > image['width'] + BOX_OVERHANG_PX
            or y + h > image['height'] + BOX_OVERHANG_PX):
        problems.append(f'box {_box(annotation)} reaches beyond the '
                        f'{image["width"]}x{image["height"]} image')
    if with_mask:
        problems.extend(_segmentation_problems(annotation.get('segmentation'), image))
    return problems


def _segmentation_problems(segmentation, image):
    if not segmentation:
        return ['no segmentation (LoadAnnotations with_mask fails)']
    if isinstance(segmentation, dict):
        size = [image['height'], image['width']]
        if segmentation.get('counts') is None or list(segmentation.get('size') or []) != size:
            return [f'RLE segmentation with size {segmentation.get("size")} for the '
                    f'{image["width"]}x{image["height"]} image (instance ignored)']
        return []
    invalid = [index for index, polygon in enumerate(segmentation)
               if len(polygon) < 6 or len(polygon) % 2]
    if len(invalid) == len(segmentation):
        return ['no valid polygon (each needs an even number >= 6 of coordinates; instance '
                'ignored)']
    return [f'polygons {invalid} invalid (each needs an even number >= 6 of coordinates)'
            ] if invalid else []


def _box(annotation):
    return '[' + ', '.join(f'{value:g}' for value in annotation['bbox']) + ']'
