"""What `make setup` decides before it installs anything (tools/stack_setup/python_choice.py,
torch_choice.py and tools/setup_env.sh): which Python, and whether the pinned torch is installed
or the torch already there is kept, checked against the NVIDIA driver before any download.

Interpreters, torch installs and nvidia-smi are stand-in scripts here (they print what the real
ones would), except where a test says it runs the real thing.
"""
import os
import subprocess
import sys

import pytest
from tiny_runs import TOOLS_DIR

sys.path.insert(0, str(TOOLS_DIR))
from stack_setup import python_choice, torch_choice  # noqa: E402

REQUIREMENTS = TOOLS_DIR.parent / 'requirements' / 'torch.txt'


def script(folder, name, body):
    """An executable bash script ``folder/name`` -> its path."""
    path = folder / name
    path.write_text('#!/bin/bash\n' + body + '\n')
    path.chmod(0o755)
    return str(path)


def fake_python(folder, name, version, implementation='CPython'):
    """A 'python' that answers python_choice's question as ``version`` ('3.12.4') would."""
    major, minor, micro = version.split('.')
    return script(folder, name, f'echo "{implementation} {major} {minor} {micro} {folder}/{name}"')


def test_the_newest_supported_python_on_path_is_chosen(tmp_path, monkeypatch):
    fake_python(tmp_path, 'python3.11', '3.11.9')
    fake_python(tmp_path, 'python3.12', '3.12.4')
    fake_python(tmp_path, 'python3', '3.13.1')
    script(tmp_path, 'python3.10', 'echo "pyenv: python3.10: command not found" >&2; exit 127')
    monkeypatch.setenv('PATH', str(tmp_path))
    executable, version, lines = python_choice.choose()
    assert executable == f'{tmp_path}/python3.12' and version == (3, 12, 4)
    assert lines[0] == 'the newest CPython 3.10-3.12 on PATH (python3.12)'
    assert f'also found: 3.11.9 ({tmp_path}/python3.11)' in lines
    assert any('python3.10' in line and 'pyenv: python3.10: command not found' in line
               for line in lines)
    assert any('python3 ' in line and '3.13.1: the stack is resolved for CPython 3.10-3.12' in
               line for line in lines)


def test_pythons_that_cannot_be_used_are_refused_with_each_reason(tmp_path, monkeypatch):
    script(tmp_path, 'python3.12', 'echo "ModuleNotFoundError: No module named \'ensurepip\'" >&2'
           '; exit 1')
    fake_python(tmp_path, 'python3', '3.10.14', implementation='PyPy')
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(python_choice.PythonChoiceError) as error:
        python_choice.choose()
    message = str(error.value)
    assert message.startswith('no CPython 3.10-3.12 with venv found on PATH')
    assert "cannot create a venv (No module named 'ensurepip'; Debian: apt-get install " \
        'python3.X-venv)' in message
    assert 'PyPy 3.10, not CPython' in message and 'set PYTHON=' in message


def test_python_from_the_environment_is_taken_or_refused(tmp_path):
    executable, version, _ = python_choice.choose(sys.executable)  # the real interpreter
    assert version[:2] == sys.version_info[:2]
    with pytest.raises(python_choice.PythonChoiceError, match='PYTHON=.*: 3.13.0: the stack is '
                       'resolved for CPython 3.10-3.12'):
        python_choice.choose(fake_python(tmp_path, 'python3.13', '3.13.0'))


def test_the_pin_and_its_cuda_version_come_from_torch_txt():
    assert torch_choice.pinned(REQUIREMENTS) == ('2.14.1', '13.0')


def fake_nvidia_smi(folder, driver, cuda):
    return script(folder, 'nvidia-smi', f'''cat <<EOF
| NVIDIA-SMI {driver}             Driver Version: {driver}     CUDA Version: {cuda}     |
EOF''')


def test_the_driver_s_cuda_version_is_read_from_nvidia_smi(tmp_path):
    assert torch_choice.driver_cuda(fake_nvidia_smi(tmp_path, '550.54.15', '12.4')) == \
        ('550.54.15', '12.4')
    assert torch_choice.driver_cuda(str(tmp_path / 'no-nvidia-smi')) is None
    failing = script(tmp_path, 'failing-smi', 'echo "NVIDIA-SMI has failed because it '
                     "couldn't communicate with the NVIDIA driver\"; exit 9")
    assert torch_choice.driver_cuda(failing) is None


def test_a_driver_of_an_older_cuda_refuses_the_pin_and_says_what_to_do():
    with pytest.raises(torch_choice.TorchChoiceError) as error:
        torch_choice.check_driver('2.14.1', '13.0', ('550.54.15', '12.4'))
    message = str(error.value)
    assert "driver 550.54.15 runs CUDA up to 12.4, and the pinned torch 2.14.1 is built for " \
        'CUDA 13.0' in message
    assert 'Nothing was downloaded' in message and '/whl/cu124' in message
    assert 'MMCONVNEXT_TORCH=system make setup' in message and '580 series' in message
    # same major version (minor-version compatibility), no driver, a CPU pin: no objection
    assert torch_choice.check_driver('2.14.1', '13.0', ('580.1', '13.0')) is None
    assert torch_choice.check_driver('2.14.1', '13.0', ('590.1', '13.2')) is None
    assert torch_choice.check_driver('2.14.1', '13.0', None) is None
    assert torch_choice.check_driver('2.14.1', None, ('550.54.15', '12.4')) is None


def venv_python(folder, torch=None):
    """A venv 'python' whose torch is ``torch`` ('2.11.0+cu130 13.0'), or without torch."""
    answer = f'echo "{torch}"' if torch else 'echo "No module named torch" >&2; exit 1'
    return script(folder, 'python', answer)


@pytest.mark.parametrize('torch,marker,mode,expected', [
    (None, None, 'auto', 'install'),
    ('2.11.0+cu130 13.0', None, 'auto', 'keep kept 2.11.0+cu130'),  # a machine's / user's torch
    ('2.11.0+cu130 13.0', 'kept 2.11.0+cu130', 'auto', 'keep kept 2.11.0+cu130'),
    ('2.13.0+cu130 13.0', 'pinned 2.13.0+cu130', 'auto', 'install'),  # setup's older pin
    ('2.11.0+cu130 13.0', None, 'pinned', 'install'),
    ('2.11.0+cu130 13.0', None, 'system', 'keep kept 2.11.0+cu130'),
    ('2.14.1+cu130 13.0', None, 'auto', 'keep pinned 2.14.1+cu130'),
    ('2.14.1+cu130 13.0', 'kept 2.11.0', 'system', 'keep pinned 2.14.1+cu130'),
])
def test_torch_is_kept_or_installed(tmp_path, torch, marker, mode, expected):
    marker_file = tmp_path / '.mmconvnext-torch'
    if marker:
        marker_file.write_text(marker + '\n')
    action, reasons = torch_choice.decide(venv_python(tmp_path, torch), REQUIREMENTS,
                                          marker_file, mode, nvidia_smi='/no/nvidia-smi')
    assert action == expected, reasons


def test_system_mode_without_torch_and_an_unknown_mode_are_refused(tmp_path):
    python = venv_python(tmp_path)
    with pytest.raises(torch_choice.TorchChoiceError, match='has no torch'):
        torch_choice.decide(python, REQUIREMENTS, tmp_path / 'marker', 'system')
    with pytest.raises(torch_choice.TorchChoiceError, match='one of auto, pinned, system'):
        torch_choice.decide(python, REQUIREMENTS, tmp_path / 'marker', 'newest')


def test_the_driver_is_checked_only_when_the_pin_would_be_installed(tmp_path):
    old_driver = fake_nvidia_smi(tmp_path, '535.104', '12.2')
    with pytest.raises(torch_choice.TorchChoiceError, match='runs CUDA up to 12.2'):
        torch_choice.decide(venv_python(tmp_path), REQUIREMENTS, tmp_path / 'm', 'auto',
                            nvidia_smi=old_driver)
    action, reasons = torch_choice.decide(venv_python(tmp_path), REQUIREMENTS, tmp_path / 'm',
                                          'pinned', nvidia_smi=old_driver)
    assert action == 'install' and 'installing torch 2.14.1 anyway' in reasons[0]
    kept = venv_python(tmp_path, '2.4.1+cu121 12.1')  # the user's torch for that driver
    assert torch_choice.decide(kept, REQUIREMENTS, tmp_path / 'm', 'auto',
                               nvidia_smi=old_driver)[0] == 'keep kept 2.4.1+cu121'


def run_setup(tmp_path, **env):
    environ = {key: value for key, value in os.environ.items()
               if key not in ('VENV', 'PYTHON', 'MMCONVNEXT_TORCH')}
    return subprocess.run([str(TOOLS_DIR / 'setup_env.sh')], capture_output=True, text=True,
                          timeout=300, env={**environ, 'VENV': str(tmp_path / 'venv'), **env})


def test_setup_stops_before_any_download_on_a_driver_too_old_for_the_pin(tmp_path):
    smi_dir = tmp_path / 'bin'
    smi_dir.mkdir()
    fake_nvidia_smi(smi_dir, '535.104.05', '12.2')
    result = run_setup(tmp_path, PYTHON=sys.executable,
                       PATH=f'{smi_dir}{os.pathsep}{os.environ["PATH"]}')
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'runs CUDA up to 12.2, and the pinned torch 2.14.1 is built for CUDA 13.0' in \
        result.stderr
    assert f'setup: Python {".".join(map(str, sys.version_info[:3]))}' in result.stderr
    # the venv exists, and nothing was installed into it
    listing = subprocess.run([str(tmp_path / 'venv' / 'bin' / 'python'), '-m', 'pip', 'list',
                              '--format=freeze'], capture_output=True, text=True).stdout
    assert 'torch' not in listing


def test_setup_refuses_a_python_it_cannot_use(tmp_path):
    result = run_setup(tmp_path, PYTHON=fake_python(tmp_path, 'python3.9', '3.9.18'))
    assert result.returncode == 1
    assert 'setup: PYTHON=' in result.stderr and '3.9.18: the stack is resolved for CPython ' \
        '3.10-3.12' in result.stderr
    assert not (tmp_path / 'venv').exists()
