#!/usr/bin/env bash
# Idempotent setup of the project's virtual environment (default: .venv/ at the repo root).
#
#   0. the Python: $PYTHON, else the newest CPython 3.10-3.12 on PATH (tools/stack_setup/
#      python_choice.py); an existing venv keeps its own,
#   1. the build tools, and torch: the pinned pair (requirements/torch.txt), or the torch the venv
#      already holds, kept (MMCONVNEXT_TORCH=auto|pinned|system: tools/stack_setup/torch_choice.py;
#      before the pin is downloaded, the NVIDIA driver's CUDA version is checked against it),
#   2. mmcv with compiled ops (tools/build_mmcv.sh: built from PyPI's source release because no
#      wheel exists for this torch, cached in $MMCONVNEXT_CACHE/wheels/ keyed by mmcv, torch,
#      Python and CPU / CUDA ops, so the build happens once per machine). While it compiles (in
#      the background, its progress printed), the rest of the stack is resolved and installed,
#   3. mmcv's wheel, checked in a fresh process (tools/build_mmcv.sh --check), a consistency check
#      of the whole stack (with the torch it has), and mmconvnext in editable mode.
#
# CUDA ops are built when torch sees a GPU, or with FORCE_CUDA=1 (TORCH_CUDA_ARCH_LIST then names
# the GPUs, e.g. 9.0); without a CUDA toolkit the compiler comes from PyPI: tools/build_mmcv.sh.
# A stamp records the hash of the inputs (files, CUDA settings, visible GPUs); when nothing
# changed the script exits in a second. The time of each phase is printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
STAMP=$VENV/.mmconvnext-setup
TORCH_MARK=$VENV/.mmconvnext-torch  # 'pinned VERSION' (setup installed it) or 'kept VERSION'

STACK_REQUIREMENTS=(-r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt"
                    -r "$ROOT/requirements/deploy.txt" -r "$ROOT/requirements/tests.txt")

inputs_hash() {
    { cat "$ROOT"/requirements/*.txt "$ROOT/setup.cfg" "$ROOT/setup.py" "${BASH_SOURCE[0]}" \
          "$ROOT/tools/build_mmcv.sh" "$ROOT"/tools/stack_setup/*.py
      echo "${FORCE_CUDA-}|${TORCH_CUDA_ARCH_LIST-}|${MMCONVNEXT_CUDA_TOOLKIT-}|${PYTHON-}"
      echo "${MMCONVNEXT_TORCH-}|${CXX-}"
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

# stack_setup MODULE ARGS...: tools/stack_setup/MODULE.py with the venv's Python ($PY)
stack_setup() { PYTHONPATH="$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m "stack_setup.$1" "${@:2}"; }

phase 'venv + build tools + torch'
if [[ ! -x $VENV/bin/python ]]; then
    # any Python that runs can choose among them (it runs each candidate)
    for PY in python3 python3.12 python3.11 python3.10 python ${PYTHON:-}; do
        "$PY" -c '' 2>/dev/null && break
    done
    CHOSEN=$(stack_setup python_choice) || exit 1
    if [[ ${MMCONVNEXT_TORCH:-auto} == system ]]; then
        "$CHOSEN" -m venv --system-site-packages "$VENV"
        # a Python that is itself a venv's (a GPU image's /opt/.../venv): its packages too
        "$CHOSEN" -c 'import site, sys
if sys.prefix != sys.base_prefix:
    print("\n".join(site.getsitepackages()))' >"$("$VENV/bin/python" -c \
            'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_mmconvnext_system_torch.pth"
    else
        "$CHOSEN" -m venv "$VENV"
    fi
else
    PY=$VENV/bin/python
    stack_setup python_choice --venv "$VENV" >/dev/null || exit 1
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check -q)
TORCH_ACTION=$(stack_setup torch_choice --python "$PY" --requirements "$ROOT/requirements/torch.txt" \
                   --marker "$TORCH_MARK") || exit 1
if [[ $TORCH_ACTION == install ]]; then
    "${PIP[@]}" install -r "$ROOT/requirements/build.txt" -r "$ROOT/requirements/torch.txt"
    echo "pinned $("$PY" -c 'import torch; print(torch.__version__)')" >"$TORCH_MARK"
else
    "${PIP[@]}" install -r "$ROOT/requirements/build.txt"
    echo "${TORCH_ACTION#keep }" >"$TORCH_MARK"
fi
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"; jobs -p | xargs -r kill 2>/dev/null' EXIT
# every later install keeps this torch (timm needs torchvision: one that fits it is chosen)
"$PY" -c 'from importlib.metadata import version; print("torch==" + version("torch"))' \
    >"$BUILD/torch-constraint.txt"
STACK_REQUIREMENTS+=(-c "$BUILD/torch-constraint.txt")

# mmcv: installed when the installed one is another build (CPU / CUDA ops, architectures) than
# tools/build_mmcv.sh names for this machine; built once per machine into its cache, in the
# background while the rest of the stack installs.
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
    phase 'mmcv wheel check + install'
    "$ROOT/tools/build_mmcv.sh" --check \
        || { echo "setup: mmcv's wheel failed its check (above)" >&2; exit 1; }
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
