"""Draw a detection or segmentation model's predictions on images, one PNG per image.

    python tools/inference.py IMAGE_OR_FOLDER CONFIG CHECKPOINT --out-dir DIR [--score-thr 0.3]
        [--device cuda|cpu] [--cfg-options KEY=VALUE ...]

The config's ``default_scope`` picks the task: ``mmdet`` (``init_detector`` /
``inference_detector``, boxes and masks drawn by ``DetLocalVisualizer``) or ``mmseg``
(``init_model`` / ``inference_model``, the class map overlaid by ``SegLocalVisualizer``). A folder
means every image directly in it (suffixes ``IMAGE_SUFFIXES``, sorted by name); each image is
drawn to ``DIR/<image stem>.png``. The checkpoint must fit the model exactly.
"""
import argparse
import os
import os.path as osp
import sys
from importlib import import_module
from pathlib import Path

import mmcv
import torch
from mmengine.config import DictAction

from mmconvnext.apis import config_scope, init_inference_model
from mmconvnext.engine.runner_setup import SetupError, read_config

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: default_scope -> the package's function predicting one image, in ``<scope>.apis``.
PREDICTORS = dict(mmdet='inference_detector', mmseg='inference_model')
#: default_scope -> the package's visualizer, in ``<scope>.visualization``.
VISUALIZERS = dict(mmdet='DetLocalVisualizer', mmseg='SegLocalVisualizer')
#: Drawn boxes / masks of a detector: only those scoring at least this.
DEFAULT_SCORE_THR = 0.3


class InferenceError(Exception):
    """A bad image, folder, config, checkpoint or option (images: checked as they are read)."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('images', metavar='IMAGE_OR_FOLDER', help='an image, or a folder of them')
    parser.add_argument('config', help='config file (mmdet or mmseg default_scope)')
    parser.add_argument('checkpoint', help='checkpoint file of that config')
    parser.add_argument('--out-dir', required=True, help='folder the PNGs are written to')
    parser.add_argument('--score-thr', type=float,
                        help=f'detection: lowest drawn score (default {DEFAULT_SCORE_THR})')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    return parser.parse_args(argv)


def image_paths(images):
    """The image file ``images``, or the image files directly in the folder ``images``, sorted."""
    path = Path(images)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InferenceError(f'image or folder {images} does not exist')
    paths = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InferenceError(f'folder {images} holds no image ({", ".join(IMAGE_SUFFIXES)})')
    stems = [p.stem for p in paths]
    clashes = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashes:
        raise InferenceError(f'folder {images}: several images named {clashes[0]}.* would be '
                             'drawn to the same PNG')
    return paths


def load_config(args):
    """The config with ``--cfg-options`` applied; checks its scope and the task's options."""
    cfg = read_config(args.config, args.cfg_options)
    try:
        scope = config_scope(cfg)
    except ValueError as error:
        raise InferenceError(f'{args.config}: {error}') from None
    if scope != 'mmdet' and args.score_thr is not None:
        raise InferenceError(f'--score-thr applies to detection (mmdet) configs, {args.config} '
                             f'is {scope}')
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise InferenceError(f'--device {args.device}: CUDA is not available')
    return cfg


def read_image(path):
    """The image at ``path`` (BGR uint8 array), or :class:`InferenceError`."""
    try:
        image = mmcv.imread(str(path))
    except Exception as error:  # mmcv raises various types for files it cannot decode
        raise InferenceError(f'cannot read image {path}: {error}') from None
    if image is None:
        raise InferenceError(f'cannot read image {path}: not a decodable image')
    return image


def run(args):
    """Draw every image of ``args.images``; raises :class:`InferenceError` for bad input."""
    paths = image_paths(args.images)
    cfg = load_config(args)
    scope = cfg.default_scope
    try:
        model = init_inference_model(cfg, args.checkpoint, args.device)
    except (FileNotFoundError, ValueError) as error:
        raise InferenceError(error) from None
    predict = getattr(import_module(f'{scope}.apis'), PREDICTORS[scope])
    draw_options = {}
    if scope == 'mmdet':
        draw_options['pred_score_thr'] = (DEFAULT_SCORE_THR if args.score_thr is None
                                          else args.score_thr)
    visualizer = getattr(import_module(f'{scope}.visualization'), VISUALIZERS[scope])(
        name='mmconvnext_inference')
    visualizer.dataset_meta = model.dataset_meta
    for path in paths:
        image = read_image(path)
        result = predict(model, image)
        os.makedirs(args.out_dir, exist_ok=True)
        out_file = osp.join(args.out_dir, f'{path.stem}.png')
        visualizer.add_datasample(path.stem, mmcv.bgr2rgb(image), result, draw_gt=False,
                                  out_file=out_file, **draw_options)
        print(f'{path} -> {out_file}')


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (InferenceError, SetupError) as error:
        sys.exit(f'tools/inference.py: error: {error}')


if __name__ == '__main__':
    main()
