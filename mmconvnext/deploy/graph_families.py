"""The model families that export, one entry each: what a model must be to export faithfully,
and the graph that replaces its Python post-processing.

- two-stage detectors (Mask R-CNN, Cascade Mask R-CNN, Faster R-CNN):
  :class:`~.detector_graph.TwoStageDetectorGraph`;
- encoder-decoder segmentors (UperNet, FCN, PSP, ASPP / DeepLabV3 heads, ...):
  :class:`~.segmentor_graph.SegmentorGraph`.

:func:`exportable_graph` refuses any other model, or a part of these that the graph would
compute differently, naming the module and its config key. Any backbone and neck that
``torch.export`` traces is accepted (ConvNeXt V1 / V2, every size and output stride).
"""
from typing import Callable, NamedTuple

from mmcv.ops import RoIAlign
from mmdet.models.dense_heads import RPNHead
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.roi_heads.mask_heads import FCNMaskHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmseg.models.segmentors import EncoderDecoder

from .detector_graph import TwoStageDetectorGraph
from .errors import DeployError
from .graph_ops import SOFT_NMS_DECAYS, as_module_list
from .segmentor_graph import SegmentorGraph


class GraphFamily(NamedTuple):
    """``task``: 'detection' or 'segmentation'; ``check(model)`` yields (config key, problem)
    pairs; ``build(model, with_logits)`` the graph."""
    task: str
    model_class: type
    check: Callable
    build: Callable


def _indexed(key, modules, index):
    return f'{key}[{index}]' if len(modules) > 1 else key


def _check_nms(cfg, key, soft=False):
    """``soft``: mmcv's soft-NMS is supported (the RoI head's, for its ``max_per_img``)."""
    nms = cfg.get('nms') or {}
    kind = nms.get('type', 'nms')
    if soft and kind == 'soft_nms':
        if cfg.get('max_per_img', 0) <= 0:
            yield f'{key}.max_per_img', 'soft_nms exports its max_per_img (> 0) best results'
        elif set(nms) - {'type', 'iou_threshold', 'sigma', 'min_score', 'method'}:
            yield f'{key}.nms', f'soft_nms keys {sorted(nms)}: one of them does not export'
        elif nms.get('method', 'linear') not in SOFT_NMS_DECAYS:
            yield f'{key}.nms.method', f"{nms.get('method')!r} is not an mmcv soft-NMS method"
    elif kind != 'nms':
        yield f'{key}.nms.type', (f"{kind!r}: only 'nms'" + (" and 'soft_nms'" if soft else '')
                                  + ' export')


def _check_two_stage(model):
    if type(model.rpn_head) is not RPNHead:
        yield 'model.rpn_head', f'{type(model.rpn_head).__name__}: only RPNHead exports'
    elif not model.rpn_head.use_sigmoid_cls:
        yield 'model.rpn_head.loss_cls.use_sigmoid', 'a softmax RPN does not export'
    yield from _check_nms(model.rpn_head.test_cfg, 'model.test_cfg.rpn')
    roi_head = model.roi_head
    if type(roi_head) not in (StandardRoIHead, CascadeRoIHead):
        yield 'model.roi_head', (f'{type(roi_head).__name__}: only StandardRoIHead and '
                                 'CascadeRoIHead export')
        return
    if roi_head.with_shared_head:
        yield 'model.roi_head.shared_head', 'a shared head does not export'
    yield from _check_nms(roi_head.test_cfg, 'model.test_cfg.rcnn', soft=True)
    parts = [('bbox_roi_extractor', roi_head.bbox_roi_extractor)]
    if roi_head.with_mask:
        parts.append(('mask_roi_extractor', roi_head.mask_roi_extractor))
    for name, extractors in parts:
        extractors = as_module_list(extractors)
        for index, extractor in enumerate(extractors):
            key = _indexed(f'model.roi_head.{name}', extractors, index)
            if type(extractor) is not SingleRoIExtractor:
                yield key, f'{type(extractor).__name__}: only SingleRoIExtractor exports'
            elif not all(type(layer) is RoIAlign and layer.pool_mode == 'avg'
                         for layer in extractor.roi_layers):
                yield f'{key}.roi_layer', "only RoIAlign with pool_mode='avg' exports"
    heads = as_module_list(roi_head.bbox_head)
    for index, head in enumerate(heads):
        key = _indexed('model.roi_head.bbox_head', heads, index)
        if not isinstance(head, BBoxHead):
            yield key, f'{type(head).__name__}: not an mmdet BBoxHead'
        elif head.custom_cls_channels or getattr(head.loss_cls, 'use_sigmoid', False):
            yield f'{key}.loss_cls', 'only softmax classification exports'
        elif type(head.bbox_coder) is not DeltaXYWHBBoxCoder:
            yield f'{key}.bbox_coder', (f'{type(head.bbox_coder).__name__}: only '
                                        'DeltaXYWHBBoxCoder exports')
    if roi_head.with_mask:
        heads = as_module_list(roi_head.mask_head)
        for index, head in enumerate(heads):
            if not isinstance(head, FCNMaskHead):
                yield (_indexed('model.roi_head.mask_head', heads, index),
                       f'{type(head).__name__}: only FCNMaskHead and its kind export')


def _check_segmentor(model):
    if type(model) is not EncoderDecoder:
        yield 'model.type', f'{type(model).__name__}: only EncoderDecoder exports'
    elif model.out_channels == 1:
        yield 'model.decode_head.out_channels', 'a 1-channel (thresholded) head does not export'


FAMILIES = (
    GraphFamily('detection', TwoStageDetector, _check_two_stage,
                lambda model, with_logits, half: TwoStageDetectorGraph(model, half)),
    GraphFamily('segmentation', EncoderDecoder, _check_segmentor, SegmentorGraph),
)


def graph_family(model):
    """The :class:`GraphFamily` of ``model``, or :class:`DeployError` naming what does not
    export and where it is in the config."""
    for family in FAMILIES:
        if isinstance(model, family.model_class):
            problems = [f'{key}: {why}' for key, why in family.check(model)]
            if problems:
                raise DeployError(f'{type(model).__name__} cannot be exported faithfully:\n  '
                                  + '\n  '.join(problems))
            return family
    supported = ', '.join(family.model_class.__name__ for family in FAMILIES)
    raise DeployError(f'model.type {type(model).__name__}: no exportable graph; supported: '
                      f'{supported} and their subclasses')


def exportable_graph(model, with_logits=False, half=False):
    """(family, graph) of ``model`` in eval mode; ``with_logits``: segmentors also output the
    logits (detectors have none and refuse it); ``half``: the backbone and neck (segmentors:
    and decode head) in float16. The graph shares (and with ``half`` converts) the model's
    weights."""
    family = graph_family(model)
    if with_logits and family.task != 'segmentation':
        raise DeployError(f'logits: only segmentors output them, not {type(model).__name__}')
    return family, family.build(model.eval(), with_logits, half).eval()
