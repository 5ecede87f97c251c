"""mmseg's ConvNeXt UperNet for ADE20K's 150 classes, trained 160k iterations (the ConvNeXt recipe).

UperNet head (pool scales 1, 2, 3, 6; 512 channels) + auxiliary FCN head on stage index 2 with
loss weight 0.4, SyncBN in both, as in mmseg's base. AdamW with weight decay 0.05 under the
stage-wise LR decay constructor (rate 0.9), in mixed precision; a 1500-iteration linear warm-up
from 1e-6 multiplies a poly (power 1) decay to 0 that spans all 160k iterations, as mmcv 1.x's
warm-up did in the original runs. Each model config sets its ``lr`` and ``num_layers``; fp32
models set ``type='OptimWrapper'``. Data, crop size and sliding-window test: the ``*_512x512`` /
``*_640x640`` pieces. Their multi-scale (+ flip) test (``tools/test.py --tta``) infers each view
on the whole resized image, as the official ``*_ms.py`` configs' ``--aug-test`` did (not with the
single-scale test's sliding windows). ``mmconvnext.NonFiniteStepHook`` stops a run at a
non-finite loss or gradient (docs/training.md).
"""
_base_ = [
    'mmseg::_base_/models/upernet_convnext.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    'mmseg::_base_/default_runtime.py',
]

model = dict(decode_head=dict(num_classes=150), auxiliary_head=dict(num_classes=150))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='mmconvnext.LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'),
    optimizer=dict(_delete_=True, type='AdamW', betas=(0.9, 0.999), weight_decay=0.05))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=160000),
]

# tools/test.py --tta: the paper's "ms+flip" protocol, each view through the whole network.
tta_model = dict(type='mmconvnext.SegTTAModelWithTestCfg', test_cfg=dict(mode='whole'))

# Batch 2 per GPU on 8 GPUs (set in the data pieces).
auto_scale_lr = dict(enable=False, base_batch_size=16)

# The number of bad training samples skipped (data pieces: skip_bad_samples) in the log; a
# non-finite loss or gradient stops the run (docs/training.md).
custom_hooks = [
    dict(type='mmconvnext.SkippedSamplesHook'),
    dict(type='mmconvnext.NonFiniteStepHook'),
]
