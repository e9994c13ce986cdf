#!/usr/bin/env bash
# Install the project with its test extra and run the default test suite (the README's test command).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` or `scripts/test.sh tests/graph`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-system-packages.sh  # Chromium for the browser tests
python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
python -m pip install --quiet "torch==2.13.0"   # the CPU wheel; never let a resolver pick a CUDA build
# llm extra: llama-cpp-python compiles from source the first time (~8 min on 2 cores); pip caches the wheel.
# Without AMX: on a CPU with AMX, -march=native compiled llama.cpp's AMX kernels, and SmolLM2 then
# printed garbage and crashed (SIGSEGV in llama_decode) on its first chat reply.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_CURL=OFF \"-DCMAKE_C_FLAGS=$NO_AMX\" \"-DCMAKE_CXX_FLAGS=$NO_AMX\"}" \
  python -m pip install --quiet -e ".[test,llm]"
python -m ruff check .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m pytest "$@"
