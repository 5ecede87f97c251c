"""How ``tools/analysis/benchmark_backbone.py`` times a backbone on a device: its inference and
training step closures, median step seconds (CUDA events on CUDA, the host clock elsewhere),
and the device's GEMM rate, measured in the same run as the reference for FLOP rates; and the
device's name, as the benchmark tools print it."""
import statistics
import time

import torch


def make_steps(model, x, dtype=None):
    """(inference step, training step) closures of ``model`` on ``x``, under autocast ``dtype``
    (None: none) on ``x``'s device. The training step backpropagates the summed output means
    and drops the gradients. Neither sets the model's train / eval mode."""
    device = x.device.type

    def infer():
        with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            model(x)

    def train():
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = sum(out.float().mean() for out in model(x))
        loss.backward()
        for param in model.parameters():
            param.grad = None

    return infer, train


def median_seconds(step, warmup, repeats, device='cuda'):
    """Median seconds of ``step()`` over ``repeats`` timed calls after ``warmup``: CUDA events
    on CUDA, the host clock elsewhere."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            start, end = (torch.cuda.Event(enable_timing=True),
                          torch.cuda.Event(enable_timing=True))
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_tflops(dtype, size, warmup, repeats, device):
    """The device's ``torch.mm`` rate (TFLOP/s) on random size x size ``dtype`` matrices: the
    median of ``repeats`` products after ``warmup``."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    return 2 * size**3 / median_seconds(lambda: a @ b, warmup, repeats, device) / 1e12


def device_name(device):
    """The GPU's name on CUDA, else e.g. ``cpu (2 threads)``."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{device.type} ({torch.get_num_threads()} threads)'
