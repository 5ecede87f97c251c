#!/usr/bin/env bash
# Builds mmcv 2.1.0's wheel with its compiled ops for the torch of $PY, from mmcv's source release
# (no wheel exists for current torch), and caches it; `make setup` and tools/device_check.sh both
# build mmcv through this script.
#
#   tools/build_mmcv.sh --cache-dir     prints the cache folder of the wheel this machine needs
#   tools/build_mmcv.sh [--log FILE]    builds it there unless it is cached; prints the wheel's path
#                                       last (progress to stdout; the compiler's output to FILE,
#                                       default $MMCONVNEXT_CACHE/logs/<the wheel's folder>.log)
#   tools/build_mmcv.sh --check         checks the cached wheel this machine needs; the last line
#                                       starts 'mmcv wheel check: ok' or '... FAILED' (exit 1; a
#                                       cached wheel that fails is moved out of the cache)
#
# One C++ compiler builds every object, the precompiled header and the link: the one torch's
# extension builder uses ($CXX, else c++), after a probe extension built and called the same way
# works, else the system c++ (tools/stack_setup/cxx_toolchain.py). Every built wheel is checked in
# a fresh process before it is cached (tools/stack_setup/mmcv_wheel_check.py): import, the info
# calls, one op per device built for, an op given a bad input; one that fails is not cached.
#
# CPU or CUDA ops:
#   FORCE_CUDA=1          CUDA ops (torch must be a CUDA build); FORCE_CUDA=0: CPU ops.
#   (unset)               CUDA ops when torch is a CUDA build and sees a GPU, else CPU ops.
#   TORCH_CUDA_ARCH_LIST  GPU architectures, e.g. '9.0' (H100 / H200) or '8.0;9.0'; default: the
#                         visible GPUs' compute capabilities. With FORCE_CUDA=1 and no GPU: required.
# The CUDA compiler: a toolkit whose nvcc has torch's CUDA major version ($CUDA_HOME, the nvcc on
# PATH, /usr/local/cuda, in that order); with none, or MMCONVNEXT_CUDA_TOOLKIT=pypi, PyPI's
# compiler packages of torch's CUDA version (nvidia-cuda-nvcc, -crt, -cccl, nvidia-nvvm; CUDA >= 13)
# are installed beside torch's own CUDA packages, which then form the toolkit.
#
# Other environment: PY (default .venv/bin/python), MMCONVNEXT_CACHE (default
# ~/.cache/mmconvnext), MAX_JOBS (parallel compiles, default: the CPU count). The cache key holds
# the mmcv, torch and Python versions, and 'cpu' or cuXY plus the architectures ('cu130-sm90').
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
# an absolute path (the build runs in mmcv's source folder); a venv's python stays its link
[[ $PY != */* ]] || PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
MMCV_VERSION=2.1.0
CACHE=${MMCONVNEXT_CACHE:-$HOME/.cache/mmconvnext}
PIP=("$PY" -m pip --disable-pip-version-check -q)

BUILD_INFO=build-info.json  # beside each cached wheel: its compiler, flags and link command

die() { echo "build_mmcv: $*" >&2; exit 1; }
stack_setup() {  # stack_setup MODULE ARGS...: tools/stack_setup/MODULE.py with $PY
    PYTHONPATH="$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m "stack_setup.$1" "${@:2}"
}

# --- what to build: torch's version, CPU or CUDA ops, the architectures --------------------------
read -r TORCH_VER PY_TAG TORCH_CUDA ARCHS < <("$PY" - 2>/dev/null <<'PYEOF' || echo error
import os, sys
import torch
force, cuda = os.getenv('FORCE_CUDA'), torch.version.cuda
archs = os.getenv('TORCH_CUDA_ARCH_LIST', '').strip()
if force == '1' and not cuda:
    archs = 'cpu-torch'  # reported below
elif force == '1' or (force != '0' and cuda and torch.cuda.is_available()):
    if not archs and torch.cuda.is_available():
        archs = ';'.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                                 for i in range(torch.cuda.device_count())}))
    archs = archs or 'none'
else:
    cuda, archs = 'cpu', '-'
print(torch.__version__.split('+')[0], f'cp{sys.version_info.major}{sys.version_info.minor}',
      cuda, archs.replace(' ', ';'))
PYEOF
)
[[ $TORCH_VER != error ]] || die "$PY cannot import torch"
case $ARCHS in
    cpu-torch) die "FORCE_CUDA=1, but torch $TORCH_VER in $PY is a CPU build" ;;
    none) die "FORCE_CUDA=1 and no GPU is visible: set TORCH_CUDA_ARCH_LIST, e.g. 9.0 for H100 / H200" ;;
esac
if [[ $TORCH_CUDA == cpu && -n ${TORCH_CUDA_ARCH_LIST:-} ]]; then
    echo "build_mmcv: note: CPU ops (no GPU visible, or FORCE_CUDA=0), so TORCH_CUDA_ARCH_LIST" \
         "is not used; FORCE_CUDA=1 builds CUDA ops without a GPU" >&2
fi
if [[ $TORCH_CUDA == cpu ]]; then
    OPS=cpu
else  # cu130-sm90, cu130-sm80-sm90+PTX
    OPS=cu${TORCH_CUDA//./}-$(tr ';,' '--' <<<"$ARCHS" | sed -e 's/\.//g' -e 's/\(^\|-\)\([0-9]\)/\1sm\2/g')
fi
WHEEL_DIR=$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VER-$PY_TAG-$OPS

# check_wheel WHEEL [BUILD_INFO]: the wheel's calls in a fresh process (stack_setup/mmcv_wheel_check.py)
check_wheel() {
    local cuda=()
    [[ $OPS == cpu ]] || cuda=(--cuda)
    stack_setup mmcv_wheel_check "$1" "${cuda[@]}" --build-info "${2:-$(dirname "$1")/$BUILD_INFO}"
}

# --check: the cached wheel this machine needs, checked; one that fails leaves the cache.
check_cached_wheel() {
    local wheel report status=0
    wheel=$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -1) || true
    if [[ -z $wheel ]]; then
        echo "mmcv wheel check: FAILED: no wheel in $WHEEL_DIR (make setup builds it)"
        return 1
    fi
    report=$(check_wheel "$wheel") || status=$?
    if [[ $status -ne 0 ]]; then
        mkdir -p "$CACHE/rejected"
        rm -rf "$CACHE/rejected/$(basename "$WHEEL_DIR")"
        mv "$WHEEL_DIR" "$CACHE/rejected/"
        echo "build_mmcv: the cached wheel failed its check: moved to $CACHE/rejected/ (the next" \
             "build_mmcv.sh or make setup builds it again)" >&2
    fi
    echo "$report"
    return $status
}

LOG=$CACHE/logs/$(basename "$WHEEL_DIR").log
case ${1:-} in
    --cache-dir) echo "$WHEEL_DIR"; exit 0 ;;
    --check) check_cached_wheel; exit ;;
    --log) LOG=${2:?--log FILE}; shift 2 ;;
    '') ;;
    *) die "unknown argument '$1' (usage: $0 [--cache-dir | --check | --log FILE])" ;;
esac
if ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    ls "$WHEEL_DIR"/mmcv-*.whl | head -1
    exit 0
fi
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"; jobs -p | xargs -r kill 2>/dev/null' EXIT

# --- the CUDA toolkit ------------------------------------------------------------------------------
# Prints the first installed toolkit whose nvcc has torch's CUDA major version, or nothing.
find_cuda_toolkit() {
    local home release nvcc
    local candidates=("${CUDA_HOME:-}")
    if nvcc=$(command -v nvcc); then  # /usr/local/bin/nvcc may be a wrapper: ask nvcc itself
        candidates+=("$(dirname "$(dirname "$(readlink -f "$nvcc")")")")
    fi
    candidates+=(/usr/local/cuda)
    for home in "${candidates[@]}"; do
        [[ -n $home && -x $home/bin/nvcc && -f $home/include/cuda_runtime.h ]] || continue
        release=$("$home/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
        if [[ ${release%%.*} == "${TORCH_CUDA%%.*}" ]]; then
            echo "$home"
            return
        fi
        echo "build_mmcv: $home has CUDA $release, torch $TORCH_VER is built with" \
             "$TORCH_CUDA: not used" >&2
    done
}

# torch's CUDA packages from PyPI (CUDA >= 13) share one folder, site-packages/nvidia/cuXY, with
# the runtime, cuBLAS, cuSPARSE, cuSOLVER headers and libraries; prints it, or nothing.
torch_cuda_packages() {
    "$PY" - "${TORCH_CUDA%%.*}" <<'PYEOF'
import os, sys
import nvidia  # namespace package of NVIDIA's wheels
for path in nvidia.__path__:
    home = os.path.join(path, f'cu{sys.argv[1]}')
    if os.path.isfile(os.path.join(home, 'include', 'cuda_runtime.h')):
        print(home)
        break
PYEOF
}

# Installs PyPI's CUDA compiler packages of torch's CUDA version beside torch's CUDA packages;
# prints the folder that then holds a whole toolkit.
install_pypi_toolkit() {
    local version=$TORCH_CUDA home
    [[ ${version%%.*} -ge 13 ]] || die "no CUDA ${version%%.*}.x toolkit found, and PyPI's" \
        "compiler packages are used from CUDA 13 on: install CUDA $version and set CUDA_HOME"
    echo "build_mmcv: installing CUDA $version's compiler from PyPI into $PY's site-packages" >&2
    "${PIP[@]}" install "nvidia-cuda-nvcc==$version.*" "nvidia-cuda-crt==$version.*" \
        "nvidia-cuda-cccl==$version.*" "nvidia-nvvm==$version.*" "nvidia-cuda-runtime==$version.*"
    home=$(torch_cuda_packages 2>/dev/null) || true
    [[ -n $home && -x $home/bin/nvcc ]] || die "PyPI's CUDA $version compiler packages did not" \
        "install nvcc beside torch's CUDA packages (site-packages/nvidia/cu${version%%.*})"
    # Patch: the runtime wheel ships only libcudart.so.13 under lib/; torch links extensions with
    # -L$CUDA_HOME/lib64 -lcudart, which needs an unversioned libcudart.so.
    [[ -e $home/lib64 ]] || ln -s lib "$home/lib64"
    [[ -e $home/lib/libcudart.so ]] || ln -s "$(basename "$(ls "$home"/lib/libcudart.so.* | head -1)")" \
        "$home/lib/libcudart.so"
    echo "$home"
}

if [[ $TORCH_CUDA != cpu ]]; then
    toolkit=''
    [[ ${MMCONVNEXT_CUDA_TOOLKIT:-auto} == pypi ]] || toolkit=$(find_cuda_toolkit)
    if [[ -z $toolkit ]]; then
        toolkit=$(install_pypi_toolkit)
    elif [[ ! -f $toolkit/include/cublas_v2.h ]]; then
        # A compiler-only toolkit: the library headers torch's CUDA headers include (cuBLAS,
        # cuSPARSE, cuSOLVER) come from torch's own CUDA packages (torch reads CUDA_INC_PATH).
        CUDA_INC_PATH=$(torch_cuda_packages 2>/dev/null)/include || true
        [[ -f $CUDA_INC_PATH/cublas_v2.h ]] || die "$toolkit has no cublas_v2.h, and torch's" \
            "CUDA packages have none either: install CUDA's cuBLAS headers"
        export CUDA_INC_PATH
    fi
    export CUDA_HOME=$toolkit TORCH_CUDA_ARCH_LIST=$ARCHS FORCE_CUDA=1
    echo "build_mmcv: CUDA ops for architectures $ARCHS with $("$toolkit/bin/nvcc" --version |
        sed -n 's/.*\(release [0-9.]*\).*/\1/p') in $toolkit" >&2
else
    export FORCE_CUDA=0
fi

# --- mmcv's source, patched where it must be -------------------------------------------------------
# No build isolation: its fresh setuptools (>= 82) lacks the pkg_resources mmcv's setup.py imports.
"${PIP[@]}" download --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" \
    -d "$BUILD" >>"$LOG" 2>&1
tar -xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
SRC=$BUILD/mmcv-$MMCV_VERSION
# Patch: torch >= 2.13 headers need C++20; mmcv 2.1.0's setup.py hard-codes C++14 / C++17 for the
# C++ and the nvcc compiles alike.
STD=c++17
if "$PY" -c "import torch, sys; sys.exit(tuple(map(int, torch.__version__.split('.')[:2])) < (2, 13))"; then
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    STD=c++20
fi

# --- the C++ toolchain: one compiler for every object, the precompiled header and the link --------
# $CFLAGS replaces Python's CFLAGS for the extension: keep them (-O3, -DNDEBUG, ...), add ours.
# No debug info (-g0): Python's own CFLAGS, which extensions inherit, carry -g; debug info of files
# this template-heavy doubled the compile time here (roi_align.cpp 33 s -> 19 s).
PYTHON_CFLAGS="$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS'))") -g0"
NVCC=()
[[ $TORCH_CUDA == cpu ]] || NVCC=(--nvcc "$CUDA_HOME/bin/nvcc")
# CXX, CXX_VERSION, LDSHARED: torch's compiler, probed (tools/stack_setup/cxx_toolchain.py)
TOOLCHAIN=$(CFLAGS=$PYTHON_CFLAGS stack_setup cxx_toolchain choose --work "$BUILD/toolchain" \
                --std "$STD" "${NVCC[@]}") || die "no C++ compiler to build mmcv with (above)"
eval "$TOOLCHAIN"
# CXX compiles (torch's builder) and links (setuptools); CC is nvcc's host compiler (torch's -ccbin)
export CXX CC=$CXX LDSHARED LDCXXSHARED=$LDSHARED
echo "build_mmcv: C++ compiler: $CXX ($CXX_VERSION) at $(command -v "${CXX%% *}"), for every" \
     "object${NVCC:+ (and as the -ccbin of nvcc)}, the precompiled header and the link ($LDSHARED)" >&2

# A precompiled <torch/types.h>, the header every op includes: parsing it is most of each file's
# compile time (19 s of roi_align.cpp's 21 s here; 5 s with the precompiled header). Built by the
# compiler above with the flags the extension's C++ files get, and checked to be used by it
# (gcc uses it only where the flags match, -Winvalid-pch reports a mismatch, and the file then
# compiles as usual). GCC only: where a macro's definition differs between the header and a file,
# clang stops with an error instead of parsing the header (not tried with mmcv's files).
PCH_DIR=$BUILD/precompiled
mkdir -p "$PCH_DIR"
echo '#include <torch/types.h>' >"$PCH_DIR/torch_types.h"
PCH_FLAGS=''
INCLUDES=$("$PY" - <<'PYEOF'
import sysconfig
from torch.utils.cpp_extension import include_paths
print(' '.join([sysconfig.get_config_var('CCSHARED')] + [f'-I{path}' for path in include_paths()]
               + [f'-I{sysconfig.get_paths()["include"]}']))
PYEOF
)
if [[ $CXX_VERSION == *clang* ]]; then
    echo "build_mmcv: note: no precompiled header with clang (a mismatch would stop its build)" >&2
# shellcheck disable=SC2086  # lists of flags
elif stack_setup cxx_toolchain pch --cxx "$CXX" --header "$PCH_DIR/torch_types.h" -- \
        $PYTHON_CFLAGS $INCLUDES -std=$STD -DTORCH_API_INCLUDE_EXTENSION_H \
        -DTORCH_EXTENSION_NAME=_ext -w; then
    PCH_FLAGS="-include $PCH_DIR/torch_types.h -Winvalid-pch"
else
    echo "build_mmcv: note: building without the precompiled header (above)" >&2
fi

# Prints "compiled N/M objects" every 20 s: the objects ninja has written under the build folder,
# of those its build.ninja lists (ninja's own [N/M] lines reach the log only in blocks).
show_progress() {
    local start=$SECONDS last='' ninja total done
    while sleep 20; do
        ninja=$(find "$SRC/build" -name build.ninja 2>/dev/null | head -1)
        [[ -n $ninja ]] || continue
        total=$(grep -c '^build .*\.o:' "$ninja") || true
        done=$(find "$(dirname "$ninja")" -name '*.o' | wc -l)
        if [[ "$done/$total" != "$last" ]]; then
            echo "build_mmcv: compiled $done/$total objects, $((SECONDS - start)) s"
            last="$done/$total"
        fi
    done
}
show_progress &

(cd "$SRC" && CFLAGS="$PYTHON_CFLAGS $PCH_FLAGS" \
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip --disable-pip-version-check -v \
    wheel --no-build-isolation --no-deps -w "$BUILD/dist" .) >>"$LOG" 2>&1 \
    || die "the build failed; end of its log ($LOG):$(echo; tail -40 "$LOG")"
if grep -q '\[-Winvalid-pch\]' "$LOG"; then
    echo "build_mmcv: note: the precompiled torch header did not match some files' flags (they" \
         "compiled without it): see $LOG" >&2
fi

# --- the wheel, checked in a fresh process before it is cached -------------------------------------
WHEEL=$(ls "$BUILD"/dist/mmcv-*.whl)
"$PY" -c 'import json, sys
keys = ("cxx", "cxx_version", "cflags", "ldshared", "ops")
json.dump(dict(zip(keys, sys.argv[2:])), open(sys.argv[1], "w"), indent=1)' \
    "$BUILD/dist/$BUILD_INFO" "$CXX" "$CXX_VERSION" "$PYTHON_CFLAGS $PCH_FLAGS" "$LDSHARED" "$OPS"
echo "build_mmcv: checking the wheel in a fresh process" >&2
check_wheel "$WHEEL" "$BUILD/dist/$BUILD_INFO" >&2 || die "the wheel failed its check (above): not cached"
mkdir -p "$WHEEL_DIR"
mv "$WHEEL" "$BUILD/dist/$BUILD_INFO" "$WHEEL_DIR"/
ls "$WHEEL_DIR"/mmcv-*.whl
