#!/usr/bin/env bash
# Install the project with its test extra and run the default test suite (the README's test command).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` or `scripts/test.sh tests/graph`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-system-packages.sh  # Chromium for the browser tests
# The project with the test and llm extras, as the README's first command installs it: llama-cpp-python
# is compiled once per machine and flags into a wheel folder of its own (scripts/install.sh says why),
# and the embedded LLM is checked with one short reply.
./scripts/install.sh test
python -m ruff check .
lint-imports --no-cache >/dev/null || lint-imports --no-cache   # the layer contract in pyproject.toml: quiet when kept, the report when broken
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m pytest "$@"
