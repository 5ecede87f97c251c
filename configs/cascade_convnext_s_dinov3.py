"""Cascade Mask R-CNN, ConvNeXt-S distilled by DINOv3 on LVD-1689M, COCO 3x.

Our recipe, not a published one: every setting is that of ``cascade_convnext_s.py`` (the ConvNeXt
paper's recipe for this size); only the backbone's weights differ. The DINOv3 file's final norm
becomes the last output norm ``norm3`` (docs/checkpoints.md).

The DINOv3 weights are under the DINOv3 License
(https://ai.meta.com/resources/models-and-libraries/dinov3-license/), not MIT: its terms also bind
the models trained from them. Download the file after accepting it (facebookresearch/dinov3,
"Pretrained models") into checkpoints/ under its published name (docs/model_zoo.md, "DINOv3
ConvNeXt").
"""
_base_ = ['./cascade_convnext_s.py']

checkpoint_file = 'checkpoints/dinov3_convnext_small_pretrain_lvd1689m-296db49d.pth'
model = dict(backbone=dict(init_cfg=dict(checkpoint=checkpoint_file)))
