"""tools/stack_setup/mmcv_wheel_check.py and ``tools/build_mmcv.sh --check``: a built mmcv wheel's
compiled calls are checked in a fresh process; a call that crashes fails its own check, the
others still run, and a cached wheel that fails leaves the cache.

The crashing wheels are tiny stand-ins for mmcv (``mmcv/_ext`` compiled here, see
:data:`FAKE_EXT`); the real check runs on the wheel ``make setup`` built for this machine.
"""
import json
import os
import subprocess
import sys
import zipfile

import pytest
from tiny_runs import TOOLS_DIR

sys.path.insert(0, str(TOOLS_DIR))
from stack_setup import cxx_toolchain, mmcv_wheel_check  # noqa: E402

# mmcv._ext with two info calls; get_compiler_version()'s body is filled in.
FAKE_EXT = '''\
#include <Python.h>
#include <cstdlib>
#include <sstream>
static PyObject* get_compiler_version(PyObject*, PyObject*) { COMPILER_VERSION }
static PyObject* get_compiling_cuda_version(PyObject*, PyObject*) {
  return PyUnicode_FromString("not available");
}
static PyMethodDef methods[] = {
    {"get_compiler_version", get_compiler_version, METH_NOARGS, nullptr},
    {"get_compiling_cuda_version", get_compiling_cuda_version, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};
static PyModuleDef module = {PyModuleDef_HEAD_INIT, "MODULE_NAME", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_MODULE_NAME() { return PyModule_Create(&module); }
'''
# aborts (the H200 build crashed there, in a stream)
ABORTING = 'std::abort();'
# as mmcv writes it: numbers through std::ostringstream
STREAMING = ('std::ostringstream ss; ss << "GCC " << __GNUC__ << "." << __GNUC_MINOR__; '
             'return PyUnicode_FromString(ss.str().c_str());')


def fake_ext(body, compiler, work_dir):
    """FAKE_EXT with ``body`` built by ``compiler`` -> mmcv/_ext's .so."""
    return cxx_toolchain.build_extension('_ext', FAKE_EXT.replace('COMPILER_VERSION', body),
                                         compiler, f'{compiler} -shared', work_dir)


@pytest.fixture(scope='module')
def aborting_ext(tmp_path_factory):
    """The compiled stand-in for mmcv/_ext (built once)."""
    return fake_ext(ABORTING, 'c++', tmp_path_factory.mktemp('fake_ext'))


def fake_wheel(path, ext, mmcv_init='__version__ = "2.1.0"\n'):
    """A wheel holding mmcv/__init__.py, mmcv/ops/__init__.py and ``ext`` as mmcv/_ext."""
    with zipfile.ZipFile(path, 'w') as wheel:
        wheel.writestr('mmcv/__init__.py', mmcv_init)
        wheel.writestr('mmcv/ops/__init__.py', '')
        wheel.write(ext, f'mmcv/{ext.name}')
    return path


def statuses(lines):
    """{check: status} from the check's report lines."""
    found = {}
    for line in lines[:-1]:
        name, rest = line.strip().split(': ', 1)
        found[name] = rest.split(' ', 1)[0]
    return found


def test_a_crashing_call_fails_its_own_check_and_the_others_run(tmp_path, aborting_ext):
    wheel = fake_wheel(tmp_path / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl', aborting_ext)
    info = tmp_path / 'build-info.json'
    info.write_text(json.dumps({'cxx': '/opt/gcc/bin/g++', 'cxx_version': 'g++ (GCC) 99.1',
                                'cflags': '-O2 -g0', 'ldshared': 'g++ -shared -Wl,-O1'}))
    ok, lines = mmcv_wheel_check.check_wheel(wheel, cuda=True, build_info=info)
    assert not ok
    assert 'get_compiler_version(): failed (the process died of SIGABRT)' in lines[1]
    assert statuses(lines) == {
        'import mmcv.ops': 'ok', 'get_compiler_version()': 'failed',
        'get_compiling_cuda_version()': 'ok',  # a new process after the crash
        'nms on cpu': 'failed', 'nms on cuda': 'skipped' if not torch_sees_gpu() else 'failed',
        'an op given a bad input': 'failed'}
    assert lines[-1].startswith('mmcv wheel check: FAILED: get_compiler_version(), nms on cpu')
    for named in ('g++ (GCC) 99.1 (/opt/gcc/bin/g++)', "CFLAGS '-O2 -g0'",
                  "LDSHARED 'g++ -shared -Wl,-O1'"):
        assert named in lines[-1]


def torch_sees_gpu():
    import torch
    return torch.cuda.is_available()


def test_calls_go_to_the_extension_while_mmcv_s_dependencies_are_missing(tmp_path, aborting_ext):
    # during make setup mmcv is built while its dependencies install: import mmcv.ops is not
    # checked yet, the compiled calls are
    wheel = fake_wheel(tmp_path / 'mmcv.whl', aborting_ext,
                       mmcv_init='import a_dependency_not_installed_yet\n')
    ok, lines = mmcv_wheel_check.check_wheel(wheel)
    assert not ok
    assert lines[0] == ('  import mmcv.ops: skipped (not checked: mmcv needs '
                        'a_dependency_not_installed_yet, not installed yet)')
    assert statuses(lines)['get_compiler_version()'] == 'failed'
    assert statuses(lines)['get_compiling_cuda_version()'] == 'ok'
    assert 'nms on cuda' not in statuses(lines)  # a CPU build: no CUDA op to check
    assert 'no build record beside the wheel' in lines[-1]


@pytest.mark.skipif(not os.path.isabs(subprocess.run(
    ['c++', '-print-file-name=libstdc++.a'], capture_output=True, text=True).stdout.strip()),
    reason='needs libstdc++.a (libstdc++-dev)')
def test_info_calls_whose_numbers_are_lost_fail(tmp_path):
    # linked with its own copy of libstdc++ (the H200 image's second GCC finds only
    # libstdc++.a), the extension's streams stop at the first number here: 'GCC '
    compiler = tmp_path / 'static-libstdcxx-g++'
    compiler.write_text('#!/bin/bash\nexec c++ "$@" -static-libstdc++\n')
    compiler.chmod(0o755)
    ext = fake_ext(STREAMING, str(compiler), tmp_path / 'static')
    ok, lines = mmcv_wheel_check.check_wheel(fake_wheel(tmp_path / 'mmcv.whl', ext))
    assert not ok
    assert lines[1].startswith("  get_compiler_version(): failed (AssertionError: 'GCC ' is not")
    assert lines[1].endswith('its numbers were not formatted)')
    # the same source and the system c++: 'GCC 12.2', as torch's libstdc++ formats it
    ext = fake_ext(STREAMING, 'c++', tmp_path / 'shared')
    ok, lines = mmcv_wheel_check.check_wheel(fake_wheel(tmp_path / 'mmcv-ok.whl', ext))
    assert lines[1].startswith('  get_compiler_version(): ok (GCC ')


def build_mmcv(*args, cache):
    """tools/build_mmcv.sh ARGS with this interpreter and the wheel cache ``cache``."""
    env = {key: value for key, value in os.environ.items()
           if key not in ('FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST')}
    return subprocess.run([str(TOOLS_DIR / 'build_mmcv.sh'), *args], capture_output=True,
                          text=True, timeout=300,
                          env={**env, 'PY': sys.executable, 'MMCONVNEXT_CACHE': str(cache)})


def test_check_of_a_cached_wheel_that_crashes_moves_it_out_of_the_cache(tmp_path, aborting_ext):
    wheel_dir = build_mmcv('--cache-dir', cache=tmp_path).stdout.strip()
    os.makedirs(wheel_dir)
    fake_wheel(os.path.join(wheel_dir, 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'), aborting_ext)
    result = build_mmcv('--check', cache=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith('mmcv wheel check: FAILED: '
                                                     'get_compiler_version()')
    assert not os.path.exists(wheel_dir)
    assert (tmp_path / 'rejected' / os.path.basename(wheel_dir)).is_dir()
    assert 'moved to' in result.stderr
    # nothing cached now: --check says so
    result = build_mmcv('--check', cache=tmp_path)
    assert result.returncode == 1
    assert result.stdout.strip() == (f'mmcv wheel check: FAILED: no wheel in {wheel_dir} '
                                     '(make setup builds it)')


def test_the_wheel_make_setup_built_here_passes():
    result = build_mmcv('--check', cache=os.environ.get(
        'MMCONVNEXT_CACHE', os.path.expanduser('~/.cache/mmconvnext')))
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith('mmcv wheel check: ok'), result.stdout
    assert '  an op given a bad input: ok (RuntimeError: sigmoid_focal_loss_forward_impl: ' \
        'implementation for device cpu not found.)' in result.stdout
    assert '  get_compiler_version(): ok (GCC ' in result.stdout or 'clang' in result.stdout
