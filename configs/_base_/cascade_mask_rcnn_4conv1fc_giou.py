"""mmdet's Cascade Mask R-CNN (FPN) with the box heads of the ConvNeXt / Swin COCO models.

Each of mmdet's three stage heads (IoU thresholds 0.5/0.6/0.7, target stds 0.1/0.2, 0.05/0.1,
0.033/0.067, loss weights 1/0.5/0.25) becomes 4 shared 3x3 convs + 1 FC with SyncBN, regressing
class-specific decoded boxes under a GIoU loss of weight 10. The 4-conv FCN mask heads are mmdet's.
"""
_base_ = ['mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py']

model = dict(
    roi_head=dict(bbox_head=[
        dict(
            stage_head,
            type='ConvFCBBoxHead',
            num_shared_convs=4,
            num_shared_fcs=1,
            conv_out_channels=256,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stage_head in _base_.model.roi_head.bbox_head
    ]))
