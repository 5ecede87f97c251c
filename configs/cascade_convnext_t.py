"""Cascade Mask R-CNN, ConvNeXt-T pretrained on ImageNet-1K, COCO 3x
(paper: 50.4 box AP, 43.7 mask AP)."""
_base_ = ['./_base_/cascade_mask_rcnn_4conv1fc_giou.py', './_base_/coco_instance_3x_ms_crop.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = 'https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmconvnext.ConvNeXt',
        arch='tiny',
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=0.7, num_layers=6))
