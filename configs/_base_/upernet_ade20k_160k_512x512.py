"""ADE20K at 512x512 crops for ``upernet_ade20k_160k.py``.

mmseg's data pipelines at scale (2048, 512), batch 2 per GPU. Single-scale test: sliding
512x512 windows at stride 341. Multi-scale + flip test (``tools/test.py --tta``): (2048, 512)
times 0.5, 0.75, ..., 1.75, each also flipped, each view inferred whole (``tta_model`` in
``upernet_ade20k_160k.py``), as in the original runs (mmseg's own TTA pipeline
scales the raw image instead).
"""
_base_ = ['./upernet_ade20k_160k.py', 'mmseg::_base_/datasets/ade20k.py']

model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    test_cfg=dict(mode='slide', crop_size=_base_.crop_size, stride=(341, 341)))

# A sample that fails to load or transform stops training with an error naming its files and
# index; dataset.skip_bad_samples=True (default False) skips it instead, logs it and counts it
# (``skipped_samples`` in the log; ``mmconvnext.SkippedSamplesHook`` in upernet_ade20k_160k.py).
train_dataloader = dict(batch_size=2, dataset=dict(type='mmconvnext.CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='mmconvnext.CheckedADE20KDataset'))
test_dataloader = val_dataloader

tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(int(2048 * ratio), int(512 * ratio)), keep_ratio=True)
                for ratio in _base_.img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ]),
]
