"""UperNet, ConvNeXt-S pretrained on ImageNet-1K, ADE20K 160k at 512x512
(paper: 48.7 mIoU single-scale, 49.6 multi-scale + flip)."""
_base_ = ['./_base_/upernet_ade20k_160k_512x512.py']
custom_imports = dict(imports=['mmconvnext'], allow_failed_imports=False)

checkpoint_file = 'https://dl.fbaipublicfiles.com/convnext/convnext_small_1k_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmconvnext.ConvNeXt',
        arch='small',
        drop_path_rate=0.3,
        layer_scale_init_value=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(num_layers=12))
