#!/usr/bin/env bash
# The GPU checks as one prepared run, for a session lent a machine with an NVIDIA GPU whose
# Python (3.12) already holds torch but not this service's other packages, and which cannot
# download anything. Two steps:
#
#   bench/gpu.sh wheels   here: download the missing packages as wheels into .whl/ (ignored)
#   bench/gpu.sh run      there, with .whl carried: install them into /tmp/site, then run the
#                         CUDA tests and the fused bench on cuda (the issue's 20x), each log
#                         written to $OUT (or ./gpu-out) as it goes
#
# The versions are the ones this repository's .venv was tested with. Prepared on a machine
# without a GPU: the wheels step and the install were tried there (Python 3.12), the run step
# not yet on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(
    fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 httptools==0.9.0
    pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4
    annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
    sqlalchemy==2.1.9 greenlet==3.5.6 alembic==1.20.1 mako==1.4.3
    psycopg==3.3.9 psycopg-binary==3.3.9 orjson==3.13.0 python-multipart==0.0.34
    optuna==5.0.0 colorlog==6.12.0 opentelemetry-api==1.45.2
)

wheels() {
    rm -rf .whl && mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
    du -sh .whl
    echo "now: run bench/gpu.sh run on the device, with .whl in carry"
}

run() {
    local out="${OUT:-gpu-out}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
    python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' \
        | tee -a "$out/gpu.txt"
    # The CUDA path's tests (about a minute), then the issue's bench on cuda: the 64 spiral
    # configurations fused against SERVICE_FUSE_MAX_JOBS=1, and compiled.
    python3 -m pytest -q -p no:cacheprovider tests/integration/test_cuda.py 2>&1 \
        | tee "$out/test_cuda.txt" || true
    python3 bench/fused_vs_sequential.py --device cuda --compile --only spiral 2>&1 \
        | tee "$out/fused_spiral.txt" || true
    python3 bench/fused_vs_sequential.py --device cuda --only simplenn 2>&1 \
        | tee "$out/fused_simplenn.txt" || true
}

case "${1:-}" in
    wheels) wheels ;;
    run) run ;;
    *) echo "usage: bench/gpu.sh wheels|run" >&2; exit 2 ;;
esac
