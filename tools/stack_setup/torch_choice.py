"""Which torch `make setup` installs or keeps (standard library only).

The default is the pinned, tested pair of requirements/torch.txt. A torch that the venv already
holds and that setup did not install (a GPU image's, an NGC container's, a cluster module's, one
the user installed for their driver) is kept: mmcv is built against it and the stack is checked
against it. ``MMCONVNEXT_TORCH`` chooses otherwise:

    auto    (default) keep a torch setup did not install, else install / keep the pin
    pinned  install the pin, also over a torch setup did not install
    system  the venv sees the packages of the Python it is made from (its torch is kept; setup
            refuses if there is none)

Before the pin is installed on a machine with an NVIDIA driver, the driver's CUDA version
(``nvidia-smi``) is compared with the pin's (the ``# CUDA:`` line of torch.txt): a driver of an
older CUDA major version than the pin's cannot run it, and setup stops before any download and
says what to do.

    python -m stack_setup.torch_choice --python VENV_PYTHON --requirements torch.txt
                                       --marker VENV/.mmconvnext-torch [--mode MODE]
        prints 'install', 'keep pinned VERSION' or 'keep kept VERSION'; the reasons on stderr;
        exit 2 if refused
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

MODES = ('auto', 'pinned', 'system')


class TorchChoiceError(RuntimeError):
    """Setup cannot go on with this torch; the message says what to do instead."""


def pinned(requirements):
    """(torch version, its CUDA version or None) of requirements/torch.txt."""
    text = Path(requirements).read_text()
    version = re.search(r'^torch==([^\s#]+)', text, re.M)
    cuda = re.search(r'^# CUDA: ([0-9.]+)', text, re.M)
    if not version:
        raise TorchChoiceError(f'{requirements} pins no torch (torch==X)')
    return version.group(1), cuda.group(1) if cuda else None


def installed_torch(python):
    """(torch.__version__, torch.version.cuda) of ``python``, or None without torch."""
    out = subprocess.run([python, '-c', 'import torch; print(torch.__version__, '
                          'torch.version.cuda)'], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return None
    version, cuda = out.stdout.split()[-2:]
    return version, None if cuda == 'None' else cuda


def driver_cuda(nvidia_smi='nvidia-smi'):
    """(driver version, the CUDA version it supports) from ``nvidia-smi``, or None where there
    is no NVIDIA driver."""
    try:
        out = subprocess.run([nvidia_smi], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    driver = re.search(r'Driver Version:\s*([0-9.]+)', out.stdout)
    cuda = re.search(r'CUDA Version:\s*([0-9.]+)', out.stdout)
    if out.returncode != 0 or not cuda:
        return None
    return (driver.group(1) if driver else '?'), cuda.group(1)


def major(version):
    return int(version.split('.')[0])


def check_driver(torch_version, torch_cuda, driver):
    """TorchChoiceError if the driver ``(version, CUDA)`` cannot run a torch built for
    ``torch_cuda`` (an older CUDA major version: CUDA's minor-version compatibility covers the
    rest), else None."""
    if not driver or not torch_cuda or major(driver[1]) >= major(torch_cuda):
        return None
    cuda_tag = 'cu' + driver[1].replace('.', '')[:3]
    raise TorchChoiceError(
        f'this machine\'s NVIDIA driver {driver[0]} runs CUDA up to {driver[1]}, and the pinned '
        f'torch {torch_version} is built for CUDA {torch_cuda}: it would not see the GPU. '
        'Nothing was downloaded. Either\n'
        f'  - keep a torch built for CUDA {major(driver[1])}.x: install it into the venv first, '
        f'e.g. `python3 -m venv .venv && .venv/bin/pip install torch=={torch_version} '
        f'torchvision --index-url <PyTorch\'s wheel index>/whl/{cuda_tag}` (the CUDA builds '
        'PyTorch publishes for your driver), then `make setup` keeps it;\n'
        '  - or use the torch this machine already has (an image\'s or a module\'s): '
        '`MMCONVNEXT_TORCH=system make setup` (or VENV=<the venv that holds it>);\n'
        '  - or update the NVIDIA driver (CUDA '
        f'{torch_cuda} needs the {"580" if major(torch_cuda) == 13 else "newer"} series or '
        'newer); MMCONVNEXT_TORCH=pinned installs the pin anyway (CPU only here)')


def decide(python, requirements, marker, mode='auto', nvidia_smi='nvidia-smi'):
    """-> (action, reasons): action 'install' (the pin), 'keep pinned VERSION' (the pin is
    there) or 'keep kept VERSION' (another torch, kept); the last two words are the marker's
    new content."""
    if mode not in MODES:
        raise TorchChoiceError(f'MMCONVNEXT_TORCH={mode}: one of {", ".join(MODES)}')
    pin, pin_cuda = pinned(requirements)
    have = installed_torch(python)
    if have and have[0].split('+')[0] == pin:
        return f'keep pinned {have[0]}', [f'torch {have[0]}, the pin, is installed']
    installed_by_setup = Path(marker).is_file() and \
        Path(marker).read_text().split()[:1] == ['pinned']
    if have and (mode == 'system' or (mode == 'auto' and not installed_by_setup)):
        return f'keep kept {have[0]}', [
            f'torch {have[0]} (CUDA {have[1] or "none: a CPU build"}) is already there and is '
            f'kept; mmcv is built against it (MMCONVNEXT_TORCH=pinned installs the pin, {pin})']
    if mode == 'system':
        raise TorchChoiceError('MMCONVNEXT_TORCH=system, but the Python the venv is made from '
                               'has no torch')
    try:
        check_driver(pin, pin_cuda, driver_cuda(nvidia_smi))
    except TorchChoiceError as error:
        if mode != 'pinned':
            raise
        return 'install', [f'MMCONVNEXT_TORCH=pinned: installing torch {pin} anyway: '
                           f'{str(error).split(". ")[0]}']
    return 'install', [f'installing the pinned torch {pin} (CUDA {pin_cuda})']


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m stack_setup.torch_choice',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--python', required=True, help="the venv's python")
    parser.add_argument('--requirements', required=True, help='requirements/torch.txt')
    parser.add_argument('--marker', required=True, help='the file that says setup installed '
                        'torch (written by tools/setup_env.sh)')
    parser.add_argument('--mode', default=os.environ.get('MMCONVNEXT_TORCH') or 'auto')
    args = parser.parse_args(argv)
    try:
        action, reasons = decide(args.python, args.requirements, args.marker, args.mode)
    except TorchChoiceError as error:
        print(f'setup: {error}', file=sys.stderr)
        return 2
    for reason in reasons:
        print(f'setup: {reason}', file=sys.stderr)
    print(action)
    return 0


if __name__ == '__main__':
    sys.exit(main())
