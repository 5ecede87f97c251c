"""Time and memory of mmconvnext's ConvNeXt against timm and mmpretrain, as a dense backbone.

Every model returns the four stage outputs, each through a channels-first LayerNorm (timm's
features get timm's own ``LayerNorm2d``), so all do the same work. Timings are interleaved in
one process (round-robin, median over rounds); the peak memory of one training step is the
peak resident set size of a fresh child process minus its size just before the step.

    python tools/analysis/benchmark_backbone.py [--arch tiny] [--shape 512 768] [--rounds 10]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

PEERS = ('mmconvnext', 'timm', 'timm-channels_last', 'mmpretrain')


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


def build(peer, arch):
    """The backbone ``peer`` of size ``arch`` in train mode, with its preferred memory layout."""
    if peer == 'mmconvnext':
        from mmconvnext.models import ConvNeXt
        return ConvNeXt(arch)
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


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_step_memory(peer, arch, shape):
    """Peak extra RSS (MiB) of one training step, measured in a fresh child process."""
    code = (
        'import json, resource, sys, torch\n'
        'sys.path.insert(0, "tools/analysis")\n'
        'from benchmark_backbone import build, make_step, rss_bytes\n'
        f'model = build({peer!r}, {arch!r}); x = torch.randn(1, 3, *{tuple(shape)!r})\n'
        'step = make_step(model, x, train=True)\n'
        'before = rss_bytes()\n'
        'step()\n'
        'peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n'
        'print(json.dumps((peak - before) / 2**20))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_interleaved(peers, arch, shape, rounds, train):
    """Median seconds per step of each peer, round-robin over ``rounds`` after one warm-up."""
    x = torch.randn(1, 3, *shape)
    steps = {}
    for peer in peers:
        model = build(peer, arch)
        inp = x.contiguous(memory_format=torch.channels_last) if 'channels_last' in peer else x
        steps[peer] = make_step(model, inp, train)
        steps[peer]()  # warm-up
    times = {peer: [] for peer in peers}
    for _ in range(rounds):
        for peer, step in steps.items():
            start = time.perf_counter()
            step()
            times[peer].append(time.perf_counter() - start)
    return {peer: statistics.median(t) for peer, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 768), metavar=('H', 'W'))
    parser.add_argument('--memory-shape', type=int, nargs=2, default=(800, 1216),
                        metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--peers', nargs='+', default=list(PEERS), choices=PEERS)
    args = parser.parse_args()
    if 'mmconvnext' not in args.peers:
        parser.error('--peers must include mmconvnext (ratios are ours / peer)')

    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, ConvNeXt-{args.arch}, '
          f'fp32, input 1x3x{args.shape[0]}x{args.shape[1]}, {args.rounds} rounds')
    infer = time_interleaved(args.peers, args.arch, args.shape, args.rounds, train=False)
    train = time_interleaved(args.peers, args.arch, args.shape, args.rounds, train=True)
    memory = {peer: peak_step_memory(peer, args.arch, args.memory_shape) for peer in args.peers}
    mem_head = f'train peak MiB @{args.memory_shape[0]}x{args.memory_shape[1]}'
    print(f'| backbone | inference s | train step s | {mem_head} | '
          'ratio infer | ratio train | ratio memory |')
    print('|---|---|---|---|---|---|---|')
    ours = 'mmconvnext'
    for peer in args.peers:
        print(f'| {peer} | {infer[peer]:.3f} | {train[peer]:.3f} | {memory[peer]:.0f} | '
              f'{infer[ours] / infer[peer]:.2f} | {train[ours] / train[peer]:.2f} | '
              f'{memory[ours] / memory[peer]:.2f} |')


if __name__ == '__main__':
    main()
