#!/usr/bin/env bash
# Downloads what tools/device_check.sh installs on a GPU machine without a package registry: the
# wheels (for its Python, default 3.12, manylinux x86-64) of the packages our stack needs beyond
# what a CUDA PyTorch image holds (torch, torchvision, timm, scipy, matplotlib, opencv, pytest,
# ...), at the versions of this checkout's .venv (the ones `make test` passes with), and mmcv's
# source release (built there by tools/build_mmcv.sh).
#
#   tools/device_wheels.sh [DIR]    default DIR: .device-wheels (git-ignored); prints its size
#
# Environment: PY (default .venv/bin/python, whose versions are pinned), PYTHON_VERSION (3.12).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.device-wheels}
PY=${PY:-$ROOT/.venv/bin/python}
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
# The OpenMMLab stack and what it imports that such an image lacks; numpy, transformers,
# tokenizers, huggingface-hub at our versions (mmcv 2.1 is untested with numpy >= 2.4, mmpretrain
# 1.2 imports transformers internals removed in 4.52); setuptools < 82 for mmcv's build.
PACKAGES=(mmengine mmdet mmsegmentation mmpretrain pycocotools terminaltables shapely addict yapf
          platformdirs termcolor prettytable wcwidth ftfy mat4py modelindex model-index
          ordered-set importlib-metadata lazy-importer transformers tokenizers huggingface-hub numpy setuptools)
# manylinux tags pip must be told one by one (it matches N of manylinux_2_N exactly).
PLATFORMS=()
for n in 17 27 28 31 34; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

mkdir -p "$DIR"
rm -f "$DIR"/*.whl "$DIR"/*.tar.gz
pins=$("$PY" - "${PACKAGES[@]}" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
missing = []
for name in sys.argv[1:]:
    try:
        print(f'{name}=={version(name)}')
    except PackageNotFoundError:
        missing.append(name)
if missing:
    sys.exit(f'device_wheels: not installed in this venv: {" ".join(missing)} (make setup first)')
PYEOF
)
# shellcheck disable=SC2086  # one pin per word
"$PY" -m pip --disable-pip-version-check download -q --no-deps --only-binary=:all: \
    --python-version "$PYTHON_VERSION" --implementation cp "${PLATFORMS[@]}" -d "$DIR" $pins
"$PY" -m pip --disable-pip-version-check download -q --no-deps --no-binary=:all: \
    -d "$DIR" "mmcv==$("$PY" -c 'import mmcv; print(mmcv.__version__)')"
echo "device_wheels: $(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1) in $DIR"
