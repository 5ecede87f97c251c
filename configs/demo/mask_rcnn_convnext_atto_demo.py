"""The demo's Mask R-CNN: ConvNeXt-atto from scratch on the drawn shapes (``tools/demo.py``).

On top of ``mask_rcnn_convnext_t.py``: the atto backbone without pretrained weights or drop
path, slim heads (FPN and RoI heads 64 channels, 256-wide FCs, 64 sampled RoIs, 100 training /
200 test proposals) and anchors half as large (scale 4) for 17-40 px shapes (square root of
their area), 3 classes; the box head regresses decoded boxes with a GIoU loss, as the paper's
Cascade Mask R-CNN heads do (``configs/_base_/cascade_mask_rcnn_4conv1fc_giou.py``); 128 px
images (flip only); batch 8 for 12 epochs of 40 iterations, AdamW at lr 2e-3 with a
50-iteration warm-up and steps after epochs 9 and 11; COCO bbox + segm AP of every class
evaluated once, at the end.

GIoU instead of the base's L1 box loss: held-out bbox mAP 0.688 -> 0.718, segm 0.769 -> 0.789
after 12 epochs (one thread); the shapes' boxes were found (AP@0.5 0.95) but not tight enough.
"""
_base_ = ['../mask_rcnn_convnext_t.py']

data_root = 'data/demo/coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'))
image_size = (128, 128)
width = 64

model = dict(
    backbone=dict(arch='atto', drop_path_rate=0., init_cfg=None),
    neck=dict(in_channels=[40, 80, 160, 320], out_channels=width),
    rpn_head=dict(
        in_channels=width, feat_channels=width, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(
            in_channels=width, fc_out_channels=256, num_classes=3, reg_decoded_bbox=True,
            loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=10.0)),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=400, max_per_img=100), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=400, max_per_img=200)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# bbox and segm as two metrics: mmdet's classwise keys (<class>_precision) carry no metric name,
# so one metric evaluating both would keep only the segm AP of each class.
val_evaluator = [
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json', metric=metric,
         classwise=True, prefix=f'coco_{metric}') for metric in ('bbox', 'segm')]
test_evaluator = val_evaluator

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[9, 11]),
]
optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(num_layers=5))

default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
