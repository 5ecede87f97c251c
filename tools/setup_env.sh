#!/usr/bin/env bash
# Idempotent setup of the project's virtual environment (default: .venv/ at the repo root).
#
#   1. torch + torchvision (requirements/torch.txt),
#   2. mmcv with compiled ops, built from PyPI's source release because no wheel exists for
#      this torch; the wheel is cached in $MMCONVNEXT_CACHE/wheels/ keyed by mmcv, torch, Python
#      and CPU/CUDA, so the ~11 min build happens once per machine,
#   3. the OpenMMLab stack, runtime and test requirements, and mmconvnext in editable mode.
#
# A stamp records the hash of the inputs; when nothing changed the script exits in a second.
# On a machine with CUDA (nvcc + a GPU, or FORCE_CUDA=1) the same build compiles the CUDA ops.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
MMCV_VERSION=2.1.0
CACHE=${MMCONVNEXT_CACHE:-$HOME/.cache/mmconvnext}
STAMP=$VENV/.mmconvnext-setup

inputs_hash() {
    cat "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" "$ROOT/setup.py" "${BASH_SOURCE[0]}" \
        | sha256sum | cut -d' ' -f1
}

if [[ -f $STAMP && $(cat "$STAMP") == $(inputs_hash) ]]; then
    echo "setup: $VENV is up to date"
    exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
    command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
    "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check -q)

"${PIP[@]}" install -r "$ROOT/requirements/build.txt"
"${PIP[@]}" install -r "$ROOT/requirements/torch.txt"

# --- mmcv with ops, from the cached wheel or built once ---------------------------------------
read -r TORCH_VER PY_TAG CUDA_TAG < <("$PY" - <<'PYEOF'
import os, sys, torch
from torch.utils.cpp_extension import CUDA_HOME
cuda = (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1') and CUDA_HOME
print(torch.__version__.split('+')[0], f'cp{sys.version_info.major}{sys.version_info.minor}',
      f'cu{torch.version.cuda}' if cuda else 'cpu')
PYEOF
)
WHEEL_DIR=$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VER-$PY_TAG-$CUDA_TAG
if ! "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        echo "setup: building mmcv $MMCV_VERSION with ops for torch $TORCH_VER ($CUDA_TAG);" \
             "this takes ~11 min on 2 cores, once per machine"
        BUILD=$(mktemp -d)
        trap 'rm -rf "$BUILD"' EXIT
        "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
        tar -xzf "$BUILD"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD"
        SRC=$BUILD/mmcv-$MMCV_VERSION
        # torch >= 2.13 headers need C++20; mmcv 2.1.0 hard-codes C++14/17.
        if "$PY" -c "import torch, sys; sys.exit(tuple(map(int, torch.__version__.split('.')[:2])) < (2, 13))"; then
            sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
        fi
        mkdir -p "$WHEEL_DIR"
        (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
            "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$BUILD/dist" .)
        mv "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR"/
    fi
    "${PIP[@]}" install --no-deps "$WHEEL_DIR"/mmcv-*.whl
fi

# --- the rest of the stack and mmconvnext ------------------------------------------------------
"${PIP[@]}" install -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT"
"$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain, timm, mmconvnext"
inputs_hash >"$STAMP"
echo "setup: $VENV ready"
