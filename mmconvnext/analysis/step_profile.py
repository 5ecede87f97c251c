"""Where the time of one training iteration goes (``tools/analysis/benchmark_train.py
--profile``): per part of the model, device and host time, the device's busy time against the
wall time, and the count of device kernels and host-device synchronisations.

The iteration runs under ``torch.profiler`` with a named range around each part's entry point
(:data:`PARTS`; the innermost range wins). Forward ops belong to the range they run in. A
backward op (``autograd::engine::evaluate_function: ...``) belongs to the part whose forward op
recorded the same autograd sequence number, so the backbone's backward is the backbone's; what
autograd runs without a forward counterpart is ``backward (other)``. Each op's *self* times
count once: host time ``self_cpu_time_total``, device time the kernels it launched
(``self_device_time_total``). Host-device synchronisations: the CUDA runtime's blocking calls
(:data:`SYNC_CALLS`), e.g. one per ``.item()``.
"""
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from .training_step import training_iteration

#: (part, attribute path from the model or ``optim_wrapper``, method): the ranges, outer first.
PARTS = (
    ('data preprocessor', 'model.data_preprocessor', 'forward'),
    ('backbone', 'model.backbone', 'forward'),
    ('neck', 'model.neck', 'forward'),
    ('heads', 'model.rpn_head', 'loss_and_predict'),
    ('heads', 'model.roi_head', 'loss'),
    ('heads', 'model.bbox_head', 'loss'),
    ('heads', 'model.decode_head', 'loss'),
    ('heads', 'model.auxiliary_head', 'loss'),
    ('losses', 'model', 'parse_losses'),
    ('backward (other)', 'optim_wrapper', 'backward'),
    ('optimizer step', 'optim_wrapper', 'step'),
    ('optimizer step', 'optim_wrapper', 'zero_grad'),
)
#: Methods of any head submodule that compute targets and loss terms: part ``losses``.
LOSS_METHODS = ('loss_by_feat', 'loss_and_target')
#: CUDA runtime calls that block the host until the device catches up.
SYNC_CALLS = ('cudaDeviceSynchronize', 'cudaStreamSynchronize', 'cudaEventSynchronize',
              'cudaMemcpy', 'cudaMemcpy2D')
RANGE_PREFIX = 'mmconvnext.part: '
BACKWARD_OP = 'autograd::engine::evaluate_function: '


def _resolve(training, path):
    root, *names = path.split('.')
    obj = training.model if root == 'model' else training.optim_wrapper
    for name in names:
        obj = getattr(obj, name, None)
    return obj


def _targets(training):
    """(part, object, method name) of every range to install."""
    targets = []
    for part, path, method in PARTS:
        obj = _resolve(training, path)
        if obj is None:
            continue
        modules = obj if isinstance(obj, torch.nn.ModuleList) else [obj]
        targets.extend((part, module, method) for module in modules if hasattr(module, method))
    for name in ('rpn_head', 'roi_head', 'bbox_head', 'decode_head', 'auxiliary_head'):
        head = getattr(training.model, name, None)
        if isinstance(head, torch.nn.Module):
            targets.extend(('losses', module, method) for module in head.modules()
                           for method in LOSS_METHODS if hasattr(module, method))
    return targets


@contextmanager
def part_ranges(training):
    """Wrap each part's entry point in a profiler range ``RANGE_PREFIX + part`` while inside."""
    with ExitStack() as stack:
        for part, obj, method in _targets(training):
            original = getattr(obj, method)

            def wrapped(*args, _original=original, _name=RANGE_PREFIX + part, **kwargs):
                with record_function(_name):
                    return _original(*args, **kwargs)

            setattr(obj, method, wrapped)
            stack.callback(_restore, obj, method, original)
        yield


def _restore(obj, method, original):
    if getattr(type(obj), method, None) is getattr(original, '__func__', None):
        delattr(obj, method)  # the method was the class's: drop the instance attribute
    else:
        setattr(obj, method, original)


def profile_iteration(training, batch, device):
    """Profile one training iteration; returns :func:`summarise`'s dict."""
    cuda = torch.device(device).type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with part_ranges(training), profile(activities=activities) as prof:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        training_iteration(training, batch)
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    return summarise(prof.events(), wall, cuda)


def _part_of(event, sequence_parts):
    """The part an event belongs to, from its innermost enclosing range or backward op."""
    node = event
    while node is not None:
        if node.name.startswith(RANGE_PREFIX):
            return node.name[len(RANGE_PREFIX):]
        if node.name.startswith(BACKWARD_OP):
            return sequence_parts.get(node.sequence_nr, 'backward (other)')
        node = node.cpu_parent
    return 'other'


def summarise(events, wall_seconds, cuda):
    """The profile of one iteration from ``torch.profiler`` events.

    Returns a dict: ``wall_s``; ``parts``: {part: {'host_s', 'device_s'}} in :data:`PARTS`
    order (then ``backward (other)``, ``other``); ``device_busy_s`` (the union of the device
    activities' intervals; None without CUDA); ``kernels`` (device kernels launched),
    ``syncs`` (host-device synchronisations; both None without CUDA).
    """
    host_events = [e for e in events if e.device_type == DeviceType.CPU]
    sequence_parts = {}
    for event in sorted(host_events, key=lambda e: e.time_range.start):
        if event.sequence_nr >= 0 and not event.name.startswith(BACKWARD_OP):
            part = _part_of(event, {})
            if part not in ('other', 'backward (other)'):
                sequence_parts.setdefault(event.sequence_nr, part)
    times = defaultdict(lambda: dict(host_s=0., device_s=0.))
    for event in host_events:
        if event.name.startswith(RANGE_PREFIX) or event.is_async:
            continue
        part = _part_of(event, sequence_parts)
        times[part]['host_s'] += event.self_cpu_time_total / 1e6
        if cuda:
            times[part]['device_s'] += event.self_device_time_total / 1e6
    order = list(dict.fromkeys(part for part, _, _ in PARTS)) + ['backward (other)', 'other']
    summary = dict(wall_s=wall_seconds,
                   parts={part: times[part] for part in order if part in times},
                   device_busy_s=None, kernels=None, syncs=None)
    if cuda:
        device_events = [e for e in events if e.device_type == DeviceType.CUDA]
        summary['device_busy_s'] = _union_seconds(
            (e.time_range.start, e.time_range.end) for e in device_events)
        summary['kernels'] = sum(1 for e in device_events
                                 if not e.name.startswith(('Memcpy', 'Memset')))
        summary['syncs'] = sum(1 for e in host_events if e.name in SYNC_CALLS)
    return summary


def _union_seconds(intervals_us):
    """Total length in seconds of the union of (start, end) microsecond intervals."""
    total, reach = 0., float('-inf')
    for start, end in sorted(intervals_us):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total / 1e6


def format_profile(name, summary):
    """A markdown table of one config's profile."""
    wall = summary['wall_s']
    lines = [f'profile of {name}: one iteration, {wall:.3f} s wall', '',
             '| part | host s | device s | share of wall |', '|---|---|---|---|']
    cuda = summary['device_busy_s'] is not None
    for part, t in summary['parts'].items():
        device = f'{t["device_s"]:.4f}' if cuda else '-'
        share = (t['device_s'] if cuda else t['host_s']) / wall
        lines.append(f'| {part} | {t["host_s"]:.4f} | {device} | {100 * share:.1f}% |')
    if cuda and not summary['kernels']:
        lines.append('\nthe profiler saw no device activity (CUPTI unavailable?): device times '
                     'are missing')
    elif cuda:
        lines.append(f'\ndevice busy {summary["device_busy_s"]:.3f} s of {wall:.3f} s wall '
                     f'({100 * summary["device_busy_s"] / wall:.0f}%); {summary["kernels"]} '
                     f'kernels; {summary["syncs"]} host-device synchronisations')
    else:
        lines.append('\n(no CUDA device: host self time per part; no device busy time, kernel '
                     'or synchronisation count)')
    return '\n'.join(lines)
