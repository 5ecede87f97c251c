"""Shared pytest options and fixtures: heavy model sizes run only with ``--run-slow``; tests
marked ``cuda`` run only where torch sees a GPU (``pytest -m cuda`` selects them)."""
import pytest
import torch
from tiny_runs import one_thread


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
def single_thread():
    """torch on one thread during the test (see :func:`tiny_runs.one_thread`)."""
    with one_thread():
        yield


@pytest.fixture
def mmcv_cuda_ops():
    """Skips the test unless mmcv's compiled ops include CUDA kernels (``make setup`` on a GPU
    machine, or FORCE_CUDA=1)."""
    try:
        from mmcv.ops import get_compiling_cuda_version
    except ImportError as error:  # mmcv without compiled ops (MMCV_WITH_OPS=0)
        pytest.skip(f'mmcv has no compiled ops: {error}')
    if get_compiling_cuda_version() == 'not available':
        pytest.skip('mmcv\'s ops were compiled without CUDA: run make setup on the GPU machine '
                    '(or FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=...)')
