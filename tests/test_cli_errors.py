"""The command line's own contract: a version, and settings mistakes told in one line."""

import subprocess
import sys

import pytest


def _earful(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "earful.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_version_names_earful_and_its_default_model():
    from earful import __version__

    r = _earful("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"earful {__version__}")


@pytest.mark.parametrize("flags, env, message", [
    (["--max-posts", "0"], {}, "EARFUL_MAX_POSTS=0 must be at least 1"),
    ([], {"EARFUL_MAX_LATENCY_MS": "soon"}, "EARFUL_MAX_LATENCY_MS='soon' is not an integer"),
    (["--api-key-file", "/nonexistent/key"], {}, "EARFUL_API_KEY_FILE=/nonexistent/key: no such file"),
])
def test_serve_settings_mistakes_are_one_line_before_anything_starts(tiny_bundle, flags, env, message):
    r = _earful("serve", "--bundle", str(tiny_bundle), "--port", "1", *flags, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == f"earful serve: error: {message}"
