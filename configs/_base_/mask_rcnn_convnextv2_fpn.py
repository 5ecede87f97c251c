"""mmdet's Mask R-CNN (FPN), its box head tested with soft-NMS (the ConvNeXt V2 recipe).

ConvNeXt V2 paper, appendix A.3: "single-scale testing with soft-NMS". mmdet's own soft-NMS
setting (``faster-rcnn_r50_fpn_soft-nms_1x_coco.py``): linear decay above IoU 0.5, instead of
NMS at 0.5; the score threshold (0.05) and 100 detections per image stay mmdet's.
"""
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']

model = dict(test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))
