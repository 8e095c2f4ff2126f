"""The glibc allocator tuning that `cyclegen run` applies on CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

SNIPPET = "from cyclegen.allocator import keep_freed_memory; print(keep_freed_memory())"


def tuned(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_allocator_is_tuned_on_linux_and_can_be_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "CYCLEGEN_MALLOC"}
    assert tuned(env) == "True"  # glibc accepted both settings
    assert tuned({**env, "CYCLEGEN_MALLOC": "default"}) == "False"
