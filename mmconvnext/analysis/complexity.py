"""#params and FLOPs of an mmdet / mmseg config's whole model, as the ConvNeXt paper counts them.

mmengine's counter (``FlopAnalyzer`` on the tensor-mode forward, ``parameter_count`` of the whole
model; fvcore convention, one fused multiply-add = 1 FLOP), on one image of a fixed size.
"""
from functools import partial

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

# mmdet 2.x's forward_dummy, with which the papers counted detector FLOPs, runs the box heads on
# every RPN proposal and the mask heads on the first 100; mmdet 3.x's Mask R-CNN forward does the
# same, its CascadeRoIHead.forward runs the mask heads on every proposal too.
MASK_HEAD_ROIS = 100
# Proposals the RPN keeps while FLOPs are counted (RoI head FLOPs are scaled from them).
TRACED_PROPOSALS = 10
#: Width / height of the detectors' counted image (1280x800 at COCO's 800 short side).
DETECTOR_ASPECT_RATIO = 1.6


def is_detector(cfg):
    """Whether the config's model is a two-stage detector with RoI heads."""
    return 'roi_head' in cfg.model


def default_input_size(cfg):
    """(W, H) the paper counts FLOPs at, from the config's test ``Resize`` scale.

    Segmentors: the scale itself ((2048, 512) or (2560, 640) for ADE20K). Detectors: a
    ``DETECTOR_ASPECT_RATIO`` landscape image at the scale's short side (1280x800 for COCO's
    (1333, 800)). Raises ``ValueError`` if the test pipeline has no ``Resize`` with a scale.
    """
    pipeline = cfg.test_dataloader.dataset.pipeline
    scales = [step.scale for step in pipeline
              if step.get('type', '').split('.')[-1] == 'Resize' and 'scale' in step]
    if not scales:
        raise ValueError('the test pipeline has no Resize with a scale to take the input size '
                         'from')
    scale = scales[0]
    if isinstance(scale, int):
        scale = (scale, scale)
    if is_detector(cfg):
        short = min(scale)
        return round(short * DETECTOR_ASPECT_RATIO), short
    return tuple(scale)


def measure_complexity(cfg, input_size):
    """(#params, FLOPs) of the config's model in tensor mode on one ``input_size`` (W, H) image.

    The counter of ``mmengine.analysis.get_model_complexity_info`` without its activation pass,
    on the model built without pretrained weights and with SyncBN reverted (as mmengine's Runner
    does outside distributed runs). ``cfg`` is modified (backbone ``init_cfg``, RPN proposals).

    mmdet models get the metadata of an unpadded image bound to their forward, as in mmdet's
    ``tools/analysis_tools/get_flops.py`` (DETR-like detectors read it). Two-stage detectors' box
    heads count for every RPN proposal (``test_cfg.rpn.max_per_img``, 1000) and their mask heads,
    if any, for ``MASK_HEAD_ROIS`` RoIs. To save CPU time the RPN keeps ``TRACED_PROPOSALS`` here
    and the RoI heads' FLOPs, linear in the number of RoIs, are scaled up.
    """
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    detector = is_detector(cfg)
    if detector:
        proposals = cfg.model.test_cfg.rpn.max_per_img
        cfg.model.test_cfg.rpn.max_per_img = TRACED_PROPOSALS
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    width, height = input_size
    image = torch.randn(1, 3, height, width)

    if cfg.default_scope == 'mmdet':
        from mmdet.structures import DetDataSample
        shape = (height, width)
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                             batch_input_shape=shape, scale_factor=(1., 1.)))
        model.forward = partial(model.forward, data_samples=[sample], mode='tensor')
    if detector:
        head_rois = {}  # head name -> RoIs its (first stage's) forward receives

        def record_rois(head_name, module, args):
            head_rois.setdefault(head_name, len(args[0]))

        for head_name in ('bbox_head', 'mask_head'):
            head = getattr(model.roi_head, head_name, None)  # no mask head: Faster R-CNN
            if head is None:
                continue
            first_stage = head[0] if isinstance(head, torch.nn.ModuleList) else head
            first_stage.register_forward_pre_hook(partial(record_rois, head_name))

    analyzer = FlopAnalyzer(model, (image, ))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    if detector:
        head_flops = analyzer.by_module()
        rois = dict(bbox_head=proposals, mask_head=MASK_HEAD_ROIS)
        for head_name, traced in head_rois.items():
            flops += head_flops[f'roi_head.{head_name}'] * (rois[head_name] / traced - 1)
    return parameter_count(model)[''], flops
