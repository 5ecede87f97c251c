"""Random scenes of drawn shapes for the demo: a BGR image and each shape's visible mask.

Each scene is a ``size`` x ``size`` image: a smooth two-colour gradient with Gaussian noise and
a few random clutter lines, under 1 to ``MAX_SHAPES`` filled shapes of random areas (drawn alike
for every class, so each class covers about the same share of the pixels), rotations,
positions and colours: each class has its hue band (``HUE_BANDS``), saturation and value vary,
and the colour is at least ``MIN_CONTRAST`` from the background's mean colour. Later
shapes are drawn over earlier ones (occlusion), but a placement that would hide more than
``MAX_HIDDEN_FRACTION`` of an earlier shape is redrawn. Edges are anti-aliased, so the 1-pixel
band around each shape is ambiguous (see :func:`edge_band`).
"""
import cv2
import numpy as np

#: The shape classes, in label order.
SHAPE_CLASSES = ('circle', 'square', 'triangle')
#: At most this many shapes per scene.
MAX_SHAPES = 4
#: Largest fraction of a shape's area a later shape may cover.
MAX_HIDDEN_FRACTION = 0.4
#: Shape sizes: the side of the square of the same area, as fractions of the image side.
SIZE_RANGE = (0.13, 0.31)
#: Corners of each class's outline (a circle is drawn as a 48-gon).
CORNERS = dict(circle=48, square=4, triangle=3)
#: Placement (and colour) tries per shape before the scene keeps fewer shapes.
PLACEMENT_TRIES = 20
#: Hue band (OpenCV hue 0..179, centre and half width) of each class: red, green, blue. A hue
#: cue lets the from-scratch demo models learn the classes within a few minutes of CPU.
HUE_BANDS = ((0, 12), (60, 12), (120, 12))
#: Smallest L1 distance (0..765) between a shape's colour and the background's mean colour.
MIN_CONTRAST = 120


def shape_outline(class_name, center, diameter, angle):
    """The outline of a shape as an (N, 2) float array of x, y pixel coordinates.

    Args:
        class_name (str): one of :data:`SHAPE_CLASSES`.
        center (tuple[float, float]): x, y of the circumscribed circle's centre (pixels).
        diameter (float): that circle's diameter (pixels).
        angle (float): rotation (radians); circles are 48-gons.
    """
    corners = CORNERS[class_name]
    angles = angle + np.arange(corners) * 2 * np.pi / corners
    return np.stack([center[0] + diameter / 2 * np.cos(angles),
                     center[1] + diameter / 2 * np.sin(angles)], axis=1)


def circumscribed_diameter(class_name, area_side):
    """The circumscribed circle's diameter of a regular ``class_name`` shape of area
    ``area_side ** 2`` (same unit as ``area_side``).

    A regular n-gon in a circle of diameter d covers ``n / 8 * sin(2 pi / n) * d ** 2``: a circle
    (48-gon) 0.78, a square 0.5 and a triangle 0.32 of d squared. Equal diameters would give
    triangles 0.41 of a circle's pixels, and the segmentor would learn them last.
    """
    corners = CORNERS[class_name]
    return area_side / np.sqrt(corners / 8 * np.sin(2 * np.pi / corners))


def shape_mask(outline, size):
    """The (size, size) bool mask of pixels inside ``outline`` (pixel centres)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [fixed_point(outline)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def fixed_point(outline):
    """``outline`` in the int32 4-bit fixed point of ``cv2.fillPoly(..., shift=4)``."""
    return np.round(outline * 16).astype(np.int32)


def edge_band(mask):
    """The pixels of ``mask``'s 1-pixel inner and outer border (bool, same shape)."""
    kernel = np.ones((3, 3), np.uint8)
    as_uint8 = mask.astype(np.uint8)
    return cv2.dilate(as_uint8, kernel).astype(bool) & ~cv2.erode(as_uint8, kernel).astype(bool)


def shape_colour(rng, label):
    """A random BGR colour (uint8 array of 3) in class ``label``'s hue band."""
    centre, half_width = HUE_BANDS[label]
    hsv = np.array([[[(centre + rng.integers(-half_width, half_width + 1)) % 180,
                      rng.integers(150, 256), rng.integers(130, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(int)


def background(rng, size):
    """A noisy gradient with clutter lines: (size, size, 3) uint8 BGR."""
    start, end = rng.uniform(20, 235, (2, 3))
    direction = rng.uniform(-1, 1, 2)
    coords = np.mgrid[0:size, 0:size].transpose(1, 2, 0)[..., ::-1] / size
    weight = np.clip(0.5 + (coords - 0.5) @ direction, 0, 1)[..., None]
    image = start * (1 - weight) + end * weight + rng.normal(0, 12, (size, size, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):
        points = rng.integers(0, size, 4)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.line(image, tuple(map(int, points[:2])), tuple(map(int, points[2:])), colour,
                 int(rng.integers(1, 3)), cv2.LINE_AA)
    return image


def draw_scene(rng, size):
    """One scene.

    Args:
        rng (numpy.random.Generator): the only source of randomness (same state, same scene).
        size (int): image side in pixels.

    Returns:
        tuple: the (size, size, 3) uint8 BGR image, and a list of ``(class index, visible
        mask)`` per shape (bool (size, size) masks, drawing order, none empty).
    """
    image = background(rng, size)
    background_mean = image.mean((0, 1))
    shapes = []  # [class index, full area (pixels), visible mask]
    for _ in range(rng.integers(1, MAX_SHAPES + 1)):
        for _ in range(PLACEMENT_TRIES):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            diameter = circumscribed_diameter(SHAPE_CLASSES[label],
                                              rng.uniform(*SIZE_RANGE) * size)
            center = rng.uniform(diameter / 3, size - diameter / 3, 2)
            outline = shape_outline(SHAPE_CLASSES[label], center, diameter,
                                    rng.uniform(0, 2 * np.pi))
            mask = shape_mask(outline, size)
            if mask.sum() and all((visible & ~mask).sum() >= (1 - MAX_HIDDEN_FRACTION) * area
                                  for _, area, visible in shapes):
                break
        else:
            continue
        colours = (shape_colour(rng, label) for _ in range(PLACEMENT_TRIES))
        colour = next((colour for colour in colours
                       if np.abs(colour - background_mean).sum() >= MIN_CONTRAST), None)
        if colour is None:  # the background is too close to the class's hue band
            continue
        cv2.fillPoly(image, [fixed_point(outline)], colour.tolist(), cv2.LINE_AA, shift=4)
        for shape in shapes:
            shape[2] = shape[2] & ~mask
        shapes.append([label, int(mask.sum()), mask])
    return image, [(label, visible) for label, _, visible in shapes]
