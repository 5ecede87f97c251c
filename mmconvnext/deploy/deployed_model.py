"""An exported file evaluated in place of the PyTorch model, on the config's own test set and
metric (``tools/test.py CONFIG MODEL.onnx --backend onnxruntime|openvino``).

:class:`DeployedModel` turns the test pipeline's images into the file's input and its outputs
into the data samples the PyTorch model's ``predict`` returns, by mmdet's and mmseg's rules:

- every image is converted from mmcv's BGR to RGB and padded at the bottom and right to the
  file's fixed input, or (dynamic file) to multiples of 32, with the preprocessor's mean, which
  it normalises to the 0 that mmdet / mmseg pad with;
- detection: boxes clipped to the resized image and divided by its ``scale_factor``; each mask
  pasted into the original image by mmdet's ``_do_paste_mask`` (its CPU path, one detection at a
  time) and thresholded at ``mask_thr_binary``;
- segmentation: the logits cropped to the resized image, resized to the original (bilinear,
  ``align_corners``), argmax; with ``slide``, mmseg's sliding-window inference around the file
  (each window padded as above), as ``EncoderDecoder.slide_inference`` does it. Where one
  window covers the image and no resize is needed, the file's class map is the prediction (the
  same argmax of the same logits).

:func:`deployed_model_config` reads every one of these settings from the config.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmengine.model import BaseModel
from mmengine.structures import InstanceData, PixelData

from mmconvnext.registry import MODELS
from .errors import DeployError
from .onnx_file import SIZE_DIVISOR, file_description
from .runtimes import check_runtime, open_session


def deployed_model_config(cfg, model_file, runtime, threads=None, precision='f32'):
    """The ``cfg.model`` that evaluates ``model_file`` with ``runtime``: a
    :class:`DeployedModel` with the padding, mask threshold, ``align_corners`` and sliding
    window of ``cfg.model``. ``DeployError`` if the runtime's package is missing or it lacks
    ``precision``, or the file was exported for another task or number of classes than ``cfg``.
    """
    check_runtime(runtime, precision)
    description = file_description(model_file)
    model = cfg.model
    task = description['task']
    preprocessor = model.get('data_preprocessor', {})
    mean = list(preprocessor.get('mean') or (0., 0., 0.))
    pad_rgb = mean if preprocessor.get('bgr_to_rgb') or preprocessor.get('rgb_to_bgr') else (
        mean[::-1])
    # the images reach the file as the pipeline packs them: mmengine's Runner would otherwise
    # give the model the config's top-level (normalising) data_preprocessor
    settings = dict(type='mmconvnext.DeployedModel', model_file=model_file, runtime=runtime,
                    task=task, input_hw=description['input_shape'][2:], threads=threads,
                    precision=precision, pad_rgb=pad_rgb,
                    data_preprocessor=dict(type='mmengine.BaseDataPreprocessor'))
    if task == 'detection':
        if 'roi_head' not in model:
            raise DeployError(f'{model_file} holds a detector; the config has no model.roi_head')
        heads = model.roi_head.bbox_head
        classes = (heads[-1] if isinstance(heads, list) else heads).num_classes
        settings['mask_thr_binary'] = model.test_cfg.rcnn.get('mask_thr_binary', 0.5)
    else:
        if 'decode_head' not in model:
            raise DeployError(f'{model_file} holds a segmentor; the config has no '
                              'model.decode_head')
        if 'logits' not in description['outputs']:
            raise DeployError(f'{model_file} has no logits output, which evaluation needs: '
                              'export it with --logits')
        classes = model.decode_head.num_classes
        settings['align_corners'] = model.decode_head.get('align_corners', False)
        test_cfg = model.get('test_cfg') or {}
        if test_cfg.get('mode') == 'slide':
            settings['slide'] = dict(crop_size=tuple(test_cfg.crop_size),
                                     stride=tuple(test_cfg.stride))
    if int(description['num_classes']) != classes:
        raise DeployError(f"{model_file} has {description['num_classes']} classes, the config "
                          f'{classes}: it was exported from another config')
    return settings


@MODELS.register_module()
class DeployedModel(BaseModel):
    """The ONNX ``model_file`` of ``task`` ('detection' or 'segmentation') with input (H, W)
    ``input_hw`` (None for a dynamic axis), run by ``runtime`` (see :mod:`.runtimes`); built
    from :func:`deployed_model_config`, which reads both from the file; ``pad_rgb`` (3,):
    the padding, in RGB 0-255; ``mask_thr_binary``: detection masks' threshold (< 0: uint8
    probabilities x 255, as mmdet); ``align_corners``: the decode head's; ``slide``: dict of
    ``crop_size`` and ``stride`` (H, W) for sliding-window segmentation; ``threads`` and
    ``precision``: the runtime's (:func:`.runtimes.open_session`)."""

    def __init__(self, model_file, task, input_hw, runtime, pad_rgb, mask_thr_binary=0.5,
                 align_corners=False, slide=None, threads=None, precision='f32',
                 data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.task = task
        self.fixed_hw = tuple(input_hw)
        self.session = open_session(model_file, runtime, threads, precision)
        self.pad_rgb = torch.tensor(pad_rgb, dtype=torch.float32).reshape(3, 1, 1)
        self.mask_thr_binary = mask_thr_binary
        self.align_corners = align_corners
        self.slide = slide

    def forward(self, inputs, data_samples=None, mode='predict'):
        if mode != 'predict':
            raise DeployError(f'an exported model only predicts (mode {mode!r})')
        predict = self._detect if self.task == 'detection' else self._segment
        return [predict(image, sample) for image, sample in zip(inputs, data_samples)]

    def _run(self, image_rgb):
        """The file's outputs for one (3, h, w) float RGB image, padded to its input shape."""
        height, width = image_rgb.shape[-2:]
        if None in self.fixed_hw:
            target = (math.ceil(height / SIZE_DIVISOR) * SIZE_DIVISOR,
                      math.ceil(width / SIZE_DIVISOR) * SIZE_DIVISOR)
        else:
            target = self.fixed_hw
            if height > target[0] or width > target[1]:
                raise DeployError(f'image {height} x {width} does not fit the file\'s fixed '
                                  f'input {target[0]} x {target[1]}: export with --dynamic, or '
                                  'with --shape as large as the test images')
        padded = self.pad_rgb.expand(3, *target).clone()
        padded[:, :height, :width] = image_rgb
        outputs = self.session(padded[None].numpy())
        return {name: torch.from_numpy(np.asarray(value)) for name, value in outputs.items()}

    @staticmethod
    def _rgb(image):
        return image.float().flip(0)  # mmcv loads BGR

    def _detect(self, image, sample):
        outputs = self._run(self._rgb(image))
        height, width = sample.img_shape
        boxes = outputs['boxes'].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        boxes /= boxes.new_tensor(sample.scale_factor).repeat(2)
        instances = InstanceData(bboxes=boxes, scores=outputs['scores'],
                                 labels=outputs['labels'])
        if 'masks' in outputs:
            instances.masks = self._paste(outputs['masks'], boxes, *sample.ori_shape)
        sample.pred_instances = instances
        return sample

    def _paste(self, probabilities, boxes, height, width):
        """(K, H, W) masks of the (K, M, M) ``probabilities`` in their ``boxes``, as mmdet's
        ``FCNMaskHead`` pastes them on the CPU."""
        binary = self.mask_thr_binary >= 0
        masks = torch.zeros(len(boxes), height, width,
                            dtype=torch.bool if binary else torch.uint8)
        for index in range(len(boxes)):
            pasted, region = _do_paste_mask(probabilities[index:index + 1, None],
                                            boxes[index:index + 1], height, width,
                                            skip_empty=True)
            masks[(slice(index, index + 1), ) + region] = (
                pasted >= self.mask_thr_binary if binary else (pasted * 255).to(torch.uint8))
        return masks

    def _segment(self, image, sample):
        image = self._rgb(image)
        height, width = sample.img_shape
        logits, class_map = (self._slide if self.slide else self._whole)(
            image[:, :height, :width])
        if tuple(logits.shape[-2:]) != tuple(sample.ori_shape):
            logits = F.interpolate(logits[None], size=sample.ori_shape, mode='bilinear',
                                   align_corners=self.align_corners)[0]
            class_map = None
        sample.seg_logits = PixelData(data=logits)
        sample.pred_sem_seg = PixelData(
            data=logits.argmax(dim=0, keepdim=True) if class_map is None else class_map)
        return sample

    def _whole(self, image):
        """(C, h, w) logits and (1, h, w) class map of one (3, h, w) image (the file's, its
        padding cropped off)."""
        outputs = self._run(image)
        window = (slice(None), slice(0, image.shape[1]), slice(0, image.shape[2]))
        return outputs['logits'][0][window], outputs['class_map'][window]

    def _slide(self, image):
        """mmseg's ``slide_inference`` of one image: overlapping windows, logits averaged; the
        class map only when one window covers the image (else None)."""
        (crop_h, crop_w), (stride_h, stride_w) = self.slide['crop_size'], self.slide['stride']
        height, width = image.shape[-2:]
        rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
        cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
        if rows == cols == 1:
            return self._whole(image)
        total, count = None, torch.zeros(1, height, width)
        for row in range(rows):
            for col in range(cols):
                y2, x2 = min(row * stride_h + crop_h, height), min(col * stride_w + crop_w, width)
                y1, x1 = max(y2 - crop_h, 0), max(x2 - crop_w, 0)
                logits = self._whole(image[:, y1:y2, x1:x2])[0]
                if total is None:
                    total = logits.new_zeros(len(logits), height, width)
                total[:, y1:y2, x1:x2] += logits
                count[:, y1:y2, x1:x2] += 1
        return total / count, None
