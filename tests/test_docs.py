"""README.md and docs/*.md: links resolve, and the commands they show name real files, make
targets and options (each Python tool's ``--help`` is read once). The commands that can run on
tiny data run in the tests of their tools (demo, swap, inference, get_flops, benchmark, ...)."""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
#: A markdown link or image: ](target) — external addresses and in-page anchors are skipped.
LINK = re.compile(r'\]\(([^)\s#]+)(?:#[^)]*)?\)')
#: A repository script in a command: tools/... .py or .sh.
SCRIPT = re.compile(r'(?<![\w./])(tools/[\w/]+\.(?:py|sh))')
#: A config path in a command.
CONFIG = re.compile(r'(?<![\w./])(configs/[\w/]+\.py)')


def code_blocks(page):
    """The lines of the fenced code blocks of ``page``, continuation lines joined."""
    text = re.sub(r'\\\n\s*', ' ', page.read_text())
    return [line for block in re.findall(r'```\w*\n(.*?)```', text, re.S)
            for line in block.splitlines()]


def run_help(script):
    return subprocess.run([sys.executable, str(REPO / script), '--help'], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)


@lru_cache(maxsize=None)
def all_tool_helps():
    """``--help`` of every Python tool the pages' commands name, run a core's worth at a time
    (each is mostly the import of torch and the OpenMMLab stack)."""
    scripts = sorted({path for page in PAGES for line in code_blocks(page)
                      for path in SCRIPT.findall(line.split('#')[0]) if path.endswith('.py')})
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        return dict(zip(scripts, pool.map(run_help, scripts)))


def tool_help(script):
    result = all_tool_helps()[script]
    assert result.returncode == 0, result.stdout[-2000:]
    return result.stdout


def test_every_page_is_linked_from_the_readme():
    readme = (REPO / 'README.md').read_text()
    for page in PAGES[1:]:
        assert f'](docs/{page.name})' in readme, page.name


@pytest.mark.parametrize('page', PAGES, ids=lambda page: page.name)
def test_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if '://' in target:
            continue
        assert (page.parent / target).exists(), f'{page.name}: broken link {target}'


@pytest.mark.parametrize('page', PAGES, ids=lambda page: page.name)
def test_commands_name_real_scripts_configs_targets_and_options(page):
    for line in code_blocks(page):
        command = line.split('#')[0]
        for target in re.findall(r'\bmake ([\w-]+)', command):
            assert re.search(rf'^{target}:', (REPO / 'Makefile').read_text(), re.M), line
        for path in SCRIPT.findall(command) + CONFIG.findall(command):
            assert (REPO / path).is_file(), f'{page.name}: {path} does not exist ({line})'
        scripts = [path for path in SCRIPT.findall(command) if path.endswith('.py')]
        if scripts:
            tool_options = set(re.findall(r'--[\w-]+', tool_help(scripts[0])))
            for option in re.findall(r'(?<![\w-])--[a-z][\w-]*', command.split(scripts[0])[1]):
                assert option in tool_options, f'{page.name}: {scripts[0]} has no {option}'
