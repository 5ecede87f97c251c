#!/usr/bin/env bash
# The GPU check of mmconvnext, for a bare CUDA machine without a package registry (one GPU,
# python3 with a CUDA torch, nvcc), run from a checkout that carries .device-wheels/
# (tools/device_wheels.sh prepares it). Writes one report, text and JSON, to OUT_DIR.
#
#   tools/device_check.sh OUT_DIR [--tier 1|2|all]      (default all)
#
# Tier 1 (a few minutes, no mmcv ops): mmcv's Python part (MMCV_WITH_OPS=0) and the stack from the
#   wheels, the CUDA backbone tests (pytest -m cuda: fp32 vs float64, autocast, fp16 inference,
#   the benchmark tool), then tools/analysis/benchmark_backbone.py --device cuda.
# Tier 2: mmcv with CUDA ops built by tools/build_mmcv.sh (MAX_JOBS: the CPU count, the GPU's
#   architecture), then the AMP Mask R-CNN / UperNet tests (tests/test_cuda_training.py).
# Each step has a time limit and its output goes to OUT_DIR/steps.log; a failed step is reported
# and the next one runs. OUT_DIR holds at most 5 files: report.txt, report.json, steps.log,
# benchmark.json, mmcv-build.log (its last 4 MiB).
#
# Environment: PYTHON (default python3), MMCONVNEXT_WHEELS (default .device-wheels),
# MMCONVNEXT_SITE (where the wheels install, default /tmp/mmconvnext-site; put first on
# PYTHONPATH), BENCHMARK_ARGS (replaces the benchmark's default arguments below).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: tools/device_check.sh OUT_DIR [--tier 1|2|all]}
TIER=all
if [[ $# -ge 2 ]]; then
    [[ $2 == --tier && ${3:-} =~ ^(1|2|all)$ ]] || { echo "usage: $0 OUT_DIR [--tier 1|2|all]" >&2; exit 2; }
    TIER=$3
fi
PY=${PYTHON:-python3}
WHEELS=${MMCONVNEXT_WHEELS:-$ROOT/.device-wheels}
SITE=${MMCONVNEXT_SITE:-/tmp/mmconvnext-site}
# Tier 1's benchmark: both settings at the three precisions, eager; compiled only in bf16 at
# batch 64 (each compile of a training graph takes about a minute).
BENCHMARK_ARGS=${BENCHMARK_ARGS:---settings 64x224x224 2x800x1216 --compile-peers mmconvnext
    timm-channels_last --compile-precisions bf16 --compile-settings 64x224x224}
mkdir -p "$OUT"
LOG=$OUT/steps.log
: >"$LOG"
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=$WHEELS PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$ROOT" || exit 1

STEPS_JSON=()
FAILED=0
# step NAME LIMIT_S COMMAND...: run COMMAND under a time limit, its output appended to the log.
step() {
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
    # bash -c: the command may be one of the functions below (exported)
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >>"$LOG" 2>&1
    rc=$?
    local seconds=$((SECONDS - start)) status=ok
    if [[ $rc -ne 0 ]]; then
        status=$([[ $rc -eq 124 || $rc -eq 137 ]] && echo "timed out" || echo "failed (exit $rc)")
        FAILED=$((FAILED + 1))
    fi
    echo "=== $name: $status, $seconds s" | tee -a "$LOG"
    STEPS_JSON+=("{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $seconds}")
    return $rc
}

environment() {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
        --format=csv || true
    command -v nvcc && nvcc --version | tail -2
    nproc
    "$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__,
torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())"
}

# The wheels into $SITE (--no-deps: the image's packages serve the rest), mmcv's Python part.
install_stack() {
    local stamp=$SITE/.wheels-installed
    if [[ -f $stamp && $(cat "$stamp") == $(ls "$WHEELS") ]]; then
        echo "already installed in $SITE"
        return
    fi
    rm -rf "$SITE"
    "$PY" -m pip install -q --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || return
    MMCV_WITH_OPS=0 "$PY" -m pip install -q --no-deps --no-build-isolation --target "$SITE" \
        "$WHEELS"/mmcv-*.tar.gz || return
    "$PY" -c "import mmcv, mmengine, mmdet, mmseg, mmpretrain, timm, numpy, mmconvnext
print('mmcv', mmcv.__version__, 'mmengine', mmengine.__version__, 'mmdet', mmdet.__version__,
      'mmseg', mmseg.__version__, 'mmpretrain', mmpretrain.__version__, 'timm', timm.__version__,
      'numpy', numpy.__version__)" || return
    ls "$WHEELS" >"$stamp"
}

# mmcv with CUDA ops through the same script as `make setup`, installed over mmcv's Python part.
build_and_install_mmcv() {
    local wheel
    wheel=$(PY=$PY MAX_JOBS=${MAX_JOBS:-$(nproc)} MMCONVNEXT_CACHE=/tmp/mmconvnext-cache \
            "$ROOT/tools/build_mmcv.sh" --log "$OUT/mmcv-build.full.log" \
            | tee -a /dev/stderr | tail -1) || return  # progress to the log (-a: no truncation)
    "$PY" -m pip install -q --no-deps --no-compile --upgrade --target "$SITE" "$wheel" || return
    "$PY" -c "import mmcv.ops, torch
print('mmcv ops compiled with CUDA', mmcv.ops.get_compiling_cuda_version())
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]], device='cuda')
print('nms on cuda:', mmcv.ops.nms(boxes, torch.tensor([0.9, 0.8], device='cuda'), 0.5)[1])"
}

pytest_cuda() {  # pytest -m cuda on the given test files
    "$PY" -m pytest -m cuda -p no:cacheprovider "$@"
}

export ROOT OUT PY WHEELS SITE
export -f environment install_stack build_and_install_mmcv pytest_cuda
step environment 60 environment
step install 300 install_stack
if [[ $TIER == 1 || $TIER == all ]]; then
    step tier1-tests 300 pytest_cuda tests/test_cuda_backbone.py tests/test_half_precision.py \
        tests/test_cuda_benchmark.py
    # shellcheck disable=SC2086  # a list of arguments
    step benchmark 420 "$PY" tools/analysis/benchmark_backbone.py --device cuda \
        --json "$OUT/benchmark.json" $BENCHMARK_ARGS
fi
if [[ $TIER == 2 || $TIER == all ]]; then
    if step mmcv-build 480 build_and_install_mmcv; then
        step tier2-tests 400 pytest_cuda tests/test_cuda_training.py
    else
        echo "=== tier2-tests: not run (no mmcv with CUDA ops)" | tee -a "$LOG"
    fi
    if [[ -f $OUT/mmcv-build.full.log ]]; then
        tail -c 4M "$OUT/mmcv-build.full.log" >"$OUT/mmcv-build.log"
        rm "$OUT/mmcv-build.full.log"
    fi
fi

# --- the report --------------------------------------------------------------------------------
{
    echo "mmconvnext device check ($(date -u '+%Y-%m-%d %H:%M UTC'), tier $TIER, commit" \
         "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    grep -A8 '^=== environment (' "$LOG" | grep -v '^=== '
    echo
    grep -E '^=== [a-z0-9-]+: ' "$LOG"
    echo
    grep -E '^(FAILED|ERROR|SKIPPED) |^=+ .*(passed|failed|error).* =+$' "$LOG"
    echo
    sed -n '/^| case /,$p' "$LOG" | grep -E '^\||^$|^OWN_PATH'
} >"$OUT/report.txt"
printf '{"tier": "%s", "failed_steps": %d, "steps": [%s]}\n' "$TIER" "$FAILED" \
    "$(IFS=,; echo "${STEPS_JSON[*]}")" >"$OUT/report.json"
cat "$OUT/report.txt"
exit $((FAILED > 0))
