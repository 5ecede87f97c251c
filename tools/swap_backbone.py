"""Write a config that replaces the backbone of an mmdet / mmseg config with ConvNeXt.

    python tools/swap_backbone.py BASE_CONFIG --arch tiny [--v2] \
        [--pretrain 1k|22k|fcmae|dinov3|none|FILE] -o NEW_CONFIG [--force] [--no-complexity]

BASE_CONFIG is a config file or an ``mmdet::`` / ``mmseg::`` path. NEW_CONFIG inherits it and
overrides only the backbone (ConvNeXt at the base's pyramid levels and strides, dilated for a
dilated base, with the paper's drop-path rate and the official ImageNet checkpoint), the input
normalisation (ImageNet RGB, as the ConvNeXt weights expect), the input channels of the modules
that read the backbone and the optimizer (AdamW + the paper's layer-wise / stage-wise lr decay);
it is checked to load, build and run before it is written, and the changes are printed, then the
#params and FLOPs of both models at the base's test size. ``--v2`` (implied by an arch only V2
has, ``huge``) swaps in ConvNeXt V2 (GRN, no layer scale) with the V2 paper's recipe and the
official V2 checkpoints (also ``--pretrain fcmae``, the self-supervised weights). ``--pretrain
dinov3`` takes DINOv3's distilled ConvNeXt T / S / B / L (from ``checkpoints/``, under the DINOv3
License) with the ConvNeXt paper's recipe of the size. Bases that cannot take a ConvNeXt
pyramid faithfully are refused with the reason (exit status 1, nothing written). See
:mod:`mmconvnext.swap` and docs/swap_backbone.md.
"""
import argparse

from mmconvnext.models.backbones.arch_settings import ARCH_SETTINGS, V2_ONLY_ARCHS
from mmconvnext.swap import BackboneSwapError, write_swapped_config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('base', help='base config: a file or an mmdet:: / mmseg:: path')
    parser.add_argument('--arch', required=True, choices=list(ARCH_SETTINGS),
                        help='ConvNeXt size')
    parser.add_argument('--v2', action='store_true',
                        help='ConvNeXt V2 (GRN) with the V2 paper recipe and checkpoints; implied '
                        f'by an arch only V2 has ({", ".join(V2_ONLY_ARCHS)})')
    parser.add_argument('--pretrain', default='1k',
                        help="'1k' or '22k' (official ImageNet checkpoint, default 1k), 'fcmae' "
                        "(V2's self-supervised weights), 'dinov3' (DINOv3's distilled T / S / B "
                        "/ L, read from checkpoints/; DINOv3 License), 'none' (random init) or a "
                        'local checkpoint file')
    parser.add_argument('-o', '--output', required=True, help='the new .py config')
    parser.add_argument('--force', action='store_true', help='overwrite an existing output')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not count #params / FLOPs of the two models (saves CPU time)')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        changes = write_swapped_config(args.base, args.output, args.arch, args.pretrain,
                                       args.force, complexity=not args.no_complexity,
                                       v2=args.v2)
    except BackboneSwapError as err:
        raise SystemExit(f'error: cannot swap the backbone of {args.base}: {err}') from None
    print(f'Wrote {args.output} (base {args.base}). Changes:')
    for change in changes:
        print(f'  - {change}')


if __name__ == '__main__':
    main()
