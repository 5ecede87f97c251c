"""A config and its checkpoint to one checked ONNX file (what ``tools/export.py`` runs).

:func:`export_model`: the model is built by the config's own inference API with the checkpoint
(which must fit it exactly), its family's graph is traced and written (:mod:`.onnx_file`), then
ONNX Runtime runs the file once beside the float32 PyTorch graph on one image, and the report
gives the largest differences (:mod:`.parity`).
"""
import json
import math
import os.path as osp
from typing import NamedTuple

import mmcv
import numpy as np
import torch

from mmconvnext.apis import init_inference_model
from .errors import DeployError
from .graph_families import exportable_graph
from .onnx_file import INPUT_NAME, SIZE_DIVISOR, check_input_shape, write_onnx
from .packages import EXPORT_PACKAGES, require_packages
from .parity import class_map_agreement, largest_differences, matched_detections
from .runtimes import open_session

#: The parity image when none is given: uniform noise from this seed.
NOISE_SEED = 0


class ExportReport(NamedTuple):
    """What :func:`export_model` wrote and measured: ``differences`` {output: largest |diff|
    or None}; ``detections`` (found, total) for detectors (PyTorch's detections scoring >= 0.05
    found again at IoU >= 0.99), ``pixel_agreement`` (0-1) for segmentors, else None."""
    path: str
    task: str
    input_shape: tuple
    dynamic: bool
    output_names: list
    differences: dict
    detections: tuple
    pixel_agreement: float


def _pipeline_scale(pipeline):
    for transform in pipeline or []:
        if transform.get('scale'):
            return transform['scale']
        found = _pipeline_scale(transform.get('transforms'))
        if found:
            return found
    return None


def default_input_shape(cfg, task):
    """(H, W) the config tests at, rounded up to multiples of 32: the sliding window of a
    ``slide`` segmentor, else the test pipeline's resize ``scale`` (W, H) (for ``keep_ratio``
    its landscape bound). ``DeployError`` when the config names none."""
    test_cfg = cfg.model.get('test_cfg') or {}
    if task == 'segmentation' and test_cfg.get('mode') == 'slide':
        height, width = test_cfg.crop_size
    else:
        dataset = cfg.test_dataloader.dataset
        scale = _pipeline_scale(dataset.get('pipeline') or cfg.get('test_pipeline'))
        if scale is None:
            raise DeployError('the config names no test scale (a Resize in '
                              'test_dataloader.dataset.pipeline): give --shape H W')
        width, height = (scale, scale) if isinstance(scale, int) else scale
    return tuple(math.ceil(side / SIZE_DIVISOR) * SIZE_DIVISOR for side in (height, width))


def parity_image(shape, path=None):
    """(1, 3, H, W) float32 RGB 0-255: the image at ``path`` scaled to fit ``shape`` (aspect
    kept, padded with 0 at the bottom and right), or seeded uniform noise."""
    height, width = shape
    if path is None:
        generator = torch.Generator().manual_seed(NOISE_SEED)
        return torch.rand(1, 3, height, width, generator=generator) * 255
    if not osp.isfile(path):
        raise DeployError(f'image {path} does not exist')
    rgb = mmcv.imrescale(mmcv.imread(path, channel_order='rgb'), (width, height))
    image = np.zeros((height, width, 3), np.float32)
    image[:rgb.shape[0], :rgb.shape[1]] = rgb
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


def _named(graph, outputs):
    return {name: output.numpy() for name, output in zip(graph.output_names, outputs)}


def export_model(cfg, checkpoint, path, shape=None, dynamic=False, half=False,
                 with_logits=False, image=None):
    """Write the model of ``cfg`` with the weights of ``checkpoint`` to the ONNX file ``path``.

    Args:
        shape (tuple): (H, W) input, multiples of 32; default :func:`default_input_shape`. With
            ``dynamic`` the example shape; the file takes any multiples of 32.
        half (bool): float16 backbone and neck (segmentors: and decode head).
        with_logits (bool): segmentors also output the (N, C, H, W) logits.
        image (str): the parity check's image (default: seeded noise).

    Returns an :class:`ExportReport`. ``DeployError`` for a missing package, a checkpoint that
    does not fit the config, a model or shape that does not export; nothing is written then.
    """
    require_packages(*EXPORT_PACKAGES, 'onnxruntime', purpose='export')
    try:
        model = init_inference_model(cfg, checkpoint)
    except (ValueError, FileNotFoundError) as error:
        raise DeployError(str(error)) from error
    family, graph = exportable_graph(model, with_logits)
    shape = tuple(shape) if shape else default_input_shape(cfg, family.task)
    check_input_shape(*shape)
    example = parity_image(shape, image)
    with torch.no_grad():
        reference = _named(graph, graph(example))
    if half:
        family, graph = exportable_graph(model, with_logits, half=True)
    classes = model.dataset_meta.get('classes') if model.dataset_meta else None
    write_onnx(graph, example, path, dynamic, metadata=dict(
        task=family.task, num_classes=graph.num_classes,
        classes=json.dumps(list(classes) if classes else None), dynamic=dynamic,
        precision='float16' if half else 'float32', input=INPUT_NAME))
    exported = open_session(path, 'onnxruntime')(example.numpy())
    detections = pixels = None
    if family.task == 'detection':
        detections = matched_detections(reference, exported)
    else:
        pixels = class_map_agreement(reference['class_map'], exported['class_map'])
    return ExportReport(path, family.task, tuple(example.shape), dynamic, graph.output_names,
                        largest_differences(reference, exported), detections, pixels)
