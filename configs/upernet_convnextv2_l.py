"""UperNet, ConvNeXt V2-L (FCMAE pre-trained, ImageNet-1K fine-tuned), ADE20K 160k at 512x512
(ConvNeXt V2 paper, Table 7: 53.7 mIoU multi-scale; 235M #params, 1573G FLOPs at 2048x512).

From the ConvNeXt V2 paper (arXiv 2301.00808): UperNet with the FCMAE backbone (Table 7, section 6),
initialised from the ImageNet-1K fine-tuned classifier ("we initialized the segmentation models
using model weights after supervised fine-tuning on ImageNet-1K", appendix A.4); AdamW with weight
decay 0.05, batch 16, 160k iterations, crop 512x512; multi-scale test at 0.75, 0.875, 1.0, 1.125,
1.25 x the test scale (2048x512; appendix A.4, no flip named: ``tools/test.py --tta``). Appendix A.4
gives only the sweeps of layer decay {0.8, 0.9}, lr {1e-4, 2e-4, 3e-4} and drop path {0.1, 0.2, 0.3,
0.4}; we take the swept values nearest our V1 recipe of the same size (upernet_convnext_l_22k_640:
lr 1e-4, stage decay 0.9, drop path 0.4): lr 1e-4, decay 0.9, drop path 0.4. Where the paper is
silent, our V1 recipe of the same size: stage-wise decay over 12 groups, the 1500-iteration warm-up
and poly decay, fp32, the sliding-window single-scale test.
"""
_base_ = ['./_base_/upernet_convnextv2_ade20k_512x512.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = ('https://dl.fbaipublicfiles.com/convnext/convnextv2/'
                   'im1k/convnextv2_large_1k_224_ema.pt')
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))

optim_wrapper = dict(
    type='OptimWrapper',  # trained in fp32
    optimizer=dict(lr=1e-4), paramwise_cfg=dict(num_layers=12))
