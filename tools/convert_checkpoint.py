"""Convert a published ConvNeXt checkpoint into a clean mmconvnext backbone checkpoint.

    python tools/convert_checkpoint.py SRC DST [--prefix P | --whole-model] [--trust-pickle]

SRC is a local file or an http(s) URL in any format that
:mod:`mmconvnext.models.backbones.checkpoint_formats` recognises (official, timm, mmpretrain /
mmdet / mmseg zoos, torchvision, HuggingFace, ConvNeXt V2 FCMAE pre-training). DST receives
``{'state_dict': backbone tensors in our layout, 'meta': {'source_format': ..., 'source': SRC}}``,
which ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` and mmengine's ``load_checkpoint`` read.
The keys of SRC that are not backbone tensors (heads, necks, FCMAE's decoder) are listed as
dropped.

``--whole-model`` converts a whole detector / segmentor (the official repository's COCO / ADE20K
models, the mmdet / mmseg zoos' ConvNeXt models) instead: DST keeps every tensor, the backbone's
renamed to our layout under ``backbone.``, for ``load_from`` or ``tools/test.py``.

SRC is read with ``torch.load(weights_only=True)``. ``--trust-pickle`` reads a local SRC with
``weights_only=False`` instead, which runs any code the file holds: use it only for a file from a
source you trust, in an environment you trust. DST then holds tensors and strings only.
"""
import argparse
import os
import pickle

import torch

from mmconvnext.models.backbones.checkpoint_formats import (convert, convert_in_place,
                                                            read_checkpoint, summarise_keys,
                                                            whole_model_state_dict)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint file or http(s) URL')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument('--prefix', help="keep only keys under this prefix (e.g. 'backbone'); "
                        'default: strip module. / backbone. / convnext. automatically')
    parser.add_argument('--whole-model', action='store_true',
                        help='keep the whole detector / segmentor, its backbone (under '
                        'backbone.) renamed to our layout')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='read a local SRC with torch.load(weights_only=False): runs any code '
                        'it holds; only for files you trust')
    return parser.parse_args()


def whole_model(checkpoint):
    """A whole detector / segmentor checkpoint -> (its flat state dict with the ``backbone.``
    tensors in our layout, the backbone's source format)."""
    state_dict = whole_model_state_dict(checkpoint)
    if not any(key.startswith('backbone.') for key in state_dict):
        raise ValueError('--whole-model: no key starts with backbone.; for a backbone '
                         'checkpoint leave --whole-model out')
    source_format = convert_in_place(state_dict, 'backbone.')
    if source_format is None:  # ours already, or not ConvNeXt: convert() says which
        source_format = convert(state_dict, prefix='backbone').format_name
    return state_dict, source_format


def main():
    args = parse_args()
    try:
        if args.trust_pickle:
            if args.src.startswith(('http://', 'https://')):
                raise ValueError('--trust-pickle reads local files only: download SRC first')
            print(f'--trust-pickle: reading {args.src} with torch.load(weights_only=False), which '
                  'executes any code the file holds')
            checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
        else:
            checkpoint = read_checkpoint(args.src)
        if args.whole_model:
            if args.prefix:
                raise ValueError('--whole-model keeps every key: it takes no --prefix')
            state_dict, source_format = whole_model(checkpoint)
        else:
            conversion = convert(checkpoint, prefix=args.prefix)
    except (OSError, ValueError, pickle.UnpicklingError) as err:
        raise SystemExit(f'error: {err}') from None
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    if args.whole_model:
        torch.save({'state_dict': state_dict,
                    'meta': {'source_format': source_format, 'source': args.src}}, args.dst)
        print(f'{args.dst}: {len(state_dict)} tensors of a whole model, its backbone from the '
              f'{source_format} layout')
        return
    state_dict, source_format = conversion.state_dict, conversion.format_name
    meta = {'source_format': source_format, 'source': args.src}
    torch.save({'state_dict': state_dict, 'meta': meta}, args.dst)
    print(f'{args.dst}: {len(state_dict)} backbone tensors from a {source_format} checkpoint')
    if conversion.dropped_keys:
        print(f'dropped: {summarise_keys(conversion.dropped_keys)}')


if __name__ == '__main__':
    main()
