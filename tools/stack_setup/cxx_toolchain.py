"""The C++ toolchain mmcv's extension is built with (needs torch).

One compiler does everything: the one torch's extension builder compiles with
(``torch.utils.cpp_extension.get_cxx_compiler()``: ``$CXX``, else ``c++``). It is exported as
``CXX`` for the build, so that setuptools links with it too (it would otherwise link with the
``CXX`` of Python's build settings), and it builds the precompiled header.

Before mmcv's 2-15 minute build, a probe extension is built the way mmcv's is (torch's
``BuildExtension``, Python's ``CFLAGS`` and C++ link command, the same C++ standard) and called
in a fresh process that has imported torch: a number formatted through ``std::ostringstream`` (what
mmcv's ``get_compiling_cuda_version()`` does) and a C++ exception turned into a Python one (what
every op's input check does). That is where extensions built by the H200 image's second GCC
(``$CXX``, which finds no shared libstdc++) crashed, with and without ``-Bsymbolic-functions``,
while the system ``c++`` worked (docs/gpu.md). If the probe fails, the same compiler is tried
without Python's ``-Bsymbolic*`` link flags, then the system ``c++``; if none works, the build is
refused with every reason.

    python -m stack_setup.cxx_toolchain choose --work DIR [--std c++20] [--nvcc NVCC]
        prints CXX=..., CXX_VERSION=..., LDSHARED=... (shell-quoted) for the build
    python -m stack_setup.cxx_toolchain diagnose --work DIR [--also CXX...]
        prints the compilers, their libstdc++, the one torch's process loads, and the probe of
        each compiler with each link variant
    python -m stack_setup.cxx_toolchain pch --cxx CXX --header H [--work DIR] -- FLAGS...
        precompiles H with CXX (H.gch for GCC, H.pch for clang) and exits 0 if CXX then uses
        it for a file compiled with FLAGS, else 1 with the compiler's reason
"""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Python's link flags that bind an extension's calls to its own copies of (libstdc++) functions.
SYMBOLIC_LINK_FLAGS = ('-Wl,-Bsymbolic-functions', '-Wl,-Bsymbolic')

PROBE_SOURCE = textwrap.dedent('''\
    // mmconvnext's toolchain probe: the C++ runtime paths mmcv's _ext uses (streams, exceptions).
    #include <Python.h>
    #include <sstream>
    #include <stdexcept>
    #include <string>

    // "13.0" for 13000, as mmcv's get_compiling_cuda_version() formats the CUDA version
    static PyObject* format_version(PyObject*, PyObject* args) {
      long version;
      if (!PyArg_ParseTuple(args, "l", &version)) return nullptr;
      std::ostringstream out;
      out << (version / 1000) << "." << (version / 10 % 100);
      return PyUnicode_FromString(out.str().c_str());
    }

    // a C++ exception with a streamed message, raised as RuntimeError (an op's input check)
    static PyObject* raise_error(PyObject*, PyObject*) {
      try {
        std::ostringstream message;
        message << "bad input " << 42L;
        throw std::runtime_error(message.str());
      } catch (const std::exception& error) {
        PyErr_SetString(PyExc_RuntimeError, error.what());
        return nullptr;
      }
    }

    static PyMethodDef methods[] = {
        {"format_version", format_version, METH_VARARGS, nullptr},
        {"raise_error", raise_error, METH_NOARGS, nullptr},
        {nullptr, nullptr, 0, nullptr}};
    static PyModuleDef module = {PyModuleDef_HEAD_INIT, "MODULE_NAME", nullptr, -1, methods};
    PyMODINIT_FUNC PyInit_MODULE_NAME() { return PyModule_Create(&module); }
''')

PROBE_CALLS = textwrap.dedent('''\
    import importlib.util, sys
    import torch  # noqa: F401  (the process as mmcv's: libtorch and its libstdc++ first)
    spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(module.format_version(13000))
    try:
        module.raise_error()
    except RuntimeError as error:
        print('raised:', error)
''')
PROBE_OUTPUT = '13.0\nraised: bad input 42'

# Builds one C++ file into an extension the way mmcv's setup.py does (torch's BuildExtension).
BUILD_SCRIPT = textwrap.dedent('''\
    import sys
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CppExtension
    name, source, std, build_dir = sys.argv[1:5]
    setup(name=name, script_args=['-q', 'build_ext', '--build-lib', build_dir,
                                  '--build-temp', build_dir + '/objects'],
          ext_modules=[CppExtension(name, [source], extra_compile_args=['-std=' + std])],
          cmdclass={'build_ext': BuildExtension})
''')


class ToolchainError(RuntimeError):
    """No C++ compiler given or found builds an extension that works; the message says why."""


@dataclass
class Toolchain:
    """The compiler (as named and its resolved path), its ``--version`` line, the link command
    for the build, Python's link flags left out, and why other choices were not taken."""
    cxx: str
    path: str
    version: str
    ldshared: str
    dropped_link_flags: tuple = ()
    rejected: list = field(default_factory=list)

    def shell(self):
        """Shell assignments for tools/build_mmcv.sh (``eval``)."""
        return '\n'.join(f'{key}={shlex.quote(value)}' for key, value in (
            ('CXX', self.cxx), ('CXX_VERSION', self.version), ('LDSHARED', self.ldshared)))


def torch_cxx():
    """The compiler torch's extension builder compiles with ($CXX, else c++)."""
    from torch.utils.cpp_extension import get_cxx_compiler
    return get_cxx_compiler()


def resolve(cxx):
    """The real path of the compiler command ``cxx`` (its first word), or None."""
    found = shutil.which(shlex.split(cxx)[0])
    return os.path.realpath(found) if found else None


def compiler_version(cxx):
    """The first line of ``cxx --version``; ToolchainError if it does not run."""
    try:
        out = subprocess.run([*shlex.split(cxx), '--version'], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolchainError(f'{cxx}: does not run ({error})') from None
    if out.returncode != 0 or not out.stdout.strip():
        raise ToolchainError(f'{cxx} --version failed: {(out.stderr or out.stdout).strip()}')
    return out.stdout.splitlines()[0].strip()


def python_link_command():
    """The command setuptools links a C++ extension with: $LDCXXSHARED, else Python's
    LDCXXSHARED (current setuptools link C++ with it), else $LDSHARED / Python's LDSHARED."""
    for value in (os.environ.get('LDCXXSHARED'), sysconfig.get_config_var('LDCXXSHARED'),
                  os.environ.get('LDSHARED'), sysconfig.get_config_var('LDSHARED')):
        if value:
            return value
    raise ToolchainError('Python names no link command (LDCXXSHARED / LDSHARED)')


def link_variants(cxx, link_command=None):
    """``(link command, dropped flags)`` to try: Python's link command (default
    :func:`python_link_command`) with ``cxx`` as the linker, then, if it has them, the same
    without its ``-Bsymbolic*`` flags."""
    flags = shlex.split(link_command or python_link_command())[1:]
    yield shlex.join([*shlex.split(cxx), *flags]), ()
    dropped = tuple(flag for flag in flags if flag in SYMBOLIC_LINK_FLAGS)
    if dropped:
        kept = [flag for flag in flags if flag not in SYMBOLIC_LINK_FLAGS]
        yield shlex.join([*shlex.split(cxx), *kept]), dropped


def process_end(returncode):
    """How a process ended: 'the process died of SIGSEGV' or 'exit 1'."""
    if returncode < 0:
        return f'the process died of {signal.Signals(-returncode).name}'
    return f'exit {returncode}'


def describe_failure(returncode, output):
    """:func:`process_end` and the output's last lines."""
    tail = '\n'.join(output.strip().splitlines()[-6:])
    return f'{process_end(returncode)}{": " + tail if tail else ""}'


def build_extension(name, source, cxx, ldshared, work_dir, std='c++20', timeout=300):
    """Builds C++ ``source`` (text) into the extension ``name`` with ``cxx`` and ``ldshared``
    (Python's CFLAGS from the environment, as mmcv's build; ``ldshared`` as LDSHARED and
    LDCXXSHARED) -> the .so; ToolchainError if not."""
    work_dir = Path(work_dir) / name
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    cpp = work_dir / f'{name}.cpp'
    cpp.write_text(source.replace('MODULE_NAME', name))
    env = {**os.environ, 'CXX': cxx, 'LDSHARED': ldshared, 'LDCXXSHARED': ldshared}
    try:
        out = subprocess.run([sys.executable, '-c', BUILD_SCRIPT, name, str(cpp), std,
                              str(work_dir / 'build')], cwd=work_dir, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f'building {name} with {cxx} took over {timeout} s') from None
    built = sorted((work_dir / 'build').glob(f'{name}*.so'))
    if out.returncode != 0 or not built:
        raise ToolchainError(f'building {name} with {cxx} failed: '
                             f'{describe_failure(out.returncode, out.stdout)}')
    return built[0]


def call_probe(so_path, name='toolchain_probe', timeout=120):
    """Loads the probe extension in a fresh process after torch and calls it -> None if it
    worked, else why not."""
    try:
        out = subprocess.run([sys.executable, '-c', PROBE_CALLS, name, str(so_path)], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f'the probe hung for {timeout} s'
    if out.returncode != 0:
        return describe_failure(out.returncode, out.stdout)
    if PROBE_OUTPUT not in out.stdout:
        return f'wrong results: {out.stdout.strip()!r} instead of {PROBE_OUTPUT!r}'
    return None


def probe(cxx, ldshared, work_dir, std='c++20'):
    """Builds and calls the probe with ``cxx`` and ``ldshared`` -> None if it works, else why."""
    try:
        so_path = build_extension('toolchain_probe', PROBE_SOURCE, cxx, ldshared, work_dir, std)
    except ToolchainError as error:
        return str(error)
    return call_probe(so_path)


def nvcc_problem(nvcc, cxx, work_dir, std='c++20'):
    """Compiles a small CUDA file with ``nvcc -ccbin cxx`` (torch passes ``$CC`` as nvcc's host
    compiler, and the build sets it to the chosen compiler) -> None if it compiles, else why."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    source = work_dir / 'host_compiler_check.cu'
    source.write_text('__global__ void fill(float* x) { x[threadIdx.x] = 1.f; }\n')
    out = subprocess.run([nvcc, '-ccbin', cxx, f'-std={std}', '-c', str(source), '-o',
                          str(work_dir / 'host_compiler_check.o')], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        return f'nvcc -ccbin {cxx}: {describe_failure(out.returncode, out.stderr + out.stdout)}'
    return None


def candidates():
    """torch's compiler, then the system's ``c++`` if that is another one."""
    chosen = [torch_cxx()]
    if resolve('c++') and resolve('c++') != resolve(chosen[0]):
        chosen.append('c++')
    return chosen


def probe_all(pairs, work_dir, std='c++20'):
    """{(compiler, link command): None if its probe works, else why} for every pair, probed side
    by side (each in a folder of its own)."""
    pairs = list(dict.fromkeys(pairs))
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        futures = [pool.submit(probe, cxx, link, Path(work_dir) / f'probe-{index}', std)
                   for index, (cxx, link) in enumerate(pairs)]
        return {pair: future.result() for pair, future in zip(pairs, futures)}


def choose_toolchain(work_dir, std='c++20', compilers=None, link_command=None, nvcc=None):
    """The first of ``compilers`` (default :func:`candidates`) and link variant whose probe
    works (and that ``nvcc``, if given, takes as its host compiler) -> Toolchain, with why the
    ones before it were not taken; ToolchainError naming every compiler, link command and
    failure. The probes run side by side."""
    options = []  # (compiler, version, link, dropped flags, known problem) in preference order
    for cxx in compilers or candidates():
        try:
            version = compiler_version(cxx)
        except ToolchainError as error:
            options.append((cxx, None, None, (), str(error)))
            continue
        problem = nvcc and nvcc_problem(nvcc, cxx, work_dir, std)
        if problem:
            options.append((cxx, version, None, (), f'{cxx} ({version}): {problem}'))
            continue
        options += [(cxx, version, link, dropped, None)
                    for link, dropped in link_variants(cxx, link_command)]
    failures = probe_all([(cxx, link) for cxx, _, link, _, known in options if not known],
                         work_dir, std)
    rejected = []
    for cxx, version, link, dropped, known in options:
        failure = known or failures[(cxx, link)]
        if failure is None:
            return Toolchain(cxx, resolve(cxx), version, link, dropped, rejected)
        rejected.append(known or f'{cxx} ({version}), linked as `{link}`: {failure}')
    raise ToolchainError('no C++ compiler builds a working extension here:\n  - '
                         + '\n  - '.join(rejected))


def precompiled_header_path(cxx, header):
    """Where ``cxx`` looks for ``-include header``'s precompiled form: H.pch for clang (its
    ``--version`` says clang), H.gch for GCC."""
    suffix = '.pch' if 'clang' in compiler_version(cxx).lower() else '.gch'
    return Path(f'{header}{suffix}')


def precompile_header(cxx, header, flags):
    """Precompiles ``header`` with ``cxx`` and ``flags`` -> its path; ToolchainError if not."""
    out_path = precompiled_header_path(cxx, header)
    out = subprocess.run([*shlex.split(cxx), *flags, '-x', 'c++-header', str(header), '-o',
                          str(out_path)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise ToolchainError(f'{cxx} could not precompile {header}: '
                             f'{describe_failure(out.returncode, out.stderr)}')
    return out_path


def precompiled_header_problem(cxx, header, flags, work_dir):
    """Compiles a small file with ``-include header`` and ``flags`` -> None if ``cxx`` uses the
    precompiled header beside ``header``, else the compiler's reason (e.g. 'created by a
    different GCC executable')."""
    flags = [flag for flag in flags if flag != '-w']  # -w would silence -Winvalid-pch
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    source = work_dir / 'uses_precompiled_header.cpp'
    source.write_text('int mmconvnext_pch_check() { return 0; }\n')
    clang = precompiled_header_path(cxx, header).suffix == '.pch'
    # clang: a .pch it cannot use is an error of its own, a GCC .gch it skips is -Wignored-gch;
    # gcc: -Winvalid-pch says why it skipped one, and -H marks a used one with '!'.
    checks = ['-Werror=ignored-gch'] if clang else ['-Winvalid-pch', '-Werror=invalid-pch', '-H']
    out = subprocess.run([*shlex.split(cxx), *flags, '-include', str(header), *checks, '-c',
                          str(source), '-o', str(work_dir / 'uses_precompiled_header.o')],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:  # the diagnostics, not -H's list of headers
        return describe_failure(out.returncode, '\n'.join(
            line for line in out.stderr.splitlines() if 'error' in line or 'warning' in line))
    if clang or any(line.startswith('! ') for line in out.stderr.splitlines()):
        return None
    return f'{cxx} parsed {header} instead of its precompiled form'


def loaded_libstdcxx():
    """The libstdc++ files a process that imported torch has mapped (Linux)."""
    out = subprocess.run([sys.executable, '-c', 'import torch\n'
                          'print(open("/proc/self/maps").read())'], capture_output=True,
                         text=True, timeout=120)
    return sorted({line.split()[-1] for line in out.stdout.splitlines()
                   if 'libstdc++' in line and '/' in line}) or [out.stderr.strip()[-300:]]


def diagnose(work_dir, compilers=(), std='c++20'):
    """Lines that say which compiler and link command give a working extension here: the
    environment and Python's build settings, each compiler's libstdc++, the one the process
    loads, and the probe of every compiler with every link variant (for bug reports)."""
    lines = [f'{name}: env {os.environ.get(name)!r}, Python {sysconfig.get_config_var(name)!r}'
             for name in ('CC', 'CXX', 'LDSHARED', 'LDCXXSHARED', 'CFLAGS')]
    lines.append(f'LD_LIBRARY_PATH: {os.environ.get("LD_LIBRARY_PATH")!r}')
    lines.append(f'libstdc++ loaded with torch: {", ".join(loaded_libstdcxx())}')
    by_path = {}  # one name per compiler binary (c++, g++ and g++-12 are often one)
    for name in [*candidates(), *compilers]:
        by_path.setdefault(resolve(name), name)
    found = []
    for path, cxx in by_path.items():
        if path is None:
            continue
        try:
            found.append((cxx, compiler_version(cxx)))
        except ToolchainError as error:
            lines.append(str(error))
    failures = probe_all([(cxx, link) for cxx, _ in found for link, _ in link_variants(cxx)],
                         work_dir, std)
    for cxx, version in found:
        library = subprocess.run([*shlex.split(cxx), '-print-file-name=libstdc++.so'],
                                 capture_output=True, text=True).stdout.strip()
        archive = subprocess.run([*shlex.split(cxx), '-print-file-name=libstdc++.a'],
                                 capture_output=True, text=True).stdout.strip()
        if not os.path.isabs(library):
            where = (f'finds no libstdc++.so (-print-file-name says {library!r})'
                     + (f', only {archive}' if os.path.isabs(archive) else ''))
        elif os.path.getsize(library) < 4096:  # a linker script naming the libraries
            where = f'links {library} = ' + ' '.join(Path(library).read_text(
                errors='replace').split())
        else:
            where = f'links {os.path.realpath(library)}'
        lines.append(f'{cxx} -> {resolve(cxx)}: {version}; {where}')
        for link, _ in link_variants(cxx):
            lines.append(f'  probe linked as `{link}`: {failures[(cxx, link)] or "works"}')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m stack_setup.cxx_toolchain',
                                     description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    choose = commands.add_parser('choose', help='the compiler and link command, probed')
    choose.add_argument('--work', required=True, help='a folder for the probe builds')
    choose.add_argument('--std', default='c++20', help='the C++ standard of the build')
    choose.add_argument('--nvcc', help='for CUDA ops: the nvcc that must take the compiler')
    report = commands.add_parser('diagnose', help='every compiler and link variant, probed')
    report.add_argument('--work', required=True, help='a folder for the probe builds')
    report.add_argument('--also', nargs='*', default=[], help='more compilers to probe')
    pch = commands.add_parser('pch', help='precompile a header and check that it is used')
    pch.add_argument('--cxx', required=True)
    pch.add_argument('--header', required=True)
    pch.add_argument('--work', default=None, help='a folder for the check (default: the '
                     "header's folder)")
    pch.add_argument('flags', nargs=argparse.REMAINDER, help='-- then the compile flags')
    args = parser.parse_args(argv)
    try:
        if args.command == 'choose':
            toolchain = choose_toolchain(args.work, args.std, nvcc=args.nvcc)
            for reason in toolchain.rejected:
                print(f'build_mmcv: not used: {reason}', file=sys.stderr)
            if toolchain.dropped_link_flags:
                print(f'build_mmcv: linking without {" ".join(toolchain.dropped_link_flags)} '
                      '(from Python\'s link command): the probe crashed with it', file=sys.stderr)
            print(toolchain.shell())
            return 0
        if args.command == 'diagnose':
            print('\n'.join(f'toolchain: {line}' for line in diagnose(args.work, args.also)))
            return 0
        flags = args.flags[1:] if args.flags[:1] == ['--'] else args.flags
        precompile_header(args.cxx, args.header, flags)
        problem = precompiled_header_problem(args.cxx, args.header, flags,
                                             args.work or Path(args.header).parent)
        if problem:
            print(f'build_mmcv: the precompiled header is not used by {args.cxx}: {problem}',
                  file=sys.stderr)
            return 1
        return 0
    except ToolchainError as error:
        print(f'build_mmcv: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
