"""Whether a semantic-segmentation label map loads as mmseg's ``LoadAnnotations`` loads it and
holds only the dataset's classes."""
import numpy as np
from PIL import Image

from .image_files import ImageFileError, image_size

#: The label mmseg ignores in the loss and the metrics.
IGNORE_INDEX = 255


def valid_labels(num_classes, reduce_zero_label):
    """The stored values a label map may hold, and their description.

    With ``reduce_zero_label`` (ADE20K) 0 is "other" (ignored) and 1..num_classes are the classes;
    without it 0..num_classes-1. :data:`IGNORE_INDEX` is allowed in both.
    """
    if reduce_zero_label:
        return ({0, IGNORE_INDEX} | set(range(1, num_classes + 1)),
                f'0 (ignored), the classes 1..{num_classes} and {IGNORE_INDEX} (ignored)')
    return ({IGNORE_INDEX} | set(range(num_classes)),
            f'the classes 0..{num_classes - 1} and {IGNORE_INDEX} (ignored)')


def label_map_problems(path, expected_size, num_classes, reduce_zero_label):
    """What is wrong with the label map at ``path`` (a list of messages, empty if nothing).

    Args:
        path (str): the label map (a single-channel PNG in mmseg's datasets).
        expected_size (tuple | None): (height, width) of its image, None if that is unknown.
        num_classes (int): the dataset's number of classes (150 for ADE20K).
        reduce_zero_label (bool): the dataset's ``reduce_zero_label`` (see :func:`valid_labels`).
    """
    try:
        image_size(path)
        with Image.open(path) as label_image:
            labels = np.asarray(label_image)
    except ImageFileError as error:
        return [f'label map {error}']
    except OSError as error:
        return [f'label map unreadable ({error})']
    if labels.ndim != 2:
        return [f'label map has {labels.shape[2]} channels, expected 1']
    problems = []
    if expected_size is not None and labels.shape != tuple(expected_size):
        problems.append(f'label map is {labels.shape[1]}x{labels.shape[0]}, its image '
                        f'{expected_size[1]}x{expected_size[0]}')
    if labels.dtype != np.uint8:
        return problems + [f'label map holds {labels.dtype}, expected uint8']
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    allowed, described = valid_labels(num_classes, reduce_zero_label)
    invalid = sorted(set(present.tolist()) - allowed)
    if invalid:
        shown = ', '.join(map(str, invalid[:10])) + (' ...' if len(invalid) > 10 else '')
        problems.append(f'label map holds values {shown}, outside {described}')
    return problems
