"""The command line's own contract: a version, settings mistakes told in one line, Ctrl-C without a traceback."""

import subprocess
import sys

import pytest


def _earful(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "earful.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_version_names_earful_and_its_default_model():
    from earful import __version__

    r = _earful("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"earful {__version__}")


@pytest.mark.parametrize(
    "flags, env, message",
    [
        (["--max-posts", "0"], {}, "EARFUL_MAX_POSTS=0 must be at least 1"),
        ([], {"EARFUL_MAX_LATENCY_MS": "soon"}, "EARFUL_MAX_LATENCY_MS='soon' is not an integer"),
        (["--api-key-file", "/nonexistent/key"], {}, "EARFUL_API_KEY_FILE=/nonexistent/key: no such file"),
    ],
)
def test_serve_settings_mistakes_are_one_line_before_anything_starts(tiny_bundle, flags, env, message):
    r = _earful("serve", "--bundle", str(tiny_bundle), "--port", "1", *flags, env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == f"earful serve: error: {message}"


def test_ctrl_c_ends_with_one_line_and_status_130(tiny_bundle):
    import os
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "earful.cli", "classify", "-", "--bundle", str(tiny_bundle), "--chunk-size", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ,
        # as from a terminal: a shell's background job (CI started with `&` or nohup) inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdin.write(b'{"text": "first post"}\n')
    proc.stdin.flush()
    assert proc.stdout.readline()  # answered: the command now waits on stdin for the next post
    proc.send_signal(signal.SIGINT)
    # stdin stays open until the process has ended, so an end of input cannot end it first
    proc.wait(timeout=60)
    err = proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 130
    assert err.decode().strip().splitlines()[-1] == "earful: interrupted" and "Traceback" not in err.decode()
