"""Cascade Mask R-CNN, ConvNeXt-B pretrained on ImageNet-22K, COCO 3x
(paper: 54.0 box AP, 46.9 mask AP)."""
_base_ = ['./_base_/cascade_mask_rcnn_4conv1fc_giou.py', './_base_/coco_instance_3x_ms_crop.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = 'https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmconvnext.ConvNeXt',
        arch='base',
        drop_path_rate=0.6,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[128, 256, 512, 1024]))

optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(decay_rate=0.8, num_layers=12))
