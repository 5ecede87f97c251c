"""Cascade Mask R-CNN, ConvNeXt-B distilled by DINOv3 on LVD-1689M, COCO 3x.

Our recipe: every setting of ``cascade_convnext_b.py``, DINOv3's weights. They are under the DINOv3
License, not MIT (download: docs/model_zoo.md, "DINOv3 ConvNeXt").
"""
_base_ = ['./cascade_convnext_b.py']

checkpoint_file = 'checkpoints/dinov3_convnext_base_pretrain_lvd1689m-801f2ba9.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint_file)))
