"""UperNet, ConvNeXt V2-H (FCMAE pre-trained, ImageNet-22K and then ImageNet-1K fine-tuned), ADE20K
160k at 640x640 (ConvNeXt V2 paper, Table 7: 57.0 mIoU multi-scale; 707M #params, 5113G FLOPs at
2560x640).

From the ConvNeXt V2 paper (arXiv 2301.00808): UperNet with the FCMAE backbone (Table 7, section 6),
initialised from the "FCMAE, 22K ft" row: ImageNet-1K FCMAE pre-training followed by ImageNet-22K
supervised fine-tuning (Table 7 caption); of the two published 22K files (384 and 512, both then
fine-tuned on ImageNet-1K) we take the 384 one, the resolution of the 22K fine-tuning (section 5);
AdamW with weight decay 0.05, batch 16, 160k iterations, crop 640x640 (Table 7; appendix A.4 says
512 for the others); multi-scale test at 0.75, 0.875, 1.0, 1.125, 1.25 x the test scale (2560x640;
appendix A.4, no flip named: ``tools/test.py --tta``). Appendix A.4 gives only the sweeps of layer
decay {0.8, 0.9}, lr {1e-4, 2e-4, 3e-4} and drop path {0.1, 0.2, 0.3, 0.4}; we take the swept values
nearest our V1 recipe (no V1 of this size: of the largest, XL) (upernet_convnext_xl_22k_640: lr
8e-5, stage decay 0.9, drop path 0.4): lr 1e-4, decay 0.9, drop path 0.4. Where the paper is silent,
our V1 recipe (no V1 of this size: of the largest, XL): stage-wise decay over 12 groups, the
1500-iteration warm-up and poly decay, fp32, the sliding-window single-scale test.
"""
_base_ = ['./_base_/upernet_convnextv2_ade20k_640x640.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = ('https://dl.fbaipublicfiles.com/convnext/convnextv2/'
                   'im22k/convnextv2_huge_22k_384_ema.pt')
model = dict(
    backbone=dict(
        arch='huge',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[352, 704, 1408, 2816]),
    auxiliary_head=dict(in_channels=1408))

optim_wrapper = dict(
    type='OptimWrapper',  # trained in fp32
    optimizer=dict(lr=1e-4), paramwise_cfg=dict(num_layers=12))
