"""What `make setup` (tools/setup_env.sh) and tools/build_mmcv.sh decide in Python: the
interpreter, the torch, the C++ toolchain mmcv's ops are built with, and the check of a built
mmcv wheel. Each module runs with the standard library (and torch, where it says so), before the
rest of the stack exists, as ``python -m stack_setup.<module>`` with ``tools/`` on PYTHONPATH."""
