#!/usr/bin/env bash
# System packages the tests need: Debian's Chromium for the browser tests (Playwright drives it;
# Playwright's own browser download does not work offline). Idempotent; skips what is installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
