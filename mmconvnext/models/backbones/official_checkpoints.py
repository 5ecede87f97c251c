"""The ConvNeXt authors' checkpoints that dense-prediction fine-tuning starts from (the
``checkpoint_file`` of the paper configs under ``configs/``).

ConvNeXt: the ImageNet-1K non-EMA 224 files of T / S / B and the ImageNet-22K 224 files of
T..XL (the 22K-trained weights, before any 1K fine-tuning). ConvNeXt V2 (README of
facebookresearch/ConvNeXt-V2): the FCMAE pre-trained weights of every size, the FCMAE +
ImageNet-1K fine-tuned EMA files of every size, and the FCMAE + ImageNet-22K + ImageNet-1K
fine-tuned EMA files of N..H (224; H only at 384 and 512, of which we name the 384 one, the
resolution of its 22K fine-tuning). All hold the weights under the key ``model``.

DINOv3 (Meta, 2025): the ConvNeXt T / S / B / L distilled from DINOv3's ViT-7B on LVD-1689M,
released by facebookresearch/dinov3 under the DINOv3 License (not MIT: its terms bind what is
trained from them). Their download links are given per user after accepting that license, so the
configs read them from :data:`DINOV3_CHECKPOINT_DIR`, under their published file names.
"""
OFFICIAL_CHECKPOINT_HOST = 'https://dl.fbaipublicfiles.com/convnext/'

#: pretraining data ('1k' | '22k') -> archs with an official file, named
#: ``convnext_{arch}_{pretrain}_224.pth`` on :data:`OFFICIAL_CHECKPOINT_HOST`.
OFFICIAL_CHECKPOINT_ARCHS = {
    '1k': ('tiny', 'small', 'base'),
    '22k': ('tiny', 'small', 'base', 'large', 'xlarge'),
}

_V2_ALL = ('atto', 'femto', 'pico', 'nano', 'tiny', 'base', 'large', 'huge')
#: V2 pretraining ('fcmae' | '1k' | '22k') -> {arch: file under ``convnextv2/`` on the host}.
OFFICIAL_V2_CHECKPOINTS = {
    'fcmae': {arch: f'pt_only/convnextv2_{arch}_1k_224_fcmae.pt' for arch in _V2_ALL},
    '1k': {arch: f'im1k/convnextv2_{arch}_1k_224_ema.pt' for arch in _V2_ALL},
    '22k': {**{arch: f'im22k/convnextv2_{arch}_22k_224_ema.pt'
               for arch in ('nano', 'tiny', 'base', 'large')},
            'huge': 'im22k/convnextv2_huge_22k_384_ema.pt'},
}


def official_checkpoint_url(arch, pretrain, v2=False):
    """URL of the official ``pretrain`` checkpoint of ``arch``: '1k' | '22k' (V1 and V2) or
    'fcmae' (V2 only, the self-supervised weights)."""
    if v2:
        files, version = OFFICIAL_V2_CHECKPOINTS, 'ConvNeXt V2'
    else:
        files, version = {data: {arch: f'convnext_{arch}_{data}_224.pth' for arch in archs}
                          for data, archs in OFFICIAL_CHECKPOINT_ARCHS.items()}, 'ConvNeXt'
    if pretrain not in files:
        raise ValueError(f'Unknown {version} pretraining {pretrain!r}; valid: {", ".join(files)}')
    if arch not in files[pretrain]:
        data = 'FCMAE' if pretrain == 'fcmae' else f'ImageNet-{pretrain.upper()}'
        raise ValueError(f'No official {data} {version} checkpoint for arch {arch!r}; '
                         f'published: {", ".join(files[pretrain])}')
    return OFFICIAL_CHECKPOINT_HOST + ('convnextv2/' if v2 else '') + files[pretrain][arch]


#: Where the configs and ``tools/swap_backbone.py --pretrain dinov3`` expect the DINOv3 files
#: (relative to the directory the tools run in).
DINOV3_CHECKPOINT_DIR = 'checkpoints'
#: arch -> the DINOv3 repository's file of its LVD-1689M-distilled ConvNeXt (DINOv3 License).
DINOV3_CHECKPOINTS = {
    'tiny': 'dinov3_convnext_tiny_pretrain_lvd1689m-21b726bb.pth',
    'small': 'dinov3_convnext_small_pretrain_lvd1689m-296db49d.pth',
    'base': 'dinov3_convnext_base_pretrain_lvd1689m-801f2ba9.pth',
    'large': 'dinov3_convnext_large_pretrain_lvd1689m-61fa432d.pth',
}


def dinov3_checkpoint_path(arch):
    """The path of the DINOv3 ConvNeXt file of ``arch`` under :data:`DINOV3_CHECKPOINT_DIR`."""
    if arch not in DINOV3_CHECKPOINTS:
        raise ValueError(f'No DINOv3 ConvNeXt checkpoint for arch {arch!r}; published: '
                         f'{", ".join(DINOV3_CHECKPOINTS)}')
    return f'{DINOV3_CHECKPOINT_DIR}/{DINOV3_CHECKPOINTS[arch]}'
