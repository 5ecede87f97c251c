"""The input normalisation of the swapped model: the one ConvNeXt's ImageNet weights expect.

mmdet / mmseg load images BGR; the model's ``data_preprocessor`` normalises them. ConvNeXt was
trained on RGB images normalised with ImageNet's mean / std (0-255 scale), whatever the base used
(caffe-style bases: BGR mean, std 1, no channel flip).
"""
from .errors import BackboneSwapError
from .render import one_line
from .rewire import nested_dicts

#: data_preprocessor keys set by the swap: ImageNet RGB mean / std, images flipped BGR -> RGB
IMAGENET_NORMALISATION = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                              bgr_to_rgb=True)


def normalisation_overrides(cfg):
    """(``model.data_preprocessor`` overrides, change line) for the loaded base ``cfg``.

    The base's other keys (padding, batch augments, ...) are kept; a base ``rgb_to_bgr=True`` is
    set False (the flip is ``bgr_to_rgb``). Raises :class:`BackboneSwapError` for a base that
    normalises in a data pipeline (a ``Normalize`` transform: the images would be normalised
    twice) or has no ``model.data_preprocessor`` (no place to normalise).
    """
    for path, node in nested_dicts({key: cfg[key] for key in cfg if key != 'model'}, ()):
        kind = node.get('type')
        if getattr(kind, '__name__', str(kind)).split('.')[-1] == 'Normalize':
            where = ''.join(f'[{key}]' if isinstance(key, int) else f'.{key}' for key in path)
            raise BackboneSwapError(
                f'the base normalises images in its pipeline ({where[1:]}: '
                f'{one_line(dict(node))}); the swap sets the normalisation of the ConvNeXt '
                'weights in model.data_preprocessor, and both would apply: remove the Normalize '
                'transforms from the base (and set its data_preprocessor) first')
    base = cfg.model.get('data_preprocessor')
    if not base:
        raise BackboneSwapError('the base model has no data_preprocessor: the swap cannot set the '
                                'input normalisation of the ConvNeXt weights')
    overrides = dict(IMAGENET_NORMALISATION)
    if base.get('rgb_to_bgr'):
        overrides['rgb_to_bgr'] = False
    before = {key: base.get(key) for key in overrides}
    if before == overrides:
        return overrides, ('model.data_preprocessor: kept ' + one_line(before) +
                           ' (already the ImageNet RGB normalisation of the ConvNeXt weights)')
    return overrides, (f'model.data_preprocessor: {one_line(before)} -> {one_line(overrides)} '
                       '(the ImageNet RGB normalisation of the ConvNeXt weights; its other keys '
                       'are kept)')
