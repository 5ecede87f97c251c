"""COCO instance segmentation, 3x schedule, large-scale-jitter training (the ConvNeXt V2 recipe).

ConvNeXt V2 paper (arXiv 2301.00808), appendix A.3: 36 epochs (3x), batch 32, large-scale
jittering at 1024x1024 with scale range [0.1, 2.0]. On top of ``coco_instance_3x_ms_crop.py``
(schedule, AdamW under the layer-wise LR decay constructor, runtime, single-scale test at
(1333, 800)) only the training differs: mmdet's LSJ pipeline (as its ``common/lsj-*`` configs:
the image resized to 1024x1024 x 0.1..2.0, a 1024x1024 crop with boxes recomputed from the
masks, degenerate boxes dropped, flip) and 4 images per GPU (32 on 8 GPUs,
``auto_scale_lr.base_batch_size``).
"""
_base_ = ['./coco_instance_3x_ms_crop.py']

lsj_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=lsj_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_type='absolute_range',
        crop_size=lsj_size,
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
auto_scale_lr = dict(base_batch_size=32)
