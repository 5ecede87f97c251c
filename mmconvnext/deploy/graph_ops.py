"""Export-friendly equivalents of the ops whose PyTorch form does not export, or exports only at
one input size: each computes the same numbers from standard ONNX operators.

- :class:`AdaptiveAvgPool2dByMatrices`: adaptive average pooling at any input size (two
  averaging matrices; ONNX has no adaptive pooling, and the TorchScript exporter refuses output
  sizes that do not divide the input).
- :func:`batched_nms`: NMS within groups (pyramid levels), as mmcv's ``batched_nms``;
  exported as ONNX ``NonMaxSuppression``.
- :func:`grouped_nms`: NMS of each group's own boxes (classes), with a score threshold and a
  cap per group: one ONNX ``NonMaxSuppression`` with the groups as its batch
  (:data:`.onnx_file.ONNX_TRANSLATIONS`). ONNX Runtime's NMS compares every pair of its boxes: on
  mmcv's offset trick over 80 classes x 1000 RoIs it took 6 s, per class 5 ms.
- :func:`batched_soft_nms`: mmcv's soft-NMS within groups, for its first ``keep`` picks
  (unrolled: ``keep`` rounds of a few standard operators each).
- :func:`multilevel_roi_align`: mmdet's ``SingleRoIExtractor`` without its data-dependent
  scatter; exported as ONNX ``RoiAlign``.
- :class:`ImageNormalisation`: the data preprocessor's channel order, mean and std.
"""
import torch
import torch.nn as nn
import torchvision

from .errors import DeployError


def adaptive_pool_matrix(size, bins, dtype, device):
    """(bins, size) matrix whose row i averages input positions ``[floor(i * size / bins),
    ceil((i + 1) * size / bins))``: the bins of ``torch.nn.AdaptiveAvgPool*d`` along one axis.
    ``size`` may be a symbolic size (dynamic export)."""
    index = torch.arange(bins, device=device)
    start = (index * size) // bins
    end = ((index + 1) * size + bins - 1) // bins
    position = torch.arange(size, device=device)
    inside = (position[None] >= start[:, None]) & (position[None] < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


class AdaptiveAvgPool2dByMatrices(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` as ``rows @ x @ cols^T``: (N, C, H, W) ->
    (N, C, out_h, out_w) at any H, W (including H or W smaller than the output)."""

    def __init__(self, output_size):
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) else (output_size, ) * 2
        if None in size:
            raise DeployError(f'AdaptiveAvgPool2d({output_size}): a None output size (keep '
                              'the input size) is not supported')
        self.output_size = tuple(int(s) for s in size)

    def forward(self, x):
        rows = adaptive_pool_matrix(x.shape[-2], self.output_size[0], x.dtype, x.device)
        cols = adaptive_pool_matrix(x.shape[-1], self.output_size[1], x.dtype, x.device)
        return torch.matmul(torch.matmul(rows, x), cols.t())


def replace_adaptive_pools(module):
    """Replace every ``nn.AdaptiveAvgPool2d`` in ``module`` (in place) by
    :class:`AdaptiveAvgPool2dByMatrices`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.AdaptiveAvgPool2d):
            setattr(module, name, AdaptiveAvgPool2dByMatrices(child.output_size))
        else:
            replace_adaptive_pools(child)


@torch.library.custom_op('mmconvnext::grouped_nms', mutates_args=())
def grouped_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                score_threshold: float, max_per_group: int) -> torch.Tensor:
    """(M, 2) int64 rows (group, index) of the kept boxes of (G, K, 4) ``boxes`` with (G, K)
    ``scores``: per group, of its boxes scoring above ``score_threshold``, NMS at IoU >
    ``iou_threshold``, the ``max_per_group`` best; group by group, each by decreasing score
    (ONNX ``NonMaxSuppression``'s order)."""
    rows = [boxes.new_zeros((0, 2), dtype=torch.long)]
    for group in range(boxes.shape[0]):
        valid = (scores[group] > score_threshold).nonzero()[:, 0]
        keep = torchvision.ops.nms(boxes[group, valid], scores[group, valid],
                                   iou_threshold)[:max_per_group]
        rows.append(torch.stack([torch.full_like(keep, group), valid[keep]], dim=1))
    return torch.cat(rows)


@grouped_nms.register_fake
def _grouped_nms_shape(boxes, scores, iou_threshold, score_threshold, max_per_group):
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count, 2), dtype=torch.long)


def _apart_by_group(boxes, groups, image_hw):
    """(K, 4) ``boxes`` (within an image of size ``image_hw``) moved so that boxes of different
    ``groups`` (K,) never overlap: mmcv's offset trick, each group moved beyond the image (mmcv
    moves it beyond the largest coordinate, which has no value for K = 0)."""
    offsets = groups.to(boxes.dtype) * (max(image_hw[0], image_hw[1]) + 1)
    return boxes + offsets[:, None]


def batched_nms(boxes, scores, groups, iou_threshold, image_hw):
    """Indices of the kept ``boxes`` (K, 4) (x1, y1, x2, y2 within an image of size
    ``image_hw``), by decreasing ``scores`` (K,); boxes of different ``groups`` (K,) never
    suppress each other. A box is suppressed by a higher-scoring one of its group with IoU >
    ``iou_threshold``."""
    return torchvision.ops.nms(_apart_by_group(boxes, groups, image_hw), scores, iou_threshold)


#: mmcv's soft-NMS methods: the factor of a box's score at IoU ``iou`` with the picked box.
SOFT_NMS_DECAYS = {
    'naive': lambda iou, threshold, sigma: torch.where(iou >= threshold, 0., 1.),
    'linear': lambda iou, threshold, sigma: torch.where(iou >= threshold, 1 - iou, 1.),
    'gaussian': lambda iou, threshold, sigma: torch.exp(-(iou * iou) / sigma),
}


def batched_soft_nms(boxes, scores, groups, image_hw, keep, iou_threshold=0.3, sigma=0.5,
                     min_score=1e-3, method='linear'):
    """mmcv's ``batched_nms`` with ``soft_nms``, its first ``keep`` results: (indices, decayed
    scores), by decreasing decayed score.

    mmcv's soft-NMS picks the highest-scoring box, multiplies the score of every other box of
    its group by :data:`SOFT_NMS_DECAYS` ``[method]`` of their IoU, drops boxes below
    ``min_score``, and repeats. A pick's decayed score never exceeds the previous pick's, so the
    first ``keep`` picks are the ``keep`` best results: here ``keep`` rounds, each an argmax and
    one row of IoUs. Rounds after the last box report score -1 and are dropped.
    """
    # one dead slot (score -1, apart from every box) gives argmax a box when K = 0
    boxes = torch.cat([_apart_by_group(boxes, groups, image_hw),
                       boxes.new_tensor([[-2., -2., -1., -1.]])])
    remaining = torch.cat([scores, scores.new_full((1, ), -1.)])
    slots = torch.arange(remaining.shape[0], device=scores.device)
    decay = SOFT_NMS_DECAYS[method]
    picks, pick_scores = [], []
    for _ in range(keep):
        best = remaining.argmax()
        picks.append(best)
        pick_scores.append(remaining[best])
        iou = torchvision.ops.box_iou(boxes[best][None], boxes)[0]
        remaining = remaining * decay(iou, iou_threshold, sigma)
        remaining = torch.where((slots == best) | (remaining < min_score), -1., remaining)
    picks, pick_scores = torch.stack(picks), torch.stack(pick_scores)
    found = pick_scores >= min_score
    return picks[found], pick_scores[found]


def as_module_list(modules):
    """``modules`` as a list: a (Module)List's items, or the one module (mmdet's RoI heads hold
    one extractor / head, Cascade's a ModuleList of one per stage)."""
    return list(modules) if isinstance(modules, (nn.ModuleList, list, tuple)) else [modules]


def multilevel_roi_align(extractor, feats, rois):
    """mmdet ``SingleRoIExtractor`` output for ``rois`` (K, 5) (batch index, x1, y1, x2, y2):
    (K, C, out_h, out_w), each RoI pooled from the pyramid level its scale maps to.

    Every level pools every RoI and each RoI keeps its own level's result (mmdet scatters the
    RoIs of each level instead, which has no static form).
    """
    feats = feats[:extractor.num_inputs]
    levels = extractor.map_roi_levels(rois, len(feats))
    pooled_rois = None
    for level, (feat, layer) in enumerate(zip(feats, extractor.roi_layers)):
        pooled = torchvision.ops.roi_align(feat, rois, layer.output_size, layer.spatial_scale,
                                           layer.sampling_ratio, layer.aligned)
        at_level = (levels == level)[:, None, None, None]
        pooled_rois = pooled * at_level if pooled_rois is None else torch.where(
            at_level, pooled, pooled_rois)
    return pooled_rois


class ImageNormalisation(nn.Module):
    """(N, 3, H, W) RGB values in 0-255 -> the model's input: in the channel order it was trained
    with (BGR when its data preprocessor does not convert mmcv's BGR images to RGB), minus the
    preprocessor's mean, divided by its std."""

    def __init__(self, preprocessor):
        super().__init__()
        # mmengine's ImgDataPreprocessor (mmdet) and mmseg's SegDataPreProcessor name it apart
        converts = getattr(preprocessor, '_channel_conversion',
                           getattr(preprocessor, 'channel_conversion', None))
        if converts is None or not hasattr(preprocessor, '_enable_normalize'):
            raise DeployError(f'data preprocessor {type(preprocessor).__name__}: not an '
                              'mmengine / mmseg image preprocessor (model.data_preprocessor)')
        self.to_bgr = not converts
        if preprocessor._enable_normalize:
            mean, std = preprocessor.mean.float(), preprocessor.std.float()
        else:
            mean, std = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
        self.register_buffer('mean', mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', std.reshape(1, -1, 1, 1), persistent=False)

    def forward(self, image):
        if self.to_bgr:
            image = image.flip(1)
        return (image - self.mean) / self.std
