#!/usr/bin/env bash
# Idempotent setup of the project's virtual environment (default: .venv/ at the repo root).
#
#   1. the build tools, torch and torchvision (requirements/build.txt, torch.txt),
#   2. mmcv with compiled ops (tools/build_mmcv.sh: built from PyPI's source release because no
#      wheel exists for this torch, cached in $MMCONVNEXT_CACHE/wheels/ keyed by mmcv, torch,
#      Python and CPU / CUDA ops, so the build happens once per machine). While it compiles (in
#      the background, its progress printed), the rest of the stack is resolved and installed,
#   3. mmcv's wheel, a consistency check of the whole stack, and mmconvnext in editable mode.
#
# CUDA ops are built when torch sees a GPU, or with FORCE_CUDA=1 (TORCH_CUDA_ARCH_LIST then names
# the GPUs, e.g. 9.0); without a CUDA toolkit the compiler comes from PyPI: tools/build_mmcv.sh.
# A stamp records the hash of the inputs (files, CUDA settings, visible GPUs); when nothing
# changed the script exits in a second. The time of each phase is printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
STAMP=$VENV/.mmconvnext-setup
STACK_REQUIREMENTS=(-r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt"
                    -r "$ROOT/requirements/tests.txt")

inputs_hash() {
    { cat "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" "$ROOT/setup.py" "${BASH_SOURCE[0]}" \
          "$ROOT/tools/build_mmcv.sh"
      echo "${FORCE_CUDA-}|${TORCH_CUDA_ARCH_LIST-}|${MMCONVNEXT_CUDA_TOOLKIT-}"
      nvidia-smi -L 2>/dev/null || true
    } | sha256sum | cut -d' ' -f1
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

# mmcv: installed when the installed one is another build (CPU / CUDA ops, architectures) than
# tools/build_mmcv.sh names for this machine; built once per machine into its cache, in the
# background while the rest of the stack installs.
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"; jobs -p | xargs -r kill 2>/dev/null' EXIT
export PY
WHEEL_DIR=$("$ROOT/tools/build_mmcv.sh" --cache-dir)
MMCV_MARK=$VENV/.mmcv-wheel  # the cache folder of the installed mmcv wheel
MMCV_PID=''
if [[ $(cat "$MMCV_MARK" 2>/dev/null) != "$WHEEL_DIR" ]] && ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    phase ''
    MMCV_START=$SECONDS
    echo "setup: building mmcv with ops into $WHEEL_DIR in the background, once per machine" \
         "(CPU ops: about 4 min on 2 cores)"
    "$ROOT/tools/build_mmcv.sh" &  # its progress lines, then the wheel's path
    MMCV_PID=$!
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
    wait "$MMCV_PID" || { echo "setup: the mmcv build failed (above)" >&2; exit 1; }
    PHASE_TIMES+=("mmcv build $((SECONDS - MMCV_START)) s (in the background)")
fi
if [[ $(cat "$MMCV_MARK" 2>/dev/null) != "$WHEEL_DIR" ]] \
        || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
    phase 'mmcv wheel'
    "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
    echo "$WHEEL_DIR" >"$MMCV_MARK"
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
