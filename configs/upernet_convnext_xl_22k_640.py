"""UperNet, ConvNeXt-XL pretrained on ImageNet-22K, ADE20K 160k at 640x640
(paper: 53.6 mIoU single-scale, 54.0 multi-scale + flip)."""
_base_ = ['./_base_/upernet_ade20k_160k_640x640.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = 'https://dl.fbaipublicfiles.com/convnext/convnext_xlarge_22k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmconvnext.ConvNeXt',
        arch='xlarge',
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))

optim_wrapper = dict(
    type='OptimWrapper',  # trained in fp32
    optimizer=dict(lr=8e-5), paramwise_cfg=dict(num_layers=12))
