"""Whether an image file loads as the pipeline loads it: present, readable, complete, its size.

Two depths (``tools/check_dataset.py``; the default is the first):

- header + end: Pillow reads the format and size from the header (no pixels are decoded), and the
  file's last :data:`TAIL_BYTES` bytes must hold the format's end marker (JPEG's end-of-image
  ``FF D9``, PNG's ``IEND`` chunk). A truncated JPEG or PNG lacks it (JPEG's entropy-coded data
  cannot hold ``FF D9``: a data byte ``FF`` is followed by ``00``). Two small reads per file.
- full decode (``decode=True``): also decodes the pixels as mmcv's ``LoadImageFromFile`` does
  (``mmcv.imfrombytes``, cv2), which also finds corrupt data inside a complete file.
"""
import os

import mmcv
from PIL import Image, UnidentifiedImageError

#: How many of a file's last bytes must hold its format's end marker.
TAIL_BYTES = 1024
#: The end marker of each format that has one (Pillow's format names).
END_MARKERS = {'JPEG': b'\xff\xd9', 'PNG': b'IEND'}
#: EXIF orientations that rotate by 90 degrees: cv2 applies them, so height and width swap.
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
ORIENTATION_TAG = 0x0112


class ImageFileError(Exception):
    """An image file that would not load; the message says why (without the path)."""


def image_size(path, decode=False):
    """(height, width) of the image at ``path`` as cv2 loads it (EXIF orientation applied).

    Raises :class:`ImageFileError` if it is missing, unreadable or truncated, or (``decode``) if
    cv2 cannot decode it.
    """
    try:
        with Image.open(path) as image:
            file_format, (width, height) = image.format, image.size
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
    except FileNotFoundError:
        raise ImageFileError('missing') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageFileError(f'unreadable ({error})') from None
    marker = END_MARKERS.get(file_format)
    if marker is not None:
        with open(path, 'rb') as file:
            file.seek(max(0, os.fstat(file.fileno()).st_size - TAIL_BYTES))
            if marker not in file.read():
                raise ImageFileError(f'truncated: no {file_format} end marker in its last '
                                     f'{TAIL_BYTES} bytes')
    if orientation in TRANSPOSING_ORIENTATIONS:
        height, width = width, height
    if decode:
        with open(path, 'rb') as file:
            pixels = mmcv.imfrombytes(file.read(), flag='color', backend='cv2')
        if pixels is None:
            raise ImageFileError('cv2 cannot decode it')
        if pixels.shape[:2] != (height, width):
            raise ImageFileError(f'decodes to {pixels.shape[1]}x{pixels.shape[0]}, its header '
                                 f'says {width}x{height}')
    return height, width
