"""tools/stack_setup/cxx_toolchain.py: the one C++ compiler mmcv's ops are built with, its probe,
the fall-backs, and the precompiled header made and checked by that compiler.

The other compilers are Debian's (g++-11 / g++-N beside the system c++, clang++): tests that need
one skip where none is installed (``apt-get install g++-11 clang``; CI installs them).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import TOOLS_DIR

sys.path.insert(0, str(TOOLS_DIR))
from stack_setup import cxx_toolchain  # noqa: E402

SYSTEM_CXX = cxx_toolchain.resolve('c++')


def first_compiler(names, other_than_system=False):
    """The first of ``names`` on PATH (and not the system c++ itself, if asked), or None."""
    for name in names:
        path = cxx_toolchain.resolve(name)
        if path and not (other_than_system and path == SYSTEM_CXX):
            return name
    return None


SECOND_GCC = first_compiler([f'g++-{n}' for n in (11, 12, 13, 14, 15, 10)], other_than_system=True)
CLANG = first_compiler(['clang++', 'clang++-19', 'clang++-16', 'clang++-15', 'clang++-14'])
needs_second_gcc = pytest.mark.skipif(SECOND_GCC is None, reason='needs a GCC other than c++ '
                                      '(Debian: apt-get install g++-11)')
needs_clang = pytest.mark.skipif(CLANG is None, reason='needs clang (apt-get install clang)')

# A static constructor that aborts: an extension linked with it dies as it loads.
ABORT_ON_LOAD = ('#include <cstdlib>\n'
                 'namespace { struct AbortOnLoad { AbortOnLoad() { std::abort(); } }\n'
                 'abort_on_load; }\n')


def script_compiler(tmp_path, name, body):
    """A 'compiler': the bash script ``body`` as ``tmp_path/name`` -> its path."""
    path = tmp_path / name
    path.write_text(f'#!/bin/bash\n{body}\n')
    path.chmod(0o755)
    return str(path)


def crashing_compiler(tmp_path, only_with=None):
    """A 'compiler' (c++ behind a script) whose extensions abort on load: always, or only when
    linked with the flag ``only_with``, as the H200 image's second GCC with -Bsymbolic-functions."""
    abort_object = tmp_path / 'abort_on_load.o'
    (tmp_path / 'abort_on_load.cpp').write_text(ABORT_ON_LOAD)
    subprocess.run(['c++', '-fPIC', '-c', str(tmp_path / 'abort_on_load.cpp'), '-o',
                    str(abort_object)], check=True)
    condition = f'[[ " $* " == *" {only_with} "* ]]' if only_with else 'true'
    return script_compiler(tmp_path, 'crashing-g++',
                           f'if [[ " $* " == *" -shared "* ]] && {condition}; then\n'
                           f'    exec c++ "$@" {abort_object}\nfi\nexec c++ "$@"')


@pytest.fixture(autouse=True)
def no_compiler_settings(monkeypatch):
    for name in ('CXX', 'CC', 'LDSHARED'):
        monkeypatch.delenv(name, raising=False)


def test_torch_s_compiler_is_chosen_for_compile_and_link(tmp_path):
    toolchain = cxx_toolchain.choose_toolchain(tmp_path)
    assert toolchain.cxx == 'c++' and toolchain.path == SYSTEM_CXX
    assert toolchain.version == subprocess.run(['c++', '--version'], capture_output=True,
                                               text=True).stdout.splitlines()[0]
    assert toolchain.ldshared.split()[:2] == ['c++', '-shared']
    assert toolchain.rejected == [] and toolchain.dropped_link_flags == ()
    assert 'CXX=c++\n' in toolchain.shell() + '\n'


@needs_clang
def test_cxx_from_the_environment_is_torch_s_compiler_and_builds_the_probe(tmp_path, monkeypatch):
    monkeypatch.setenv('CXX', CLANG)
    assert cxx_toolchain.candidates()[0] == CLANG
    toolchain = cxx_toolchain.choose_toolchain(tmp_path)
    assert toolchain.cxx == CLANG and 'clang' in toolchain.version
    assert toolchain.ldshared.startswith(f'{CLANG} -shared')


def test_an_extension_that_crashes_only_with_bsymbolic_is_linked_without_it(tmp_path):
    compiler = crashing_compiler(tmp_path, only_with='-Wl,-Bsymbolic-functions')
    toolchain = cxx_toolchain.choose_toolchain(
        tmp_path, compilers=[compiler], link_command='gcc -shared -Wl,-O1 -Wl,-Bsymbolic-functions')
    assert toolchain.cxx == compiler
    assert toolchain.dropped_link_flags == ('-Wl,-Bsymbolic-functions',)
    assert toolchain.ldshared == f'{compiler} -shared -Wl,-O1'
    assert len(toolchain.rejected) == 1 and 'died of SIGABRT' in toolchain.rejected[0]
    assert '-Wl,-Bsymbolic-functions' in toolchain.rejected[0]


def test_a_compiler_whose_extensions_crash_falls_back_to_the_system_cxx(tmp_path, monkeypatch):
    monkeypatch.setenv('CXX', crashing_compiler(tmp_path))
    assert cxx_toolchain.candidates() == [os.environ['CXX'], 'c++']
    toolchain = cxx_toolchain.choose_toolchain(tmp_path)
    assert toolchain.cxx == 'c++'
    assert 'crashing-g++' in toolchain.rejected[0] and 'SIGABRT' in toolchain.rejected[0]


def test_no_working_compiler_is_refused_with_every_reason(tmp_path):
    compiler = crashing_compiler(tmp_path)
    with pytest.raises(cxx_toolchain.ToolchainError) as error:
        cxx_toolchain.choose_toolchain(tmp_path, compilers=[compiler, '/nonexistent/g++'])
    message = str(error.value)
    assert 'no C++ compiler builds a working extension' in message
    assert 'crashing-g++' in message and 'the process died of SIGABRT' in message
    assert '/nonexistent/g++: does not run' in message


def test_the_command_line_prints_shell_assignments(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'stack_setup.cxx_toolchain', 'choose', '--work',
                          str(tmp_path)], capture_output=True, text=True, check=True,
                         env={**os.environ, 'PYTHONPATH': str(TOOLS_DIR)}).stdout
    assert out.splitlines()[0] == 'CXX=c++'
    assert out.splitlines()[1].startswith('CXX_VERSION=') and 'LDSHARED=' in out


def small_header(tmp_path):
    header = tmp_path / 'small.h'
    header.write_text('#include <string>\n#include <vector>\n')
    return header


FLAGS = ['-O2', '-std=c++20', '-fPIC']


def test_a_precompiled_header_made_by_the_compiler_is_used_by_it(tmp_path):
    header = small_header(tmp_path)
    assert cxx_toolchain.precompile_header('c++', header, FLAGS) == Path(f'{header}.gch')
    assert cxx_toolchain.precompiled_header_problem('c++', header, FLAGS, tmp_path) is None


@pytest.mark.parametrize('compiler,problem,suffix', [
    # the H200 image's build: the header by c++, the objects by a second GCC
    pytest.param(SECOND_GCC, 'created by a different GCC executable', '.gch',
                 marks=needs_second_gcc, id='second-gcc'),
    # clang 19 skips a GCC header ('not a clang PCH file'), clang 14 fails on it: both say why
    pytest.param(CLANG, 'PCH file', '.pch', marks=needs_clang, id='clang')])
def test_a_precompiled_header_of_c_plus_plus_is_found_out_by_another_compiler(
        tmp_path, compiler, problem, suffix):
    header = small_header(tmp_path)
    cxx_toolchain.precompile_header('c++', header, FLAGS)
    assert problem in cxx_toolchain.precompiled_header_problem(compiler, header, FLAGS, tmp_path)
    # the fix: the header made by the compiler that uses it
    assert cxx_toolchain.precompile_header(compiler, header, FLAGS) == Path(f'{header}{suffix}')
    assert cxx_toolchain.precompiled_header_problem(compiler, header, FLAGS, tmp_path) is None


def test_the_pch_command_exits_1_with_the_reason(tmp_path):
    header = small_header(tmp_path)
    env = {**os.environ, 'PYTHONPATH': str(TOOLS_DIR)}
    command = [sys.executable, '-m', 'stack_setup.cxx_toolchain', 'pch', '--header', str(header)]
    ok = subprocess.run([*command, '--cxx', 'c++', '--', *FLAGS], env=env, capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    # a header that does not compile cannot be precompiled: exit 2, the compiler's message
    header.write_text('#include <no_such_header_here.h>\n')
    broken = subprocess.run([*command, '--cxx', 'c++', '--', *FLAGS], env=env,
                            capture_output=True, text=True)
    assert broken.returncode == 2 and 'no_such_header_here.h' in broken.stderr


NVCC = shutil.which('nvcc') or ('/usr/local/cuda/bin/nvcc'
                                if os.access('/usr/local/cuda/bin/nvcc', os.X_OK) else None)


@pytest.mark.skipif(NVCC is None, reason='needs nvcc (a CUDA toolkit)')
def test_nvcc_takes_the_chosen_compiler_as_host_compiler(tmp_path):
    assert cxx_toolchain.nvcc_problem(NVCC, 'c++', tmp_path) is None
    problem = cxx_toolchain.nvcc_problem(NVCC, '/nonexistent/g++', tmp_path)
    assert problem.startswith('nvcc -ccbin /nonexistent/g++: exit')


def static_libstdcxx_compiler(tmp_path):
    """c++ linking libstdc++ statically into each extension: its streams then miss the facets
    of the libstdc++ the process loaded (numbers print as nothing here; on the H200 image, whose
    second GCC finds only libstdc++.a, the extension crashed in the same stream code)."""
    return script_compiler(tmp_path, 'static-libstdcxx-g++', 'exec c++ "$@" -static-libstdc++')


needs_static_libstdcxx = pytest.mark.skipif(
    not os.path.isabs(subprocess.run(['c++', '-print-file-name=libstdc++.a'], capture_output=True,
                                     text=True).stdout.strip()),
    reason='needs libstdc++.a (libstdc++-dev)')


@needs_static_libstdcxx
def test_a_compiler_that_links_its_own_libstdcxx_is_caught_and_cxx_is_used(tmp_path):
    compiler = static_libstdcxx_compiler(tmp_path)
    toolchain = cxx_toolchain.choose_toolchain(tmp_path, compilers=[compiler, 'c++'])
    assert toolchain.cxx == 'c++'
    assert len(toolchain.rejected) == 1
    assert 'static-libstdcxx-g++' in toolchain.rejected[0]
    assert "wrong results: 'raised: bad input' instead of '13.0\\nraised: bad input 42'" in \
        toolchain.rejected[0]
