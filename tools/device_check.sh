#!/usr/bin/env bash
# The GPU check of mmconvnext, for a bare CUDA machine without a package registry (one GPU,
# python3 with a CUDA torch, nvcc), run from a checkout that carries .device-wheels/
# (tools/device_wheels.sh prepares it). Writes one report, text and JSON, to OUT_DIR.
#
#   tools/device_check.sh OUT_DIR [--tier 1|2|3|all]      (default all)
#
# Tier 1 (no mmcv ops): mmcv's Python part (MMCV_WITH_OPS=0) and the stack from the wheels, the
#   CUDA backbone tests (pytest -m cuda: fp32 vs float64, autocast, fp16 inference, the benchmark
#   tool), then tools/analysis/benchmark_backbone.py --device cuda.
# Toolchain (before the tiers): every C++ compiler torch, the system or PATH names, probed with and
#   without Python's -Bsymbolic* link flags (tools/stack_setup/cxx_toolchain.py diagnose).
# Tier 2: mmcv with CUDA ops built by tools/build_mmcv.sh (the GPU's architecture; it checks the
#   wheel before caching it), the wheel checked again by `tools/build_mmcv.sh --check` (each call
#   a step of the report: a crashing call fails its own step), installed over mmcv's Python part
#   as make setup installs it, then the AMP Mask R-CNN / UperNet tests (tests/test_cuda_training.py).
# Tier 3 (the training step): mmcv with CUDA ops as in tier 2 (cached by an earlier tier 2 on the
#   same machine: then seconds), then tools/analysis/benchmark_train.py --profile on Cascade Mask
#   R-CNN T, Mask R-CNN T and UperNet T, each against its peers (mmdet's / mmseg's own ConvNeXt
#   config, ours with timm's ConvNeXt) and against variants of ours (fused AdamW; bf16 autocast),
#   one JSON each: train-cascade-t.json, train-mask-rcnn-t.json, train-upernet-t.json.
# all: tiers 1 and 2 in one run (tier 3 too, if time is left). mmcv compiles in the background
#   (niced, all cores but two) while tier 1 runs on the GPU, so the check fits one call of about
#   8-9 minutes; --tier 1 / 2 / 3 rerun one (tier 3 after tier 2, on the warm machine: ~4 min).
# Each step has a time limit and its output goes to OUT_DIR/steps.log; a failed step is reported
# and the next one runs (tier 2's tests need the build). OUT_DIR gets at most 8 files: report.txt,
# report.json, steps.log, benchmark.json, mmcv-build.log (its last 4 MiB), the three train-*.json.
# Exit 1 if a step failed.
#
# Environment: PYTHON (default python3), MMCONVNEXT_WHEELS (default .device-wheels),
# MMCONVNEXT_SITE (where the wheels install, default /tmp/mmconvnext-site; put first on
# PYTHONPATH), BENCHMARK_ARGS (replaces the benchmark's arguments below), CHECK_SECONDS (the
# whole run's budget, default 540: every step's limit is cut to what is left of it, so the report
# is written before a caller's own time limit).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: tools/device_check.sh OUT_DIR [--tier 1|2|3|all]}
TIER=all
if [[ $# -ge 2 ]]; then
    [[ $2 == --tier && ${3:-} =~ ^(1|2|3|all)$ ]] || { echo "usage: $0 OUT_DIR [--tier 1|2|3|all]" >&2; exit 2; }
    TIER=$3
fi
PY=${PYTHON:-python3}
WHEELS=${MMCONVNEXT_WHEELS:-$ROOT/.device-wheels}
SITE=${MMCONVNEXT_SITE:-/tmp/mmconvnext-site}
# Tier 1's benchmark: both settings at the three precisions, eager; compiled only in bf16 at
# batch 64 (each compile of a training graph takes about a minute).
BENCHMARK_ARGS=${BENCHMARK_ARGS:---settings 64x224x224 2x800x1216 --compile-peers mmconvnext
    timm-channels_last --compile-precisions bf16 --compile-settings 64x224x224}
CHECK_SECONDS=${CHECK_SECONDS:-540}
mkdir -p "$OUT"
LOG=$OUT/steps.log
MMCV_CACHE=/tmp/mmconvnext-cache  # tools/build_mmcv.sh's cache on the device
BUILD_LOG=$OUT/mmcv-build.full.log
: >"$LOG"
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 \
    PIP_FIND_LINKS=$WHEELS PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$ROOT" || exit 1

STEPS_JSON=()
FAILED=0
# record NAME RC SECONDS [STATUS]: log and remember a step's outcome.
record() {
    local status=${4:-ok}
    if [[ $2 -ne 0 ]]; then
        status=${4:-$([[ $2 -eq 124 || $2 -eq 137 ]] && echo "timed out" || echo "failed (exit $2)")}
        FAILED=$((FAILED + 1))
    fi
    echo "=== $1: $status, $3 s" | tee -a "$LOG"
    STEPS_JSON+=("{\"step\": \"$1\", \"status\": \"$status\", \"seconds\": $3}")
}

# Seconds left of CHECK_SECONDS, less 20 for the report.
time_left() { echo $((CHECK_SECONDS - SECONDS - 20)); }

# step NAME LIMIT_S COMMAND...: run COMMAND under a time limit (cut to the time left), its output
# appended to the log.
step() {
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    limit=$((limit < $(time_left) ? limit : $(time_left)))
    if [[ $limit -lt 10 ]]; then
        record "$name" 1 0 'not run (out of time)'
        return 1
    fi
    echo "=== $name (limit ${limit} s): $*" | tee -a "$LOG"
    # bash -c: the command may be one of the functions below (exported)
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >>"$LOG" 2>&1
    rc=$?
    record "$name" $rc $((SECONDS - start))
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

# mmcv's wheel with CUDA ops, through the same script as `make setup`; prints its path last.
build_mmcv_wheel() {
    PY=$PY MMCONVNEXT_CACHE=$MMCV_CACHE "$ROOT/tools/build_mmcv.sh" --log "$BUILD_LOG"
}

# Which compiler and link command give a working extension on this machine (each compiler torch
# or the system names, and every g++ / clang++ on PATH, probed with and without -Bsymbolic*).
toolchain() {
    PYTHONPATH=$ROOT/tools:$PYTHONPATH "$PY" -m stack_setup.cxx_toolchain diagnose \
        --work /tmp/mmconvnext-toolchain --also $(compgen -c | grep -E '^(g|clang)\+\+(-[0-9]+)?$' | sort -u)
}

# The wheel's calls, each its own check in a fresh process: the same check as make setup's.
check_mmcv_wheel() {
    PY=$PY MMCONVNEXT_CACHE=$MMCV_CACHE "$ROOT/tools/build_mmcv.sh" --check
}

# mmcv's checked wheel installed over mmcv's Python part (make setup installs it the same way).
install_mmcv() {
    local wheel
    wheel=$(ls "$(PY=$PY MMCONVNEXT_CACHE=$MMCV_CACHE "$ROOT/tools/build_mmcv.sh" \
                  --cache-dir)"/mmcv-*.whl) || return
    "$PY" -m pip install -q --no-deps --no-compile --upgrade --target "$SITE" "$wheel"
}

pytest_cuda() {  # pytest -m cuda on the given test files
    "$PY" -m pytest -m cuda -p no:cacheprovider "$@"
}

# train_benchmark NAME CONFIG PEER...: the training step side by side, profiled, to train-NAME.json
train_benchmark() {
    local name=$1
    shift
    "$PY" tools/analysis/benchmark_train.py "$@" --device cuda --profile \
        --json "$OUT/train-$name.json"
}

export ROOT OUT PY WHEELS SITE BUILD_LOG MMCV_CACHE
export -f environment toolchain install_stack build_mmcv_wheel check_mmcv_wheel install_mmcv \
    pytest_cuda train_benchmark
step environment 60 environment
step install 300 install_stack

BUILD_PID=''
limit=$(($(time_left) - 60))  # a minute at least stays for tier 2's tests
if [[ $TIER == all && $limit -ge 60 ]]; then  # compile beside tier 1: two cores stay for it
    BUILD_START=$SECONDS
    echo "=== mmcv-build (background, limit $limit s): build_mmcv_wheel" | tee -a "$LOG"
    cores=$(nproc)
    MAX_JOBS=$((cores > 4 ? cores - 2 : cores)) timeout --kill-after=10 "$limit" \
        nice -n 10 bash -c build_mmcv_wheel >"$OUT/mmcv-build.out" 2>&1 &
    BUILD_PID=$!
fi
# beside the build (the probes run side by side; the build's own probe took 30-40 s on the H200)
step toolchain 120 toolchain
if [[ $TIER == 1 || $TIER == all ]]; then
    step tier1-tests 300 pytest_cuda tests/test_cuda_backbone.py tests/test_half_precision.py \
        tests/test_cuda_benchmark.py
    # with tier 2 to come, its check, install and tests keep 200 s (the benchmark writes its JSON
    # after every case, so a cut one keeps what it measured)
    bench_limit=300
    [[ $TIER == 1 ]] || bench_limit=$(($(time_left) - 200 < 300 ? $(time_left) - 200 : 300))
    # shellcheck disable=SC2086  # a list of arguments
    step benchmark $bench_limit "$PY" tools/analysis/benchmark_backbone.py --device cuda \
        --json "$OUT/benchmark.json" $BENCHMARK_ARGS
fi
if [[ $TIER == 2 || $TIER == 3 || $TIER == all ]]; then
    if [[ -n $BUILD_PID ]]; then
        wait "$BUILD_PID"
        rc=$?
        cat "$OUT/mmcv-build.out" >>"$LOG"
        rm -f "$OUT/mmcv-build.out"
        record mmcv-build $rc $((SECONDS - BUILD_START))
    else
        MAX_JOBS=$(nproc)
        export MAX_JOBS
        step mmcv-build 480 build_mmcv_wheel
        rc=$?
    fi
    # build_mmcv.sh checked the wheel before caching it; checked again here, each call its own
    # step of the report, from the state tier 2 will import it in
    if [[ $rc -eq 0 ]]; then
        step mmcv-check 180 check_mmcv_wheel
        rc=$?
        # each call of the check as a step of its own: "  nms on cuda: ok (kept boxes [0, 2])"
        while IFS= read -r line; do
            call=${line#  } && call=${call%%: *} && result=${line#*: } && result=${result//\"/\'}
            [[ ${result%% *} == failed ]] && call_rc=1 || call_rc=0
            record "mmcv-check/${call// /-}" $call_rc 0 "$result"
        done < <(sed -n '/^=== mmcv-check (/,/^=== mmcv-check: /p' "$LOG" |
                 grep -E '^  [^ ].*: (ok|skipped|failed) \(')
    fi
    installed=0
    [[ $rc -eq 0 ]] && step mmcv-install 120 install_mmcv && installed=1
    if [[ $TIER != 3 && $installed == 1 ]]; then
        step tier2-tests 300 pytest_cuda tests/test_cuda_training.py tests/test_benchmark_train.py
    elif [[ $TIER != 3 ]]; then
        record tier2-tests 1 0 'not run (no mmcv wheel that passed its check)'
    fi
    # tier 3: each paper config against mmdet's / mmseg's own, ours with timm's ConvNeXt, and
    # our variants (the levers of a faster step, measured before any becomes a default)
    cascade=configs/cascade_convnext_t.py mask_rcnn=configs/mask_rcnn_convnext_t.py
    upernet=configs/upernet_convnext_t.py
    fused=@optim_wrapper.optimizer.fused=True bf16=@optim_wrapper.dtype=bfloat16
    if [[ $installed == 1 && ($TIER == 3 || ($TIER == all && $(time_left) -ge 400)) ]]; then
        step train-cascade-t 180 train_benchmark cascade-t $cascade \
            mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py \
            timm:$cascade $cascade$fused $cascade$bf16$fused
        step train-mask-rcnn-t 120 train_benchmark mask-rcnn-t $mask_rcnn \
            mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py \
            timm:$mask_rcnn $mask_rcnn$bf16$fused
        step train-upernet-t 120 train_benchmark upernet-t $upernet \
            mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py \
            timm:$upernet $upernet$fused $upernet$bf16$fused
    elif [[ $TIER == 3 ]]; then
        record train-benchmarks 1 0 'not run (no mmcv wheel that passed its check)'
    fi
    if [[ -f $BUILD_LOG ]]; then
        tail -c 4M "$BUILD_LOG" >"$OUT/mmcv-build.log"
        rm "$BUILD_LOG"
    fi
fi

# --- the report --------------------------------------------------------------------------------
{
    echo "mmconvnext device check ($(date -u '+%Y-%m-%d %H:%M UTC'), tier $TIER, commit" \
         "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    grep -A8 '^=== environment (' "$LOG" | grep -v '^=== '
    echo
    grep -E '^=== [a-z0-9/_.()-]+: ' "$LOG"
    echo
    # the compilers and link commands probed, the one mmcv was built with, the wheel's check
    grep -E '^toolchain: |^build_mmcv: (C\+\+ compiler|not used|linking without|note)|^mmcv wheel check: ' "$LOG"
    echo
    grep -E '^(FAILED|ERROR|SKIPPED) |^=+ .*(passed|failed|error).* =+$' "$LOG"
    echo
    sed -n '/^| case /,/^=== /p' "$LOG" | grep -E '^\||^$|^OWN_PATH'
    # the training step tables and profiles (tier 3)
    sed -n '/^=== train-[a-z-]* (limit/,/^=== train-[a-z-]*: /p' "$LOG" |
        grep -E '^\||^profile of |^device busy |^the profiler saw|torch .*; (detection|segmentation), |^=== train-'
} >"$OUT/report.txt"
printf '{"tier": "%s", "failed_steps": %d, "steps": [%s]}\n' "$TIER" "$FAILED" \
    "$(IFS=,; echo "${STEPS_JSON[*]}")" >"$OUT/report.json"
cat "$OUT/report.txt"
exit $((FAILED > 0))
