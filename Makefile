# Two commands on a fresh machine: `make demo` and `make test` (both run `make setup` first).
# VENV: the environment to set up and test in (tools/setup_env.sh; default .venv)
VENV ?= $(CURDIR)/.venv
export VENV
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-slow demo lint

setup:
	@./tools/setup_env.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest --run-slow $(PYTEST_ARGS)

demo: setup
	$(PY) tools/demo.py

lint: setup
	$(PY) -m flake8 mmconvnext tools tests configs
	$(PY) -m isort --check-only --diff mmconvnext tools tests
