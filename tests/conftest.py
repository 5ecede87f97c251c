"""Shared pytest options (heavy model sizes run only with ``--run-slow``) and fixtures."""
import pytest
from tiny_runs import one_thread


def pytest_addoption(parser):
    parser.addoption('--run-slow', action='store_true', help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
    if config.getoption('--run-slow'):
        return
    skip_slow = pytest.mark.skip(reason='heavy size: run with --run-slow (make test-slow)')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def single_thread():
    """torch on one thread during the test (see :func:`tiny_runs.one_thread`)."""
    with one_thread():
        yield
