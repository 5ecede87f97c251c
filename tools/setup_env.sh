#!/usr/bin/env bash
# Idempotent setup of the project's virtual environment (default: .venv/ at the repo root).
#
#   1. the build tools, torch and torchvision (requirements/build.txt, torch.txt),
#   2. mmcv with compiled ops, built from PyPI's source release because no wheel exists for
#      this torch; the wheel is cached in $MMCONVNEXT_CACHE/wheels/ keyed by mmcv, torch, Python
#      and CPU/CUDA, so the build happens once per machine. While it compiles (in the
#      background, its progress printed), the rest of the stack is resolved and installed,
#   3. mmcv's wheel, a consistency check of the whole stack, and mmconvnext in editable mode.
#
# A stamp records the hash of the inputs; when nothing changed the script exits in a second.
# On a machine with CUDA (nvcc + a GPU, or FORCE_CUDA=1) the same build compiles the CUDA ops.
# The time of each phase is printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
MMCV_VERSION=2.1.0
CACHE=${MMCONVNEXT_CACHE:-$HOME/.cache/mmconvnext}
STAMP=$VENV/.mmconvnext-setup
STACK_REQUIREMENTS=(-r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt"
                    -r "$ROOT/requirements/tests.txt")

inputs_hash() {
    cat "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" "$ROOT/setup.py" "${BASH_SOURCE[0]}" \
        | sha256sum | cut -d' ' -f1
}

if [[ -f $STAMP && $(cat "$STAMP") == $(inputs_hash) ]]; then
    echo "setup: $VENV is up to date"
    exit 0
fi

# --- phase timing --------------------------------------------------------------------------------
SETUP_START=$SECONDS
PHASE_TIMES=()
PHASE_NAME='' PHASE_START=0
phase() {  # phase NAME: end the running phase (recording its time), start NAME ('' for none)
    if [[ -n $PHASE_NAME ]]; then
        PHASE_TIMES+=("$PHASE_NAME $((SECONDS - PHASE_START)) s")
    fi
    PHASE_NAME=$1 PHASE_START=$SECONDS
    [[ -z $PHASE_NAME ]] || echo "setup: $PHASE_NAME ..."
}

phase 'venv + build tools + torch'
if [[ ! -x $VENV/bin/python ]]; then
    command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
    "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install -r "$ROOT/requirements/build.txt" -r "$ROOT/requirements/torch.txt"

read -r TORCH_VER PY_TAG CUDA_TAG < <("$PY" - <<'PYEOF'
import os, sys, torch
from torch.utils.cpp_extension import CUDA_HOME
cuda = (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1') and CUDA_HOME
print(torch.__version__.split('+')[0], f'cp{sys.version_info.major}{sys.version_info.minor}',
      f'cu{torch.version.cuda}' if cuda else 'cpu')
PYEOF
)
WHEEL_DIR=$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VER-$PY_TAG-$CUDA_TAG
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"; jobs -p | xargs -r kill 2>/dev/null' EXIT

# --- mmcv's build, run in the background ---------------------------------------------------------
# Two changes to how its 77 C++ files (CPU; more with CUDA) compile, none to what they compute:
#  - no debug info (-g0): Python's own CFLAGS, which extensions inherit, carry -g; debug info of
#    files this template-heavy doubled the compile time here (roi_align.cpp 33 s -> 19 s);
#  - a precompiled <torch/types.h>, the header every op includes: parsing it is most of each
#    file's compile time (19 s of roi_align.cpp's 21 s here; 5 s with the precompiled header).
#    It is built with the flags the extension's C++ files get; gcc uses it only where they
#    match (-Winvalid-pch reports a mismatch) and otherwise parses the header as usual.
build_mmcv() {
    "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
    local src=$BUILD/mmcv-$MMCV_VERSION
    # Patch: torch >= 2.13 headers need C++20; mmcv 2.1.0's setup.py hard-codes C++14/17.
    local std=c++17
    if "$PY" -c "import torch, sys; sys.exit(tuple(map(int, torch.__version__.split('.')[:2])) < (2, 13))"; then
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
        std=c++20
    fi
    local pch_dir=$BUILD/precompiled python_cflags includes
    mkdir -p "$pch_dir"
    echo '#include <torch/types.h>' >"$pch_dir/torch_types.h"
    # $CFLAGS replaces Python's CFLAGS for the extension: keep them (-O3, -DNDEBUG, ...), add ours.
    python_cflags="$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS'))") -g0"
    includes=$("$PY" - <<'PYEOF'
import sysconfig
from torch.utils.cpp_extension import include_paths
print(' '.join([sysconfig.get_config_var('CCSHARED')] + [f'-I{path}' for path in include_paths()]
               + [f'-I{sysconfig.get_paths()["include"]}']))
PYEOF
)
    # shellcheck disable=SC2086  # lists of flags
    c++ $python_cflags $includes -x c++-header "$pch_dir/torch_types.h" \
        -o "$pch_dir/torch_types.h.gch" -std=$std -DTORCH_API_INCLUDE_EXTENSION_H \
        -DTORCH_EXTENSION_NAME=_ext -w
    (cd "$src" && CFLAGS="$python_cflags -include $pch_dir/torch_types.h -Winvalid-pch" \
        MMCV_WITH_OPS=1 \
        MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip --disable-pip-version-check -v wheel \
        --no-build-isolation --no-deps -w "$BUILD/dist" .)
}

# Prints "compiled N/M objects" every 20 s while mmcv builds: the objects ninja has written
# under the build folder $1, of those its build.ninja lists (ninja's own [N/M] lines reach the
# log only in blocks).
show_progress() {
    local build=$1 start=$SECONDS last=''
    while sleep 20; do
        local ninja total done
        ninja=$(find "$build" -name build.ninja 2>/dev/null | head -1)
        [[ -n $ninja ]] || continue
        total=$(grep -c '^build .*\.o:' "$ninja") || true
        done=$(find "$(dirname "$ninja")" -name '*.o' | wc -l)
        if [[ "$done/$total" != "$last" ]]; then
            echo "setup: mmcv: compiled $done/$total objects, $((SECONDS - start)) s"
            last="$done/$total"
        fi
    done
}

MMCV_PID=''
if ! "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null \
        && ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    phase ''
    MMCV_START=$SECONDS
    MMCV_LOG=$BUILD/mmcv-build.log
    echo "setup: building mmcv $MMCV_VERSION with ops for torch $TORCH_VER ($CUDA_TAG) in the" \
         "background, once per machine (about 4 min on 2 cores); log: $MMCV_LOG"
    build_mmcv >"$MMCV_LOG" 2>&1 &
    MMCV_PID=$!
    show_progress "$BUILD" &
    PROGRESS_PID=$!
fi

# --- the rest of the stack -----------------------------------------------------------------------
if [[ -n $MMCV_PID ]]; then
    phase 'the OpenMMLab stack and test tools'
    # mmcv is not installed yet and every OpenMMLab package requires it: resolve the whole stack
    # (mmcv's metadata comes from its source release), then install what it adds, pinned to the
    # resolved versions, but mmcv and what the running build imports (torch, build tools).
    "${PIP[@]}" install --dry-run --report "$BUILD/stack.json" \
        "${STACK_REQUIREMENTS[@]}" >/dev/null
    "$PY" - "$BUILD/stack.json" >"$BUILD/stack-pins.txt" <<'PYEOF'
import json, sys
for item in json.load(open(sys.argv[1]))['install']:
    name, version = item['metadata']['name'], item['metadata']['version']
    if name.lower() not in ('mmcv', 'torch', 'torchvision', 'setuptools', 'wheel', 'ninja',
                            'packaging'):
        print(f'{name}=={version}')
PYEOF
    "${PIP[@]}" install --no-deps -r "$BUILD/stack-pins.txt"
fi

# --- mmcv's wheel --------------------------------------------------------------------------------
if [[ -n $MMCV_PID ]]; then
    phase 'waiting for the mmcv build'
    if ! wait "$MMCV_PID"; then
        echo "setup: the mmcv build failed; end of its log ($MMCV_LOG):" >&2
        tail -40 "$MMCV_LOG" >&2
        exit 1
    fi
    kill "$PROGRESS_PID" 2>/dev/null || true
    if grep -q 'gch: not used because' "$MMCV_LOG"; then
        echo "setup: note: the precompiled torch header did not match some files' flags" \
             "(they compiled without it): see $MMCV_LOG"
    fi
    mkdir -p "$WHEEL_DIR"
    mv "$BUILD"/dist/mmcv-*.whl "$WHEEL_DIR"/
    PHASE_TIMES+=("mmcv build $((SECONDS - MMCV_START)) s (in the background)")
fi
if ! "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    phase 'mmcv wheel'
    "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
fi

# --- the whole stack, consistent, and mmconvnext -------------------------------------------------
phase 'stack check + mmconvnext'
"${PIP[@]}" install "${STACK_REQUIREMENTS[@]}"
"${PIP[@]}" install --no-build-isolation --no-deps -e "$ROOT"
"$PY" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain, timm, mmconvnext"
phase ''
inputs_hash >"$STAMP"
echo "setup: phase times: $(printf '%s; ' "${PHASE_TIMES[@]}")total $((SECONDS - SETUP_START)) s"
echo "setup: $VENV ready"
