"""Time and memory of mmconvnext's ConvNeXt against timm and mmpretrain, as a dense backbone.

``--device cuda`` measures on one GPU instead: images/s, peak memory and the share of the GPU's
bf16 GEMM rate, eager and compiled, fp32 / bf16 / fp16 autocast (:mod:`mmconvnext.analysis.
cuda_benchmark`). What follows describes the CPU run (the default).

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

The whole model's training step, against mmdet's / mmseg's own configs:
``tools/analysis/benchmark_train.py``.

    python tools/analysis/benchmark_backbone.py [--arch tiny] [--shape 512 768] [--rounds 10]
        [--memory-shape 800 1216] [--memory-runs 1]
    python tools/analysis/benchmark_backbone.py --device cuda [--settings 64x224x224 2x800x1216]
        [--precisions fp32 bf16 fp16] [--compile-peers ...] [--compile-precisions ...] [--json F]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from mmconvnext.analysis import cuda_benchmark
from mmconvnext.analysis.backbone_peers import PEERS, build, convnext_forward_flops
from mmconvnext.analysis.step_timing import gemm_tflops, make_steps


def peak_step_memory(peer, arch, shape, runs, with_cp=False):
    """Peak extra RSS (MiB) of one training step: median over ``runs`` fresh child processes."""
    code = (
        'import json, torch\n'
        'from mmconvnext.analysis.backbone_peers import build\n'
        'from mmconvnext.analysis.step_timing import make_steps\n'
        'from mmconvnext.utils import peak_rss_bytes, reset_peak_rss, rss_bytes\n'
        f'model = build({peer!r}, {arch!r}, {with_cp!r})\n'  # in train mode
        f'x = torch.randn(1, 3, *{tuple(shape)!r})\n'
        '_, step = make_steps(model, x)\n'
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
        model = build(peer, arch)
        model.train(train)  # (mmpretrain's train() returns None, not the model)
        infer, train_step = make_steps(model, inp)
        steps[peer] = train_step if train else infer
    return time_interleaved(steps, rounds)


def ratio_summary(ours, peer):
    """Per-round ratios ours / peer -> 'median [min-max]'."""
    ratios = [a / b for a, b in zip(ours, peer)]
    return f'{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]'


def parse_setting(text):
    """'BxHxW' (e.g. 64x224x224) -> (batch, (H, W))."""
    try:
        batch, height, width = map(int, text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not BATCHxHxW, e.g. 64x224x224')
    if min(batch, height, width) < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: batch and sizes must be >= 1')
    return batch, (height, width)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='cpu: the comparison below; cuda: see --settings (one GPU)')
    parser.add_argument('--arch', default='tiny')
    parser.add_argument('--peers', nargs='+', choices=PEERS,
                        help='default: all on cpu; on cuda all but timm (NCHW), since every '
                        'model runs channels_last there')
    cpu = parser.add_argument_group('--device cpu')
    cpu.add_argument('--shape', type=int, nargs=2, default=(512, 768), metavar=('H', 'W'))
    cpu.add_argument('--memory-shape', type=int, nargs=2, default=(800, 1216), metavar=('H', 'W'))
    cpu.add_argument('--rounds', type=int, default=10)
    cpu.add_argument('--memory-runs', type=int, default=1)
    cuda = parser.add_argument_group('--device cuda')
    cuda.add_argument('--settings', type=parse_setting, nargs='+',
                      default=[(64, (224, 224)), (2, (800, 1216))], metavar='BxHxW',
                      help='batch x height x width of each setting (default 64x224x224 '
                      '2x800x1216)')
    cuda.add_argument('--precisions', nargs='+', default=list(cuda_benchmark.PRECISIONS),
                      choices=cuda_benchmark.PRECISIONS, help='eager cases (autocast dtypes)')
    cuda.add_argument('--compile-peers', nargs='*', default=['mmconvnext', 'timm-channels_last'],
                      choices=PEERS, help='peers also measured under torch.compile')
    cuda.add_argument('--compile-precisions', nargs='*', default=list(cuda_benchmark.PRECISIONS),
                      choices=cuda_benchmark.PRECISIONS)
    cuda.add_argument('--compile-settings', type=parse_setting, nargs='*', metavar='BxHxW',
                      help='settings of the compiled cases (default: all of --settings)')
    cuda.add_argument('--no-own-paths', action='store_true',
                      help='skip timing each convnext_ops op on its own path on CUDA')
    cuda.add_argument('--warmup', type=int, default=3)
    cuda.add_argument('--repeats', type=int, default=10)
    cuda.add_argument('--json', metavar='PATH', help='also write every figure to PATH as JSON')
    args = parser.parse_args()
    if args.peers is None:
        args.peers = [peer for peer in PEERS if args.device == 'cpu' or peer != 'timm']
    if 'mmconvnext' not in args.peers:
        parser.error('--peers must include mmconvnext (ratios are ours / peer)')
    if min(args.rounds, args.memory_runs, args.warmup, args.repeats) < 1:
        parser.error('--rounds, --memory-runs, --warmup and --repeats must be >= 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device cuda: torch {torch.__version__} sees no CUDA GPU '
                     f'(torch.version.cuda={torch.version.cuda})')
    return args


def run_cuda(args):
    """The --device cuda run: print the tables (and write --json)."""
    device = torch.cuda.get_device_name()
    gemm = cuda_benchmark.bf16_gemm_tflops()
    cases = cuda_benchmark.benchmark_cases(
        args.peers, args.settings, args.precisions, args.compile_peers, args.compile_precisions,
        args.settings if args.compile_settings is None else args.compile_settings)
    own_cases = [] if args.no_own_paths else cuda_benchmark.own_path_cases(args.settings)
    rows, decisions = [], []

    def write_json():  # after every case: a run stopped half-way keeps what it measured
        if args.json:
            with open(args.json, 'w') as file:
                json.dump(dict(device=device, torch=torch.__version__, arch=args.arch,
                               bf16_gemm_tflops=gemm, cases=rows, own_path_decisions=decisions),
                          file, indent=1)

    for case in cases + own_cases:
        rows.append(cuda_benchmark.run_case(case, args.arch, gemm, args.warmup, args.repeats))
        print(f'measured {case.name}, {case.batch}x{case.shape[0]}x{case.shape[1]}, '
              f'{case.precision}' + (f': {rows[-1]["error"]}' if 'error' in rows[-1] else ''),
              flush=True)
        write_json()
    decisions = cuda_benchmark.own_path_decisions(rows[len(cases):])
    write_json()
    print(cuda_benchmark.format_tables(device, gemm, rows, decisions))


def run_cpu(args):
    """The --device cpu run: interleaved times and child-process memory."""
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
    machine = gemm_tflops(torch.float32, 2048, warmup=1, repeats=5, device='cpu') * 1e3
    print(f'\nbackbone forward: {flops / 1e9:.1f} GFLOP (analytic, {100 * gemm_share:.0f}% in '
          f'1x1 GEMMs) -> {achieved:.1f} GFLOP/s; machine fp32 GEMM (2048^3 torch.mm): '
          f'{machine:.1f} GFLOP/s; achieved / GEMM = {achieved / machine:.2f}')


def main():
    args = parse_args()
    if args.device == 'cuda':
        run_cuda(args)
    else:
        run_cpu(args)


if __name__ == '__main__':
    main()
