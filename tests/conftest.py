"""Shared pytest options and fixtures: heavy model sizes run only with ``--run-slow``; tests
marked ``cuda`` run only where torch sees a GPU (``pytest -m cuda`` selects them); mmengine's
log lines of a test (``log_lines``); the uninterrupted 2-process run that interrupted runs must
end equal to (``mask_rcnn_reference``)."""
import logging
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from tiny_runs import one_thread, resumable_mask_rcnn_config, run_tool


def pytest_addoption(parser):
    parser.addoption('--run-slow', action='store_true', help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
    skips = {}
    if not config.getoption('--run-slow'):
        skips['slow'] = pytest.mark.skip(reason='heavy size: run with --run-slow (make test-slow)')
    if not torch.cuda.is_available():
        skips['cuda'] = pytest.mark.skip(
            reason=f'needs a CUDA GPU: torch {torch.__version__} sees none '
            f'(torch.version.cuda={torch.version.cuda})')
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def log_lines():
    """Messages logged to mmengine's current logger during the test, joined by lines."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lambda: '\n'.join(record.getMessage() for record in records)
    logger.removeHandler(handler)


@pytest.fixture(scope='session')
def mask_rcnn_reference(tmp_path_factory):
    """:func:`tiny_runs.resumable_mask_rcnn_config` trained without interruption by
    ``dist_train.sh`` on 2 gloo processes: ``config``, ``work_dir`` and the tool's ``output``."""
    tmp = tmp_path_factory.mktemp('reference')
    config = resumable_mask_rcnn_config(tmp)
    output = run_tool('dist_train.sh', config, 2, '--work-dir', tmp / 'work_dir').stdout
    return SimpleNamespace(config=config, work_dir=tmp / 'work_dir', output=output)


@pytest.fixture
def single_thread():
    """torch on one thread during the test (see :func:`tiny_runs.one_thread`)."""
    with one_thread():
        yield


# Calls mmcv's CUDA nms; exit 3: no CUDA ops to call (printed why).
CUDA_NMS = '\n'.join([
    'import sys, torch',
    'try:',
    '    import mmcv.ops',
    'except ImportError as error:  # mmcv without compiled ops (MMCV_WITH_OPS=0)',
    "    sys.exit(print(f'mmcv has no compiled ops: {error}') or 3)",
    "boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]], device='cuda')",
    'try:',
    "    keep = mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)[1]",
    'except RuntimeError as error:',
    "    if 'implementation for device cuda' not in str(error):",
    '        raise',
    '    sys.exit(print("mmcv\'s ops were compiled without CUDA: run make setup on the GPU "',
    "                   'machine (or FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=...)') or 3)",
    'assert keep.tolist() == [0], keep',
])


@pytest.fixture(scope='session')
def mmcv_cuda_ops():
    """Skips the test unless mmcv's compiled ops include CUDA kernels (``make setup`` on a GPU
    machine, or FORCE_CUDA=1); fails it if calling them fails. The call runs in a subprocess:
    a broken build (the H200 image's crashed in mmcv's info calls) ends that, not the test run."""
    result = subprocess.run([sys.executable, '-c', CUDA_NMS], capture_output=True, text=True,
                            timeout=600)
    if result.returncode == 3:
        pytest.skip(result.stdout.strip())
    if result.returncode != 0:
        how = (f'died of {signal.Signals(-result.returncode).name}' if result.returncode < 0
               else f'failed (exit {result.returncode})')
        pytest.fail(f"mmcv's CUDA nms {how} in a subprocess: {result.stderr.strip()[-2000:]}")
