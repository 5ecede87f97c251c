"""An mmseg ``EncoderDecoder`` as one graph: image -> per-pixel class map (and logits).

Input ``image`` (N, 3, H, W) float32 RGB in 0-255 (H, W multiples of 32). Outputs:
``class_map`` (N, H, W) int64, the argmax of the logits resized to the input (bilinear, the
decode head's ``align_corners``, as mmseg's whole-image inference); with ``with_logits`` also
``logits`` (N, num_classes, H, W) float32 at input size. The auxiliary head is not part of
inference and is left out.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .graph_ops import ImageNormalisation, replace_adaptive_pools


class SegmentorGraph(nn.Module):
    """``segmentor`` (eval mode, its weights shared) from normalisation to the class map; its
    adaptive poolings (PSP / UperNet pyramid pooling, ASPP image pooling) work at any input
    size."""

    def __init__(self, segmentor, with_logits=False, half=False):
        super().__init__()
        self.normalise = ImageNormalisation(segmentor.data_preprocessor)
        self.backbone = segmentor.backbone
        self.neck = segmentor.neck if segmentor.with_neck else None
        self.decode_head = segmentor.decode_head
        replace_adaptive_pools(self.decode_head)
        self.with_logits = with_logits
        self.compute_dtype = torch.float16 if half else torch.float32
        for part in (self.backbone, self.neck, self.decode_head):
            if part is not None:
                part.to(self.compute_dtype)

    #: Whether the graph handles any batch size (detectors: one image).
    batch_dynamic = True
    #: Whether onnxscript's optimizer runs on the exported graph.
    optimize_onnx = True

    @property
    def num_classes(self):
        return self.decode_head.num_classes

    @property
    def output_names(self):
        return ['class_map', 'logits'] if self.with_logits else ['class_map']

    def forward(self, image):
        feats = self.backbone(self.normalise(image).to(self.compute_dtype))
        if self.neck is not None:
            feats = self.neck(feats)
        logits = self.decode_head(feats)
        logits = F.interpolate(logits.float(), size=image.shape[-2:], mode='bilinear',
                               align_corners=self.decode_head.align_corners)
        class_map = logits.argmax(dim=1)
        return (class_map, logits) if self.with_logits else (class_map, )
