"""UperNet with a ConvNeXt V2 backbone on ADE20K at 640x640 crops, with the V2 paper's test.

``upernet_ade20k_160k_640x640.py`` (data, crop, sliding-window test), with the test-time
augmentation of the ConvNeXt V2 paper (appendix A.4): (2560, 640) x 0.75, 0.875, 1.0, 1.125, 1.25,
without flip (the paper names none) instead of the V1 runs' 0.5..1.75 plus flip. Each view is
inferred on the whole resized image, as in the V1 protocol (the paper names no mode). The V2
backbone: ``use_grn=True``, no layer scale.
"""
_base_ = ['./upernet_ade20k_160k_640x640.py']

#: ConvNeXt V2; each config adds arch, drop_path_rate, init_cfg and the heads' in_channels.
model = dict(
    backbone=dict(
        _delete_=True, type='mmconvnext.ConvNeXt', use_grn=True, layer_scale_init_value=0.))

tta_pipeline = _base_.tta_pipeline
tta_pipeline[1]['transforms'][0] = [
    dict(type='Resize', scale=(int(2560 * ratio), int(640 * ratio)), keep_ratio=True)
    for ratio in (0.75, 0.875, 1.0, 1.125, 1.25)
]
tta_pipeline[1]['transforms'][1] = [dict(type='RandomFlip', prob=0., direction='horizontal')]
