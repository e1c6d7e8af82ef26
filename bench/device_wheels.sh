#!/usr/bin/env bash
# Wheels for a GPU machine whose Python (3.12, with torch, timm, transformers, h5py, opencv and the rest
# already there) lacks some of the product's packages: the first H100 run found no ultralytics,
# albumentations, PyAV, isal or pydantic. Run it here, where the package registries answer, before the
# device run; it writes .whl/ (ignored by git, ~45 MB), at the versions this checkout's .venv tested.
#
#   bench/device_wheels.sh [FOLDER]     # default .whl
#
# bench/device.sh installs FOLDER's wheels (under /tmp/site, on PYTHONPATH) before its steps when .whl/
# is there, so the device command is `bench/device.sh` with `.whl` carried beside the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-.whl}
# The packages the image lacks, and what they need that it lacks too (install is --no-deps).
PACKAGES=(ultralytics ultralytics-thop albumentations albucore simsimd stringzilla av isal pydantic
    pydantic-core annotated-types typing-inspection)
mapfile -t PINS < <("$PY" - "${PACKAGES[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"bench/device_wheels.sh: {name} is not installed in this environment; run make setup")
EOF
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$OUT" "${PINS[@]}"
echo "$(du -sh "$OUT" | cut -f1) of wheels in $OUT: ${PINS[*]}" >&2
