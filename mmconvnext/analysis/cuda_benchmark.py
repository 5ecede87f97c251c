"""ConvNeXt backbones on one CUDA GPU (``tools/analysis/benchmark_backbone.py --device cuda``).

Each case is a peer (:mod:`.backbone_peers`), a batch of (H, W) images, a precision (fp32, or
bf16 / fp16 autocast), eager or ``torch.compile``; models and inputs are channels_last. It
reports inference and training (forward + backward of the summed outputs) images/s, the peak
memory a training step allocates beyond the model and its input (``max_memory_allocated``),
and the analytic FLOP rates (inference: the forward's FLOPs; training: 3x those) as fractions
of the GPU's bf16 GEMM rate, measured in the same run (8192^3 ``torch.mm``, median of 10).
Times are CUDA-event medians of ``repeats`` steps after ``warmup`` steps (compilation happens
in the warm-up, and is timed separately).

:func:`own_path_cases` times our backbone's fp32 training with each op of
:mod:`~mmconvnext.models.backbones.convnext_ops` on its own path against the plain modules:
the measurement that decides ``OWN_PATH_DEVICES`` for CUDA.
"""
import contextlib
import time
from dataclasses import dataclass

import torch

from mmconvnext.models.backbones import convnext_ops
from .backbone_peers import build, convnext_forward_flops
from .step_timing import gemm_tflops, make_steps, median_seconds

#: precision name -> autocast dtype (None: fp32, TF32 as the framework defaults).
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass(frozen=True)
class Case:
    """One measured configuration."""
    peer: str
    batch: int
    shape: tuple  # (H, W)
    precision: str = 'bf16'
    compiled: bool = False
    own_ops: tuple = None  # None: convnext_ops' table; else exactly these ops on their own path

    @property
    def name(self):
        extras = ['compiled'] if self.compiled else []
        if self.own_ops is not None:
            extras += [f'own {op}' for op in self.own_ops] or ['plain ops']
        return self.peer + (f' ({", ".join(extras)})' if extras else '')


def bf16_gemm_tflops(size=8192, repeats=10, device='cuda'):
    """The device's bf16 ``torch.mm`` rate (TFLOP/s) on random size x size matrices, median."""
    return gemm_tflops(torch.bfloat16, size, warmup=3, repeats=repeats, device=device)


def peak_step_mib(step, device='cuda'):
    """MiB a step allocates at its peak beyond what was allocated before it (CUDA only: None
    elsewhere)."""
    if device != 'cuda':
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def run_case(case, arch, gemm_tflops, warmup=3, repeats=10, device='cuda'):
    """Measure one :class:`Case` on ``device`` ('cuda'; 'cpu' runs the same code in tests)
    -> dict of its figures (or of its error)."""
    row = dict(case=case.name, peer=case.peer, batch=case.batch, shape=list(case.shape),
               precision=case.precision, compiled=case.compiled, own_ops=case.own_ops)
    paths = (contextlib.nullcontext() if case.own_ops is None else
             convnext_ops.own_paths(device, case.own_ops))
    try:
        with paths:
            model = build(case.peer, arch).to(device, memory_format=torch.channels_last)
            x = torch.randn(case.batch, 3, *case.shape, device=device).contiguous(
                memory_format=torch.channels_last)
            start = time.perf_counter()
            if case.compiled:
                model = torch.compile(model)
            infer, train = make_steps(model, x, PRECISIONS[case.precision])
            model.eval()
            infer_s = median_seconds(infer, warmup, repeats, device)
            model.train()
            train()  # compiles the training graph when compiled
            row['compile_s'] = round(time.perf_counter() - start, 1) if case.compiled else None
            train_s = median_seconds(train, warmup, repeats, device)
            peak = peak_step_mib(train, device)
    except Exception as error:  # noqa: BLE001  (a failing case is a result: report it)
        row['error'] = f'{type(error).__name__}: {str(error).splitlines()[0][:200]}'
        return row
    finally:
        if device == 'cuda':
            torch.cuda.empty_cache()
    flops = convnext_forward_flops(arch, case.shape)[0] * case.batch
    row.update(infer_images_per_s=case.batch / infer_s, train_images_per_s=case.batch / train_s,
               train_peak_mib=peak, infer_tflops=flops / infer_s / 1e12,
               infer_fraction_of_bf16_gemm=flops / infer_s / 1e12 / gemm_tflops,
               train_fraction_of_bf16_gemm=3 * flops / train_s / 1e12 / gemm_tflops)
    return row


def benchmark_cases(peers, settings, precisions, compile_peers, compile_precisions,
                    compile_settings=None):
    """The cases of a run: every peer x setting (batch, (H, W)) x precision eager; the
    ``compile_peers`` compiled at ``compile_precisions`` and ``compile_settings`` (default
    ``settings``)."""
    cases = [Case(peer, batch, tuple(shape), precision)
             for batch, shape in settings for precision in precisions for peer in peers]
    cases += [Case(peer, batch, tuple(shape), precision, compiled=True)
              for batch, shape in (settings if compile_settings is None else compile_settings)
              for precision in compile_precisions for peer in compile_peers]
    return cases


def own_path_cases(settings):
    """Our fp32 eager training with the plain modules, then with each op on its own path."""
    return [Case('mmconvnext', batch, tuple(shape), 'fp32', own_ops=own_ops)
            for batch, shape in settings
            for own_ops in [()] + [(op, ) for op in convnext_ops.OWN_PATH_DEVICES]]


def own_path_decisions(rows):
    """Per op and setting: training images/s own vs plain, and whether the own path may be used
    on CUDA (faster by more than 2%, the spread of repeated timings being about that)."""
    plain = {(row['batch'], tuple(row['shape'])): row for row in rows if row['own_ops'] == ()}
    decisions = []
    for row in rows:
        if not row['own_ops'] or 'error' in row:
            continue
        base = plain[row['batch'], tuple(row['shape'])]
        if 'error' in base:
            continue
        ratio = row['train_images_per_s'] / base['train_images_per_s']
        decisions.append(dict(op=row['own_ops'][0], batch=row['batch'], shape=row['shape'],
                              plain=base['train_images_per_s'], own=row['train_images_per_s'],
                              own_over_plain=ratio, use_on_cuda=ratio > 1.02))
    return decisions


def format_tables(device, gemm, rows, decisions):
    """Markdown of a run: the cases table, then the own-path decisions."""
    lines = [f'{device}, torch {torch.__version__}, bf16 GEMM (8192^3 torch.mm) {gemm:.0f} '
             'TFLOP/s; ConvNeXt inputs channels_last', '',
             '| case | batch x H x W | precision | infer img/s | train img/s | train peak MiB '
             '| infer TFLOP/s | infer / bf16 GEMM | train / bf16 GEMM | compile s |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        size = f'{row["batch"]} x {row["shape"][0]} x {row["shape"][1]}'
        if 'error' in row:
            lines.append(f'| {row["case"]} | {size} | {row["precision"]} | failed: '
                         f'{row["error"]} | | | | | | |')
            continue
        compile_s = '' if row.get('compile_s') is None else f'{row["compile_s"]:.0f}'
        peak = '-' if row['train_peak_mib'] is None else f'{row["train_peak_mib"]:.0f}'
        lines.append(f'| {row["case"]} | {size} | {row["precision"]} | '
                     f'{row["infer_images_per_s"]:.0f} | {row["train_images_per_s"]:.0f} | '
                     f'{peak} | {row["infer_tflops"]:.1f} | '
                     f'{row["infer_fraction_of_bf16_gemm"]:.3f} | '
                     f'{row["train_fraction_of_bf16_gemm"]:.3f} | {compile_s} |')
    if decisions:
        lines += ['', '| op (own path, fp32 training) | batch x H x W | plain img/s | own img/s '
                  '| own / plain | use on CUDA |', '|---|---|---|---|---|---|']
        for item in decisions:
            use = 'yes' if item['use_on_cuda'] else 'no'
            lines.append(f'| {item["op"]} | {item["batch"]} x {item["shape"][0]} x '
                         f'{item["shape"][1]} | {item["plain"]:.0f} | {item["own"]:.0f} | '
                         f'{item["own_over_plain"]:.3f} | {use} |')
        faster = sorted({item['op'] for item in decisions} - {
            item['op'] for item in decisions if not item['use_on_cuda']})
        lines.append('\nOWN_PATH_DEVICES may list cuda for: '
                     + (', '.join(faster) if faster else 'no op (plain modules faster or equal)')
                     + ' (faster in every setting)')
    return '\n'.join(lines)
