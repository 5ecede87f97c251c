"""Time and memory of mmconvnext's ConvNeXt against timm and mmpretrain, as a dense backbone.

Every model returns the four stage outputs, each through a channels-first LayerNorm (timm's
features get timm's own ``LayerNorm2d``), so all do the same work. Timings are interleaved in
one process (round-robin after one warm-up step each); ratios ours / peer are taken per round
and reported as median [min-max] over rounds. The peak memory of one training step is the peak
resident set size of a fresh child process during the step (peak reset just before it) minus
its size just before the step, median over ``--memory-runs`` children; ours with gradient
checkpointing (``with_cp``) is a separate row.
The children run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns every freed
tensor to the OS: the RSS then follows the live tensors, repeatable to < 1 MiB, instead of
varying by hundreds of MiB with what the heap happens to retain.

The machine's fp32 GEMM rate (square ``torch.mm``, median of 5) is measured in the same run;
the backbone's forward rate is its analytic FLOP count (2 per multiply-add of the convolutions
and 1x1 layers; norms, GELU and residuals not counted) over the median inference time.

``--mask-rcnn``: one training iteration (fwd + bwd, fp32, random weights, default heads) of
``configs/mask_rcnn_convnext_t.py`` against mmdet's own ConvNeXt-T Mask R-CNN config
(mmpretrain backbone) on the same synthetic image and boxes, interleaved the same way.

    python tools/analysis/benchmark_backbone.py [--arch tiny] [--shape 512 768] [--rounds 10]
        [--memory-shape 800 1216] [--memory-runs 1] [--mask-rcnn] [--det-shape 512 768]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

PEERS = ('mmconvnext', 'timm', 'timm-channels_last', 'mmpretrain')
#: detector name -> config; the mmdet one is the paper setting with mmpretrain's ConvNeXt.
DETECTORS = {
    'mmconvnext': 'configs/mask_rcnn_convnext_t.py',
    'mmpretrain': 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py',
}


class TimmDense(nn.Module):
    """timm ConvNeXt features (4 stages) + timm LayerNorm2d on each output."""

    def __init__(self, arch):
        super().__init__()
        import timm
        from timm.layers import LayerNorm2d
        self.features = timm.create_model(f'convnext_{arch}', pretrained=False, features_only=True)
        self.norms = nn.ModuleList(LayerNorm2d(c) for c in self.features.feature_info.channels())

    def forward(self, x):
        return tuple(norm(f) for norm, f in zip(self.norms, self.features(x)))


def build(peer, arch, with_cp=False):
    """The backbone ``peer`` of size ``arch`` in train mode, with its preferred memory layout."""
    if peer == 'mmconvnext':
        from mmconvnext.models import ConvNeXt
        return ConvNeXt(arch, with_cp=with_cp)
    if with_cp:
        raise ValueError(f'with_cp is only benchmarked for mmconvnext, not {peer!r}')
    if peer.startswith('timm'):
        model = TimmDense(arch)
        return model.to(memory_format=torch.channels_last) if 'channels_last' in peer else model
    if peer == 'mmpretrain':
        from mmpretrain.models import ConvNeXt
        return ConvNeXt(arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    raise ValueError(f'unknown peer {peer!r}; valid: {", ".join(PEERS)}')


def make_step(model, x, train):
    """A closure running one inference (no_grad) or training (fwd + bwd) step."""
    if train:
        model.train()

        def step():
            loss = sum(out.float().mean() for out in model(x))
            loss.backward()
            model.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    return step


def peak_step_memory(peer, arch, shape, runs, with_cp=False):
    """Peak extra RSS (MiB) of one training step: median over ``runs`` fresh child processes."""
    code = (
        'import json, sys, torch\n'
        'sys.path.insert(0, "tools/analysis")\n'
        'from benchmark_backbone import build, make_step\n'
        'from mmconvnext.utils import peak_rss_bytes, reset_peak_rss, rss_bytes\n'
        f'model = build({peer!r}, {arch!r}, {with_cp!r})\n'
        f'x = torch.randn(1, 3, *{tuple(shape)!r})\n'
        'step = make_step(model, x, train=True)\n'
        'before = rss_bytes()\n'
        'reset_peak_rss()\n'  # the peak of imports and model building is not the step's
        'step()\n'
        'print(json.dumps((peak_rss_bytes() - before) / 2**20))\n')
    peaks = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             check=True, env=dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536'))
        peaks.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return statistics.median(peaks)


def time_interleaved(steps, rounds):
    """Seconds per step of each named step closure, round-robin over ``rounds`` after one
    warm-up call each -> {name: [seconds per round]}."""
    for step in steps.values():
        step()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def backbone_times(peers, arch, shape, rounds, train):
    """Interleaved step times of each backbone peer on one random image of ``shape``."""
    x = torch.randn(1, 3, *shape)
    steps = {}
    for peer in peers:
        inp = x.contiguous(memory_format=torch.channels_last) if 'channels_last' in peer else x
        steps[peer] = make_step(build(peer, arch), inp, train)
    return time_interleaved(steps, rounds)


def ratio_summary(ours, peer):
    """Per-round ratios ours / peer -> 'median [min-max]'."""
    ratios = [a / b for a, b in zip(ours, peer)]
    return f'{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]'


def gemm_gflops(size=2048, repeats=5):
    """This machine's fp32 ``torch.mm`` rate (GFLOP/s) on size x size matrices, median."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def convnext_forward_flops(arch, shape, in_channels=3):
    """Analytic forward FLOPs of the ConvNeXt backbone on one (H, W) image, and the share of
    the 1x1 (GEMM) layers. 2 FLOPs per multiply-add; LayerNorm, GELU, residuals not counted."""
    from mmconvnext.models.backbones.arch_settings import parse_arch
    depths, channels = parse_arch(arch)
    pixels = (shape[0] // 4) * (shape[1] // 4)
    total = 2 * pixels * channels[0] * in_channels * 4 * 4  # stem 4x4 conv, stride 4
    gemm = 0
    for stage, (depth, dim) in enumerate(zip(depths, channels)):
        if stage:
            pixels = (shape[0] // 2**(stage + 2)) * (shape[1] // 2**(stage + 2))
            total += 2 * pixels * dim * channels[stage - 1] * 2 * 2  # 2x2 conv, stride 2
        gemm += depth * 2 * 2 * pixels * dim * 4 * dim  # pwconv1 + pwconv2
        total += depth * 2 * pixels * dim * 7 * 7  # depthwise 7x7
    total += gemm
    return total, gemm / total


def build_detector(name):
    """Mask R-CNN of ``DETECTORS[name]`` with random weights (pretrained init not applied)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.utils import import_modules_from_strings
    register_all_modules()
    config = DETECTORS[name]
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    import_modules_from_strings(**cfg.get('custom_imports', {}))
    return MODELS.build(cfg.model)


def detection_batch(shape, num_objects=4, seed=0):
    """One synthetic uint8 image of ``shape`` with random boxes, labels and box-shaped masks,
    as a data preprocessor input."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    h, w = shape
    image = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    corners = rng.uniform(0, 0.6, (num_objects, 2)) * (w, h)
    sizes = rng.uniform(0.1, 0.4, (num_objects, 2)) * (w, h)
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    masks = np.zeros((num_objects, h, w), dtype=np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        mask[y1:y2, x1:x2] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(
        bboxes=torch.from_numpy(boxes), labels=torch.from_numpy(rng.integers(0, 80, num_objects)),
        masks=BitmapMasks(masks, h, w))
    return dict(inputs=[image], data_samples=[sample])


def detector_step(model, batch):
    """A closure running one training iteration (fwd + bwd of all losses) of a detector."""
    model.train()
    data = model.data_preprocessor(batch, training=True)

    def step():
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
        model.zero_grad(set_to_none=True)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 768), metavar=('H', 'W'))
    parser.add_argument('--memory-shape', type=int, nargs=2, default=(800, 1216),
                        metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--memory-runs', type=int, default=1)
    parser.add_argument('--peers', nargs='+', default=list(PEERS), choices=PEERS)
    parser.add_argument('--mask-rcnn', action='store_true',
                        help='also time one Mask R-CNN training iteration against mmdet\'s')
    parser.add_argument('--det-shape', type=int, nargs=2, default=(512, 768), metavar=('H', 'W'))
    parser.add_argument('--det-rounds', type=int, default=3)
    args = parser.parse_args()
    if 'mmconvnext' not in args.peers:
        parser.error('--peers must include mmconvnext (ratios are ours / peer)')
    if min(args.rounds, args.memory_runs, args.det_rounds) < 1:
        parser.error('--rounds, --memory-runs and --det-rounds must be >= 1')

    ours = 'mmconvnext'
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, ConvNeXt-{args.arch}, '
          f'fp32, input 1x3x{args.shape[0]}x{args.shape[1]}, {args.rounds} rounds')
    infer = backbone_times(args.peers, args.arch, args.shape, args.rounds, train=False)
    train = backbone_times(args.peers, args.arch, args.shape, args.rounds, train=True)
    memory = {peer: peak_step_memory(peer, args.arch, args.memory_shape, args.memory_runs)
              for peer in args.peers}
    memory_cp = peak_step_memory(ours, args.arch, args.memory_shape, args.memory_runs,
                                 with_cp=True)
    mem_head = f'train peak MiB @{args.memory_shape[0]}x{args.memory_shape[1]}'
    print(f'| backbone | inference s | train step s | {mem_head} | '
          'ratio infer | ratio train | ratio memory |')
    print('|---|---|---|---|---|---|---|')
    for peer in args.peers:
        print(f'| {peer} | {statistics.median(infer[peer]):.3f} | '
              f'{statistics.median(train[peer]):.3f} | {memory[peer]:.0f} | '
              f'{ratio_summary(infer[ours], infer[peer])} | '
              f'{ratio_summary(train[ours], train[peer])} | {memory[ours] / memory[peer]:.2f} |')
    print(f'| {ours} with_cp | | | {memory_cp:.0f} | | | {memory_cp / memory[ours]:.2f} '
          '(vs without) |')

    flops, gemm_share = convnext_forward_flops(args.arch, args.shape)
    achieved = flops / statistics.median(infer[ours]) / 1e9
    machine = gemm_gflops()
    print(f'\nbackbone forward: {flops / 1e9:.1f} GFLOP (analytic, {100 * gemm_share:.0f}% in '
          f'1x1 GEMMs) -> {achieved:.1f} GFLOP/s; machine fp32 GEMM (2048^3 torch.mm): '
          f'{machine:.1f} GFLOP/s; achieved / GEMM = {achieved / machine:.2f}')

    if args.mask_rcnn:
        batch = detection_batch(args.det_shape)
        steps = {name: detector_step(build_detector(name), batch) for name in DETECTORS}
        det = time_interleaved(steps, args.det_rounds)
        print(f'\nMask R-CNN training iteration, 1x3x{args.det_shape[0]}x{args.det_shape[1]}, '
              f'fp32, {args.det_rounds} rounds: ' + ', '.join(
                  f'{name} {statistics.median(t):.2f} s' for name, t in det.items())
              + f'; ratio mmconvnext / mmpretrain {ratio_summary(*det.values())}')


if __name__ == '__main__':
    main()
