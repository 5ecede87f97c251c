"""Cascade Mask R-CNN, ConvNeXt-L pretrained on ImageNet-22K, COCO 3x
(paper: 54.8 box AP, 47.6 mask AP)."""
_base_ = ['./_base_/cascade_mask_rcnn_4conv1fc_giou.py', './_base_/coco_instance_3x_ms_crop.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = 'https://dl.fbaipublicfiles.com/convnext/convnext_large_22k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmconvnext.ConvNeXt',
        arch='large',
        drop_path_rate=0.7,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[192, 384, 768, 1536]))

optim_wrapper = dict(
    type='OptimWrapper',  # trained in fp32
    optimizer=dict(lr=1e-4), paramwise_cfg=dict(decay_rate=0.7, num_layers=12))
