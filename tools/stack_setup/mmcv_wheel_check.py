"""The check of a built mmcv wheel before it is cached or installed (needs torch).

The wheel is unpacked into a temporary folder and its compiled ops are called in a fresh
process, one check after another; a process that dies (a segmentation fault, an abort) fails
the check it was in, and a new process goes on with the next one:

    import mmcv.ops                      mmcv's Python part over the compiled ``mmcv._ext``
    get_compiler_version()               the info calls that mmcv.utils.collect_env() makes,
    get_compiling_cuda_version()         whose numbers go through std::ostringstream ('GCC 13.3',
                                         '13.0' or 'not available': anything else fails)
    nms on cpu                           one op, on every device the wheel was built for
    nms on cuda                          (cuda: a CUDA build; not checked where no GPU is seen)
    an op given a bad input              sigmoid_focal_loss_forward on CPU tensors (no CPU
                                         kernel): must raise RuntimeError, not end the process

``import mmcv.ops`` needs mmcv's Python dependencies (mmengine, numpy, opencv, ...); where they
are not installed yet (mmcv builds while setup installs them), it is reported as not checked
and the calls go to the extension module itself, the same compiled functions.

    python -m stack_setup.mmcv_wheel_check WHEEL [--cuda] [--build-info JSON]

Prints one line per check, then ``mmcv wheel check: ok ...`` or ``mmcv wheel check: FAILED
...`` naming the failing calls, the compiler and the flags (from the build's JSON record, which
tools/build_mmcv.sh writes beside the wheel); exit 0 / 1.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

from stack_setup.cxx_toolchain import process_end

CHECKS = ('import mmcv.ops', 'get_compiler_version()', 'get_compiling_cuda_version()',
          'nms on cpu', 'nms on cuda', 'an op given a bad input')

# Runs the checks named in argv[1:] in order; one JSON line when a check starts and one when it
# ends, so that the parent knows which check a dead process was in.
CHILD = textwrap.dedent('''\
    import importlib, importlib.util, json, re, sys
    import torch

    def say(**line):
        print(json.dumps(line), flush=True)

    def extension():
        """mmcv._ext, through mmcv's package if it imports, else loaded from its file."""
        try:
            import mmcv.ops  # noqa: F401
            return importlib.import_module('mmcv._ext')
        except ImportError:
            import glob, os
            path = glob.glob(os.path.join(sys.argv[1], 'mmcv', '_ext*.so'))[0]
            spec = importlib.util.spec_from_file_location('mmcv._ext', path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

    def formatted(text, pattern):
        """``text`` if it matches ``pattern`` (numbers the extension's streams formatted)."""
        if not re.fullmatch(pattern, text):
            raise AssertionError(f'{text!r} is not {pattern!r}: its numbers were not formatted')
        return text

    def nms(ext, device):
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]],
                             device=device)
        scores = torch.tensor([0.9, 0.8, 0.7], device=device)
        keep = ext.nms(boxes, scores, iou_threshold=0.5, offset=0).cpu().tolist()
        if keep != [0, 2]:
            raise AssertionError(f'kept boxes {keep}, expected [0, 2]')
        return f'kept boxes {keep}'

    def bad_input(ext):
        logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
        try:
            ext.sigmoid_focal_loss_forward(logits, labels, torch.empty(0), torch.zeros(4, 3),
                                           gamma=2.0, alpha=0.25)
        except RuntimeError as error:
            return 'RuntimeError: ' + str(error).splitlines()[0]
        raise AssertionError('no error for CPU tensors, which have no kernel')

    def run(name):
        if name == 'import mmcv.ops':
            try:
                import mmcv.ops  # noqa: F401
            except ModuleNotFoundError as error:
                if (error.name or '').split('.')[0] == 'mmcv':
                    raise
                return f'not checked: mmcv needs {error.name}, not installed yet', 'skipped'
            return 'mmcv ' + importlib.import_module('mmcv').__version__, 'ok'
        ext = extension()
        if name == 'get_compiler_version()':
            return formatted(ext.get_compiler_version(), r'(GCC|clang) [0-9]+[.][0-9]+'), 'ok'
        if name == 'get_compiling_cuda_version()':
            return formatted(ext.get_compiling_cuda_version(),
                             r'not available|[0-9]+[.][0-9]+'), 'ok'
        if name == 'nms on cpu':
            return nms(ext, 'cpu'), 'ok'
        if name == 'nms on cuda':
            if not torch.cuda.is_available():
                return 'not checked: torch sees no GPU here', 'skipped'
            return nms(ext, 'cuda'), 'ok'
        if name == 'an op given a bad input':
            return bad_input(ext), 'ok'
        raise ValueError(name)

    for name in sys.argv[2:]:
        say(check=name, status='started')
        try:
            detail, status = run(name)
        except Exception as error:  # reported: the check failed, the process goes on
            detail, status = f'{type(error).__name__}: {error}', 'failed'
        say(check=name, status=status, detail=detail)
''')


def unpack(wheel, folder):
    """Unpacks ``wheel`` (a zip) into ``folder`` -> folder."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    return folder


def run_checks(site, checks, timeout=300):
    """Runs ``checks`` with ``site`` first on sys.path, a new process after one that died ->
    {check: (status, detail)}, status 'ok', 'skipped' or 'failed'."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(site), *filter(None, [os.environ.get('PYTHONPATH')])])}
    results, pending = {}, list(checks)
    while pending:
        try:
            out = subprocess.run([sys.executable, '-c', CHILD, str(site), *pending], env=env,
                                 text=True, capture_output=True, timeout=timeout)
            returncode, stdout, stderr = out.returncode, out.stdout, out.stderr
        except subprocess.TimeoutExpired as expired:
            returncode, stdout, stderr = None, expired.stdout or '', expired.stderr or ''
            stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        current = None
        for line in stdout.splitlines():
            if not line.startswith('{'):
                continue
            event = json.loads(line)
            current = event['check'] if event['status'] == 'started' else None
            if event['status'] != 'started':
                results[event['check']] = (event['status'], event['detail'])
        pending = [name for name in pending if name not in results]
        if not pending:
            break
        reason = f'hung for {timeout} s' if returncode is None else process_end(returncode)
        if current is None:  # died before its first check: importing torch, say
            tail = ' | '.join(stderr.strip().splitlines()[-3:])
            for name in pending:
                results[name] = ('failed', f'{reason} before the checks: {tail}')
            break
        results[current] = ('failed', reason)
        pending = [name for name in pending if name not in results]
    return results


def check_wheel(wheel, cuda=False, build_info=None):
    """Checks ``wheel`` (CUDA ops too if ``cuda``) -> (ok, report lines)."""
    checks = [name for name in CHECKS if cuda or name != 'nms on cuda']
    with tempfile.TemporaryDirectory(prefix='mmcv-wheel-check-') as folder:
        results = run_checks(unpack(wheel, folder), checks)
    lines = [f'  {name}: {results[name][0]} ({results[name][1]})' for name in checks]
    failed = [name for name in checks if results[name][0] == 'failed']
    info = json.loads(Path(build_info).read_text()) if build_info and \
        Path(build_info).is_file() else {}
    built = (f'built by {info.get("cxx_version", "?")} ({info.get("cxx", "?")}), '
             f'CFLAGS {info.get("cflags", "?")!r}, LDSHARED {info.get("ldshared", "?")!r}'
             if info else 'no build record beside the wheel')
    if failed:
        lines.append(f'mmcv wheel check: FAILED: {", ".join(failed)}; {Path(wheel).name} '
                     f'{built}')
    else:
        lines.append(f'mmcv wheel check: ok ({len(checks)} checks, '
                     f'{sum(results[name][0] == "skipped" for name in checks)} not checked '
                     f'here; {Path(wheel).name} {built})')
    return not failed, lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m stack_setup.mmcv_wheel_check',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('wheel')
    parser.add_argument('--cuda', action='store_true', help='the wheel has CUDA ops')
    parser.add_argument('--build-info', help="the build's JSON record (compiler, flags)")
    args = parser.parse_args(argv)
    ok, lines = check_wheel(args.wheel, args.cuda, args.build_info)
    print('\n'.join(lines), flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
