"""The error of a swap that cannot be done faithfully, and how failures are described."""
import os.path as osp
import traceback


class BackboneSwapError(ValueError):
    """The base config cannot take a ConvNeXt backbone faithfully, or the input is invalid."""


def describe_error(err):
    """``Type: message``; for a bare ``assert``, the failing source line and where it is."""
    if str(err):
        return f'{type(err).__name__}: {err}'
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return (f'{type(err).__name__} at {osp.basename(frame.filename)}:{frame.lineno}: '
            f'`{frame.line}`')
