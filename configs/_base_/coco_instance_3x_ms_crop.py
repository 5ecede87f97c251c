"""COCO instance segmentation, 3x schedule, multi-scale + random-crop training (ConvNeXt recipe).

On top of mmdet's COCO instance data, 1x schedule and runtime: the DETR-style train augmentation,
36 epochs with the LR divided by 10 after epochs 27 and 33 (mmdet's 500-iteration linear warm-up
kept), AdamW with weight decay 0.05 under the layer-wise LR decay constructor, in mixed precision.
Batch 2 per GPU as in mmdet (16 on 8 GPUs, ``auto_scale_lr.base_batch_size``). The datasets
name bad samples and report the annotations they drop (``mmconvnext.CheckedCocoDataset``). Each
model config sets its ``lr``, ``decay_rate`` and ``num_layers``; fp32 models set
``type='OptimWrapper'``.
``mmconvnext.NonFiniteStepHook`` stops a run at a non-finite loss or gradient (docs/training.md).
"""
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

# Shorter side 480..800 in steps of 32, longer side at most 1333.
multi_scale_train_sizes = [(short_side, 1333) for short_side in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale_train_sizes, keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scale_train_sizes, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
# A sample that fails to load or transform stops training with an error naming its file and
# index; dataset.skip_bad_samples=True (default False) skips it instead, logs it and counts it
# (``skipped_samples`` in the log). The annotations CocoDataset drops are reported at start.
train_dataloader = dict(dataset=dict(type='mmconvnext.CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='mmconvnext.CheckedCocoDataset'))
test_dataloader = val_dataloader

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='mmconvnext.LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_type='layer_wise'),
    optimizer=dict(_delete_=True, type='AdamW', betas=(0.9, 0.999), weight_decay=0.05))

# The count of skipped samples in the log; a non-finite loss or gradient stops the run.
custom_hooks = [
    dict(type='mmconvnext.SkippedSamplesHook'),
    dict(type='mmconvnext.NonFiniteStepHook'),
]
