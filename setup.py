"""Install mmconvnext; dependencies come from requirements/*.txt, metadata from setup.cfg."""
from pathlib import Path

from setuptools import setup

REQ = Path(__file__).parent / 'requirements'


def read_requirements(*names):
    """Requirement lines of requirements/<name>.txt, without comments."""
    lines = []
    for name in names:
        for line in (REQ / f'{name}.txt').read_text().splitlines():
            line = line.split('#')[0].strip()
            if line:
                lines.append(line)
    return lines


setup(
    install_requires=read_requirements('runtime'),
    extras_require={
        'mim': read_requirements('mminstall'),
        'tests': read_requirements('tests'),
        'deploy': read_requirements('deploy'),
        'all': read_requirements('mminstall', 'deploy', 'tests'),
    },
)
