"""mmdet's Mask R-CNN (FPN) with a ConvNeXt V2 backbone, its box head tested with soft-NMS.

The V2 backbone: ``use_grn=True``, no layer scale. ConvNeXt V2 paper, appendix A.3:
"single-scale testing with soft-NMS". mmdet's own soft-NMS
setting (``faster-rcnn_r50_fpn_soft-nms_1x_coco.py``): linear decay above IoU 0.5, instead of
NMS at 0.5; the score threshold (0.05) and 100 detections per image stay mmdet's.
"""
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

#: ConvNeXt V2; each config adds arch, drop_path_rate, init_cfg and the neck's in_channels.
model = dict(
    backbone=dict(
        _delete_=True, type='mmconvnext.ConvNeXt', use_grn=True, layer_scale_init_value=0.),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))
