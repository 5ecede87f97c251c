"""tools/build_mmcv.sh: which mmcv build a machine needs (CPU / CUDA ops, architectures) and the
refusals, through ``--cache-dir`` (no build here: `make setup` runs the CPU build, and the sm_90
build with PyPI's nvcc is measured in docs/gpu.md)."""
import os
import subprocess
import sys

import pytest
import torch
from tiny_runs import TOOLS_DIR

TORCH = torch.__version__.split('+')[0]
PY_TAG = f'cp{sys.version_info.major}{sys.version_info.minor}'
needs_cuda_torch_without_gpu = pytest.mark.skipif(
    torch.version.cuda is None or torch.cuda.is_available(),
    reason='needs a CUDA build of torch on a machine without GPU')


def build_mmcv(*args, expect_ok=True, **env):
    """Run tools/build_mmcv.sh with this interpreter and ``env`` -> CompletedProcess."""
    environ = {key: value for key, value in os.environ.items()
               if key not in ('FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST', 'MMCONVNEXT_CUDA_TOOLKIT')}
    result = subprocess.run([str(TOOLS_DIR / 'build_mmcv.sh'), *args],
                            env={**environ, 'PY': sys.executable, 'MMCONVNEXT_CACHE': '/cache',
                                 **env}, capture_output=True, text=True, timeout=120)
    assert (result.returncode == 0) == expect_ok, result.stdout + result.stderr
    return result


def test_cpu_ops_without_gpu_or_force_cuda():
    if torch.cuda.is_available():
        pytest.skip('with a GPU the default is CUDA ops')
    out = build_mmcv('--cache-dir').stdout.strip()
    assert out == f'/cache/wheels/mmcv-2.1.0-torch{TORCH}-{PY_TAG}-cpu'
    assert build_mmcv('--cache-dir', FORCE_CUDA='0').stdout.strip() == out


@needs_cuda_torch_without_gpu
@pytest.mark.parametrize('archs,suffix', [('9.0', 'sm90'), ('8.0;9.0+PTX', 'sm80-sm90+PTX'),
                                          ('8.6 9.0', 'sm86-sm90')])
def test_force_cuda_keys_the_cache_by_cuda_version_and_architectures(archs, suffix):
    cuda = 'cu' + torch.version.cuda.replace('.', '')
    out = build_mmcv('--cache-dir', FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=archs).stdout.strip()
    assert out == f'/cache/wheels/mmcv-2.1.0-torch{TORCH}-{PY_TAG}-{cuda}-{suffix}'


@needs_cuda_torch_without_gpu
def test_force_cuda_without_gpu_needs_the_architectures():
    err = build_mmcv('--cache-dir', expect_ok=False, FORCE_CUDA='1').stderr
    assert 'FORCE_CUDA=1 and no GPU is visible: set TORCH_CUDA_ARCH_LIST, e.g. 9.0' in err


@needs_cuda_torch_without_gpu
def test_an_architecture_list_a_cpu_build_ignores_is_noted():
    result = build_mmcv('--cache-dir', TORCH_CUDA_ARCH_LIST='9.0')
    assert result.stdout.strip().endswith('-cpu')
    assert 'TORCH_CUDA_ARCH_LIST is not used' in result.stderr


def test_force_cuda_with_a_cpu_build_of_torch_is_refused(tmp_path):
    # torch.version.cuda is None in a CPU build of torch: emulated by a sitecustomize
    (tmp_path / 'sitecustomize.py').write_text('import torch\ntorch.version.cuda = None\n')
    err = build_mmcv('--cache-dir', expect_ok=False, FORCE_CUDA='1',
                     TORCH_CUDA_ARCH_LIST='9.0', PYTHONPATH=str(tmp_path)).stderr
    assert f'FORCE_CUDA=1, but torch {TORCH}' in err and 'is a CPU build' in err


def test_unknown_argument_is_refused():
    err = build_mmcv('--cache', expect_ok=False).stderr
    assert "unknown argument '--cache'" in err and '--cache-dir | --check | --log FILE' in err
