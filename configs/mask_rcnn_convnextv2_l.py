"""Mask R-CNN, ConvNeXt V2-L (FCMAE pre-trained, ImageNet-1K fine-tuned), COCO 3x with large-scale
jitter (ConvNeXt V2 paper, Table 6: 54.4 box AP, 47.7 mask AP; 875G FLOPs at 1280x800).

From the ConvNeXt V2 paper (arXiv 2301.00808): Mask R-CNN with the FCMAE pre-trained backbone (Table
6, section 6); initialised from "the final model weights from ImageNet-1K pre-training", which we
read as the FCMAE + ImageNet-1K fine-tuned classifier (convnextv2_large_1k_224_ema.pt); 3x schedule
(36 epochs), batch 32, AdamW with lr 1e-4 and weight decay 0.05, large-scale jitter at 1024x1024
with scale range [0.1, 2.0], single-scale test with soft-NMS (appendix A.3). Appendix A.3 gives only
the sweeps of layer decay {0.9, 0.95} and drop path {0.2, 0.3, 0.4, 0.5}; we take the swept value
nearest our V1 recipe of the same size (cascade_convnext_l_22k: layer decay 0.7, drop path 0.7): 0.9
and 0.5. Where the paper is silent, our V1 recipe of the same size: 12 layer-wise decay groups,
mmdet's 500-iteration warm-up, the LR divided by 10 after epochs 27 and 33, fp32, the (1333, 800)
test scale.
"""
_base_ = ['./_base_/mask_rcnn_convnextv2_fpn.py', './_base_/coco_instance_3x_lsj.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = ('https://dl.fbaipublicfiles.com/convnext/convnextv2/'
                   'im1k/convnextv2_large_1k_224_ema.pt')
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[192, 384, 768, 1536]))

optim_wrapper = dict(
    type='OptimWrapper',  # trained in fp32
    optimizer=dict(lr=1e-4), paramwise_cfg=dict(decay_rate=0.9, num_layers=12))
