"""``scripts/install.sh`` (the README's first command): the llama-cpp-python wheel's folder is keyed
by everything that shapes the compiled library, so a wheel built with other flags is never reused."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install.sh"


def wheel_dir(tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"} | {"QA_WHEELHOUSE": str(tmp_path)} | env
    out = subprocess.run(["bash", str(SCRIPT), "--print-wheel-dir"], env=environ, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


def test_wheel_folder_is_keyed_by_version_and_flags(tmp_path):
    pinned = re.search(r'"llama-cpp-python\[server\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    default = wheel_dir(tmp_path)
    assert default.startswith(f"{tmp_path}/llama-cpp-python-{pinned}-") and not Path(default).exists()  # nothing built
    assert wheel_dir(tmp_path) == default  # stable: the next run finds the wheel
    other = wheel_dir(tmp_path, CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF")  # e.g. with AMX kernels
    portable = wheel_dir(tmp_path, CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF")
    assert len({default, other, portable}) == 3


def test_the_default_flags_leave_out_amx():
    text = SCRIPT.read_text()
    assert "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in text and "--no-cache-dir" in text and "--no-binary llama-cpp-python" in text
