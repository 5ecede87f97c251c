"""The ConvNeXt authors' ImageNet classification checkpoints that dense-prediction fine-tuning
starts from (the ``checkpoint_file`` of the paper configs under ``configs/``).

ImageNet-1K: the non-EMA 224 files of T / S / B; ImageNet-22K: the 224 files of T..XL (the
22K-trained weights, before any 1K fine-tuning). All hold the weights under the key ``model``.
"""
OFFICIAL_CHECKPOINT_HOST = 'https://dl.fbaipublicfiles.com/convnext/'

#: pretraining data ('1k' | '22k') -> archs with an official file, named
#: ``convnext_{arch}_{pretrain}_224.pth`` on :data:`OFFICIAL_CHECKPOINT_HOST`.
OFFICIAL_CHECKPOINT_ARCHS = {
    '1k': ('tiny', 'small', 'base'),
    '22k': ('tiny', 'small', 'base', 'large', 'xlarge'),
}


def official_checkpoint_url(arch, pretrain):
    """URL of the official ``pretrain`` ('1k' | '22k') classification checkpoint of ``arch``."""
    if pretrain not in OFFICIAL_CHECKPOINT_ARCHS:
        raise ValueError(f'Unknown pretraining {pretrain!r}; valid: '
                         f'{", ".join(OFFICIAL_CHECKPOINT_ARCHS)}')
    archs = OFFICIAL_CHECKPOINT_ARCHS[pretrain]
    if arch not in archs:
        raise ValueError(f'No official ImageNet-{pretrain.upper()} ConvNeXt checkpoint for arch '
                         f'{arch!r}; published: {", ".join(archs)}')
    return f'{OFFICIAL_CHECKPOINT_HOST}convnext_{arch}_{pretrain}_224.pth'
