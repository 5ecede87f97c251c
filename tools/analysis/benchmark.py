"""Inference speed (images/s) and peak memory of a config's whole model on this machine's device.

    python tools/analysis/benchmark.py CONFIG [CHECKPOINT] [--shape H W] [--batch-size 1]
        [--warmup 3] [--iters 10] [--device cuda|cpu] [--amp] [--cfg-options KEY=VALUE ...]

Input, so that no dataset is needed: ``--batch-size`` copies of one synthetic image (uniform
random pixels, H x W) through the config's test pipeline (image from memory, no annotations),
then the model's ``test_step``: data preprocessor, backbone, neck, heads and post-processing
(NMS and mask pasting, or sliding-window segmentation). Default H x W: the FLOPs input of
``mmconvnext.analysis.default_input_size`` (800x1280 for the COCO detectors, 512x2048 / 640x2560
for the ADE20K UperNets), which those test pipelines keep as is; other sizes are resized by the
pipeline like any image. Without CHECKPOINT the weights are random.

Timed: ``--iters`` batches after ``--warmup`` batches (CUDA synchronised). Peak memory, over
the timed batches: CUDA ``torch.cuda.max_memory_allocated`` (weights included); CPU the bytes
of the weights and buffers plus the rise of the resident set size over the timed batches (its
peak minus its size at their start: activations and allocator caches). The resident size
before the model was built is no baseline: memory the allocator returns to the OS meanwhile
would make the difference meaningless, even negative. ``--amp`` (CUDA only): ``torch.autocast``
in float16.
"""
import argparse
import copy
import itertools
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate

from mmconvnext.analysis import default_input_size
from mmconvnext.analysis.step_timing import device_name
from mmconvnext.apis import init_inference_model
from mmconvnext.engine.runner_setup import read_config
from mmconvnext.utils import peak_rss_bytes, reset_peak_rss, rss_bytes

MIB = 2**20


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file (mmdet or mmseg default_scope)')
    parser.add_argument('checkpoint', nargs='?', help='weights to load (default: random)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='synthetic image height and width (default: see above)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per batch')
    parser.add_argument('--warmup', type=int, default=3, help='untimed batches first')
    parser.add_argument('--iters', type=int, default=10, help='timed batches')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--amp', action='store_true', help='float16 autocast (CUDA only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    for name, lowest in (('batch_size', 1), ('warmup', 0), ('iters', 1)):
        if getattr(args, name) < lowest:
            parser.error(f'--{name.replace("_", "-")} {getattr(args, name)}: must be >= {lowest}')
    if args.shape and min(args.shape) <= 0:
        parser.error(f'--shape {args.shape[0]} {args.shape[1]}: sides must be positive')
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config} does not exist')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist')
    cuda = torch.device(args.device).type == 'cuda'
    if cuda and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available')
    if args.amp and not cuda:
        parser.error("--amp needs a CUDA device (mmcv's CPU NMS has no bfloat16 kernel)")
    return args


def synthetic_batch(cfg, shape, batch_size):
    """``batch_size`` copies of a random ``shape`` (H, W) BGR image through the test pipeline.

    The pipeline's first step (``LoadImageFromFile``) reads the image from memory instead, its
    ``LoadAnnotations`` steps are left out. Returns the collated batch for ``model.test_step``.
    """
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    if pipeline[0].type.split('.')[-1] != 'LoadImageFromFile':
        raise ValueError(f'the test pipeline starts with {pipeline[0].type}, not '
                         'LoadImageFromFile')
    pipeline[0].type = 'LoadImageFromNDArray'  # both mmdet and mmseg register it
    pipeline = [step for step in pipeline if not step.type.endswith('LoadAnnotations')]
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    sample = Compose(pipeline)(dict(img=image, img_id=0))
    return pseudo_collate([copy.deepcopy(sample) for _ in range(batch_size)])


def time_batches(model, batch, warmup, iters, amp):
    """(seconds for ``iters`` batches after ``warmup`` batches, peak memory in bytes: CUDA
    ``max_memory_allocated``; CPU the rise of the resident set size over the timed batches)."""
    device = next(model.parameters()).device
    cuda = device.type == 'cuda'

    def run(count):
        for _ in range(count):
            with torch.no_grad(), torch.autocast(device.type, torch.float16, enabled=amp):
                model.test_step(batch)
        if cuda:
            torch.cuda.synchronize(device)

    run(warmup)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()
        rss_at_start = rss_bytes()
    start = time.perf_counter()
    run(iters)
    seconds = time.perf_counter() - start
    return seconds, (torch.cuda.max_memory_allocated(device) if cuda else
                     peak_rss_bytes() - rss_at_start)


def main(argv=None):
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)  # checked to exist by parse_args
    error_prefix = f'tools/analysis/benchmark.py: error: {args.config}:'
    try:
        width, height = args.shape[::-1] if args.shape else default_input_size(cfg)
    except ValueError as error:
        sys.exit(f'{error_prefix} {error}; give --shape H W')
    try:
        model = init_inference_model(cfg, args.checkpoint, args.device)
        batch = synthetic_batch(model.cfg, (height, width), args.batch_size)
    except ValueError as error:
        sys.exit(f'{error_prefix} {error}')
    seconds, peak = time_batches(model, batch, args.warmup, args.iters, args.amp)
    if torch.device(args.device).type == 'cuda':
        memory = 'torch.cuda.max_memory_allocated'
    else:
        weights = sum(t.numel() * t.element_size()
                      for t in itertools.chain(model.parameters(), model.buffers()))
        memory, peak = 'weights + rise of the RSS over the timed batches', peak + weights
    print('| device | torch | config | input HxW | batch | AMP | images/s | peak memory (MiB) |')
    print('|---|---|---|---|---|---|---|---|')
    print(f'| {device_name(args.device)} | {torch.__version__} | '
          f'{osp.splitext(osp.basename(args.config))[0]} | {height}x{width} | {args.batch_size} | '
          f'{"yes" if args.amp else "no"} | {args.batch_size * args.iters / seconds:.2f} | '
          f'{peak / MIB:.0f} |')
    print(f'{args.iters} timed batches after {args.warmup} warm-up; memory: {memory}')


if __name__ == '__main__':
    main()
