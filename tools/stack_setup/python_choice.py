"""The Python `make setup` creates the venv with (standard library only).

``$PYTHON`` if set, else the newest CPython 3.10-3.12 found on PATH as python3.12, python3.11,
python3.10, python3 or python. Each candidate is run, not just found: a pyenv shim of a version
that is not active, a Python without ``venv`` / ``ensurepip`` (Debian's python3.X without
python3.X-venv), or another implementation or version is passed over with the reason.

    python3 -m stack_setup.python_choice [--venv VENV]
        prints the interpreter's path; on stderr which one was chosen, why, and what was passed
        over. With an existing VENV, its own Python is checked instead (exit 1 if unsupported).
"""
import argparse
import os
import shutil
import subprocess
import sys

SUPPORTED = ((3, 10), (3, 11), (3, 12))  # the stack (mmcv 2.1, torch, ...) resolves for these
NAMES = ('python3.12', 'python3.11', 'python3.10', 'python3', 'python')
INSPECT = ('import platform, sys\n'
           'print(platform.python_implementation(), *sys.version_info[:3], sys.executable)')
CAN_CREATE_VENV = 'import venv, ensurepip\n'  # make setup creates the venv, with pip


class PythonChoiceError(RuntimeError):
    """No usable Python; the message names each candidate and why not."""


def supported_range():
    return f'{SUPPORTED[0][0]}.{SUPPORTED[0][1]}-{SUPPORTED[-1][0]}.{SUPPORTED[-1][1]}'


def inspect(command, creates_venv=True):
    """Runs ``command`` -> (version tuple, executable); PythonChoiceError with why it is not
    usable (does not run, cannot create a venv if ``creates_venv``, not CPython, unsupported
    version)."""
    try:
        code = (CAN_CREATE_VENV if creates_venv else '') + INSPECT
        out = subprocess.run([command, '-c', code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PythonChoiceError(f'does not run ({error})') from None
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines()
        missing = [line for line in lines if 'No module named' in line]
        if missing:
            raise PythonChoiceError(f'cannot create a venv ({missing[-1].split(": ", 1)[-1]}; '
                                    'Debian: apt-get install python3.X-venv)')
        first = lines[0] if lines else f'exit {out.returncode}'
        raise PythonChoiceError(f'does not run ({first})')
    implementation, major, minor, micro, executable = out.stdout.split(maxsplit=4)
    version = (int(major), int(minor), int(micro))
    if implementation != 'CPython':
        raise PythonChoiceError(f'{implementation} {major}.{minor}, not CPython')
    if version[:2] not in SUPPORTED:
        raise PythonChoiceError(f'{major}.{minor}.{micro}: the stack is resolved for CPython '
                                f'{supported_range()}')
    return version, executable.strip()


def choose(explicit=None, names=NAMES):
    """``explicit`` if given and usable, else the newest usable of ``names`` on PATH ->
    (executable, version, [lines saying what was found and passed over])."""
    if explicit:
        try:
            version, executable = inspect(explicit)
        except PythonChoiceError as error:
            raise PythonChoiceError(f'PYTHON={explicit}: {error}') from None
        return executable, version, [f'PYTHON={explicit}']
    found, passed_over, seen = [], [], set()
    for name in names:
        command = shutil.which(name)
        if not command:
            continue
        try:
            version, executable = inspect(command)
        except PythonChoiceError as error:
            passed_over.append(f'{name} ({command}): {error}')
            continue
        if os.path.realpath(executable) not in seen:
            seen.add(os.path.realpath(executable))
            found.append((version, executable, name))
    if not found:
        raise PythonChoiceError(
            f'no CPython {supported_range()} with venv found on PATH (tried {", ".join(names)})'
            + ''.join(f'\n  - {line}' for line in passed_over)
            + '\n  install one, or set PYTHON=/path/to/python3.X')
    found.sort(key=lambda item: item[0], reverse=True)
    version, executable, name = found[0]
    lines = [f'the newest CPython {supported_range()} on PATH ({name})']
    lines += [f'also found: {".".join(map(str, v))} ({e})' for v, e, _ in found[1:]]
    lines += [f'passed over: {line}' for line in passed_over]
    return executable, version, lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python3 -m stack_setup.python_choice',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--venv', help='an existing venv: its Python is checked instead')
    args = parser.parse_args(argv)
    try:
        if args.venv and os.path.exists(os.path.join(args.venv, 'bin', 'python')):
            executable = os.path.join(args.venv, 'bin', 'python')
            version, _ = inspect(executable, creates_venv=False)
            lines = [f'the Python of the existing venv {args.venv}']
        else:
            executable, version, lines = choose(os.environ.get('PYTHON'))
    except PythonChoiceError as error:
        print(f'setup: {error}', file=sys.stderr)
        return 1
    print(f'setup: Python {".".join(map(str, version))} ({executable}): {lines[0]}',
          file=sys.stderr)
    for line in lines[1:]:
        print(f'setup:   {line}', file=sys.stderr)
    print(executable)
    return 0


if __name__ == '__main__':
    sys.exit(main())
