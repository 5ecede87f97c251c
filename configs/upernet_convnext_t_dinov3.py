"""UperNet, ConvNeXt-T distilled by DINOv3 on LVD-1689M, ADE20K 160k.

Our recipe: every setting of ``upernet_convnext_t.py``, DINOv3's weights. They are under the DINOv3
License, not MIT (download: docs/model_zoo.md, "DINOv3 ConvNeXt").
"""
_base_ = ['./upernet_convnext_t.py']

checkpoint_file = 'checkpoints/dinov3_convnext_tiny_pretrain_lvd1689m-21b726bb.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint_file)))
