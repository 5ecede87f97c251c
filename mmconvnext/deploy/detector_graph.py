"""An mmdet two-stage detector (Mask R-CNN, Cascade Mask R-CNN) as one graph: image ->
detections with their masks, the steps of mmdet's ``predict`` with its weights.

Input ``image`` (1, 3, H, W) float32 RGB in 0-255 (H, W multiples of 32; one image: the
detections' count varies per image). Outputs, K detections by decreasing score:

- ``boxes`` (K, 4) float32, x1, y1, x2, y2 in input pixels (clamped to the input);
- ``scores`` (K,) float32; ``labels`` (K,) int64, class indices of the config's classes;
- ``masks`` (K, M, M) float32 mask probabilities of each detection's class in its box (M: the
  mask head's size, 28); a detector without a mask head has no ``masks`` output. Pasting them
  into the image at ``mask_thr_binary`` is left to the caller (as
  :class:`~.deployed_model.DeployedModel` does it), because K full-image masks at 800 x 1333
  would be K x 4 MB of output.

The steps (mmdet's test configs give every number):
RPN: per level the ``nms_pre`` best anchors, decoded, the boxes of ``min_bbox_size`` or less
dropped, NMS within each level, the ``max_per_img`` best; RoI head: per stage the RoIs pooled from
their level, the box head, and (Cascade) the RoIs refined by the stage's class regression, the
stages' class logits averaged; the class boxes decoded, per class those above ``score_thr``,
NMS (or mmcv's soft-NMS) within each class, the ``max_per_img`` best; the mask head(s) on the
detections' boxes, (Cascade) the stages' sigmoid masks averaged.

With ``half``, the backbone and neck run in float16 (ConvNeXt's GRN norms in float32; the
exported LayerNormalization keeps float32 statistics); their features are cast to float32 for
the heads, whose NMS and RoIAlign take float32.
"""
import torch
import torch.nn as nn

from .graph_ops import (ImageNormalisation, as_module_list, batched_nms, batched_soft_nms,
                        grouped_nms, multilevel_roi_align)


def decode_boxes(coder, priors, deltas, image_hw):
    """``coder.decode`` of (K, 4) ``deltas`` on (K, 4) ``priors``, clipped to the image as mmdet
    clips them (x to [0, W], y to [0, H]) when the coder's ``clip_border`` is set. The clip is
    ours: under export mmdet's coder takes a branch of mmdet 2 that imports ``mmdet.core``."""
    boxes = coder.decode(priors, deltas)
    if not coder.clip_border:
        return boxes
    xs = boxes[:, 0::2].clamp(min=0, max=image_hw[1])
    ys = boxes[:, 1::2].clamp(min=0, max=image_hw[0])
    return torch.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], dim=1)


class TwoStageDetectorGraph(nn.Module):
    """``detector`` (eval mode; an mmdet ``TwoStageDetector`` with an ``RPNHead`` and a
    ``StandardRoIHead`` or ``CascadeRoIHead``, checked by :mod:`.graph_families`) from
    normalisation to the detections."""

    def __init__(self, detector, half=False):
        super().__init__()
        self.normalise = ImageNormalisation(detector.data_preprocessor)
        self.detector = detector
        roi_head = detector.roi_head
        self.bbox_extractors = as_module_list(roi_head.bbox_roi_extractor)
        self.bbox_heads = as_module_list(roi_head.bbox_head)  # one per (Cascade) stage
        self.with_mask = roi_head.with_mask
        if self.with_mask:
            self.mask_extractors = as_module_list(roi_head.mask_roi_extractor)
            self.mask_heads = as_module_list(roi_head.mask_head)
        self.compute_dtype = torch.float16 if half else torch.float32
        detector.backbone.to(self.compute_dtype)
        if detector.with_neck:
            detector.neck.to(self.compute_dtype)
        self.rpn_cfg = detector.rpn_head.test_cfg
        self.rcnn_cfg = roi_head.test_cfg
        # onnxscript's graph optimizer took 158 s on soft-NMS's 100 unrolled rounds (ONNX
        # Runtime and OpenVINO optimise the graph when they load it anyway)
        self.optimize_onnx = self.rcnn_cfg.nms.get('type', 'nms') != 'soft_nms'

    #: Whether the graph handles any batch size (detectors: one image).
    batch_dynamic = False

    @property
    def num_classes(self):
        return self.bbox_heads[-1].num_classes

    @property
    def output_names(self):
        return ['boxes', 'scores', 'labels', 'masks'] if self.with_mask else [
            'boxes', 'scores', 'labels']

    def forward(self, image):
        feats = self.detector.extract_feat(self.normalise(image).to(self.compute_dtype))
        feats = tuple(feat.float() for feat in feats)
        image_hw = image.shape[-2:]
        proposals = self.proposals(feats, image_hw)
        boxes, scores, labels = self.detections(feats, proposals, image_hw)
        if not self.with_mask:
            return boxes, scores, labels
        return boxes, scores, labels, self.masks(feats, boxes, labels)

    def proposals(self, feats, image_hw):
        """The RPN's (P, 4) proposals of the one image, by decreasing objectness."""
        head, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, bbox_preds = head(feats)
        anchors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                                   dtype=feats[0].dtype, device=feats[0].device)
        level_scores, level_deltas, level_anchors, level_ids = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            scores = cls_score[0].permute(1, 2, 0).reshape(-1).sigmoid()
            deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, head.bbox_coder.encode_size)
            priors = anchors[level]
            if cfg.get('nms_pre', -1) > 0:
                scores, best = scores.topk(torch.sym_min(cfg.nms_pre, scores.shape[0]))
                deltas, priors = deltas[best], priors[best]
            level_scores.append(scores)
            level_deltas.append(deltas)
            level_anchors.append(priors)
            level_ids.append(torch.full_like(scores, level, dtype=torch.long))
        scores = torch.cat(level_scores)
        boxes = decode_boxes(head.bbox_coder, torch.cat(level_anchors), torch.cat(level_deltas),
                             image_hw)
        level_ids = torch.cat(level_ids)
        if cfg.get('min_bbox_size', -1) >= 0:
            wide = ((boxes[:, 2] - boxes[:, 0] > cfg.min_bbox_size)
                    & (boxes[:, 3] - boxes[:, 1] > cfg.min_bbox_size))
            boxes, scores, level_ids = boxes[wide], scores[wide], level_ids[wide]
        keep = batched_nms(boxes, scores, level_ids, cfg.nms.iou_threshold,
                           image_hw)[:cfg.max_per_img]
        return boxes[keep]

    def detections(self, feats, proposals, image_hw):
        """The RoI head's boxes (K, 4), scores (K,) and labels (K,) from ``proposals``."""
        rois = torch.cat([torch.zeros_like(proposals[:, :1]), proposals], dim=1)  # image 0
        stage_logits = []
        for stage, (extractor, head) in enumerate(zip(self.bbox_extractors, self.bbox_heads)):
            cls_score, bbox_pred = head(multilevel_roi_align(extractor, feats, rois))
            stage_logits.append(cls_score)
            if stage < len(self.bbox_heads) - 1:  # Cascade: the next stage sees the refined RoIs
                refined = self.class_boxes(head, rois, bbox_pred, image_hw,
                                           labels=cls_score[:, :-1].argmax(dim=1))
                rois = torch.cat([rois[:, :1], refined], dim=1)
        scores = torch.stack(stage_logits).mean(dim=0).softmax(dim=-1)[:, :-1]
        boxes = self.class_boxes(self.bbox_heads[-1], rois, bbox_pred, image_hw)
        return self.multiclass_nms(boxes, scores, image_hw)

    @staticmethod
    def class_boxes(head, rois, bbox_pred, image_hw, labels=None):
        """``bbox_pred`` decoded on ``rois``: (K, num_classes, 4), or with ``labels`` (K,) the
        box of each RoI's label (K, 4). Class-agnostic regression gives one box for all."""
        size = head.bbox_coder.encode_size
        priors = rois[:, 1:]
        if head.reg_class_agnostic:
            boxes = decode_boxes(head.bbox_coder, priors, bbox_pred, image_hw)
            return boxes if labels is not None else boxes[:, None].expand(
                -1, head.num_classes, -1)
        if labels is not None:
            columns = labels[:, None] * size + torch.arange(size, device=labels.device)
            return decode_boxes(head.bbox_coder, priors, bbox_pred.gather(1, columns), image_hw)
        classes = head.num_classes
        boxes = decode_boxes(head.bbox_coder, priors[:, None].expand(-1, classes, -1).reshape(
            -1, 4), bbox_pred.reshape(-1, size), image_hw)
        return boxes.reshape(-1, classes, 4)

    def multiclass_nms(self, boxes, scores, image_hw):
        """mmdet's ``multiclass_nms`` of (K, C, 4) class boxes with (K, C) scores: per class the
        boxes above ``score_thr``, NMS (or soft-NMS across classes, as mmcv's batched), the
        ``max_per_img`` best of all, by decreasing score."""
        cfg = self.rcnn_cfg
        nms = dict(cfg.nms)
        if nms.pop('type', 'nms') == 'soft_nms':
            labels = torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
            boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
            confident = scores > cfg.score_thr
            boxes, scores, labels = boxes[confident], scores[confident], labels[confident]
            keep, scores = batched_soft_nms(boxes, scores, labels, image_hw, cfg.max_per_img,
                                            **nms)
            return boxes[keep], scores, labels[keep]
        cap = cfg.max_per_img if cfg.max_per_img > 0 else boxes.shape[0]
        kept = grouped_nms(boxes.transpose(0, 1).contiguous(), scores.t().contiguous(),
                           nms['iou_threshold'], cfg.score_thr, cap)
        labels, rois = kept[:, 0], kept[:, 1]
        scores = scores[rois, labels]
        best = scores.topk(torch.sym_min(cap, scores.shape[0])).indices
        return boxes[rois[best], labels[best]], scores[best], labels[best]

    def masks(self, feats, boxes, labels):
        """(K, M, M) mask probabilities of each detection's label; Cascade: the mean of the
        stages' sigmoid masks."""
        rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
        probabilities = torch.stack([
            head(multilevel_roi_align(extractor, feats, rois)).sigmoid()
            for extractor, head in zip(self.mask_extractors, self.mask_heads)]).mean(dim=0)
        if self.mask_heads[-1].class_agnostic:
            return probabilities[:, 0]
        return probabilities.gather(1, labels[:, None, None, None].expand(
            -1, 1, *probabilities.shape[2:]))[:, 0]
