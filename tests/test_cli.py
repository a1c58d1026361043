"""The `earful` command as a user runs it: real subprocesses, JSON out, clear errors."""

import json
import os
import subprocess
import sys

import pytest

EARFUL = [sys.executable, "-m", "earful.cli"]


def run(args, stdin=None, env=None):
    return subprocess.run(
        EARFUL + args, input=stdin, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_classify_one_text(tiny_bundle):
    r = run(["classify", "I was charged twice for my order", "--bundle", str(tiny_bundle)])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"complaint_type", "sentiment", "troll", "lang"} <= set(out)
    assert out["complaint_type"]["label"] in ("order_error", "product", "poor_service", "none")


def test_classify_stdin_jsonl_and_plain_lines(tiny_bundle):
    lines = [
        json.dumps({"id": "a", "text": "my parcel is lost"}),
        "plain text line",
        "",
        json.dumps({"id": "c", "text": "hola", "lang": "es"}),
        json.dumps({"id": "d", "text": ""}),
    ]
    r = run(["classify", "-", "--bundle", str(tiny_bundle), "--batch-size", "2"], stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["a", None, "c", "d"]
    assert out[2]["lang"] == {"code": "es", "confidence": 1.0, "source": "hint"}
    assert out[3]["status"] == "empty"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "ok", }', "stdin line 2: not valid JSON"),
        ('{"id": 1}', "stdin line 2: field 'text' is missing"),
        ('{"text": 5}', "stdin line 2: field 'text' is missing or not a string"),
    ],
)
def test_classify_bad_stdin_names_the_line(tiny_bundle, line, message):
    r = run(["classify", "-", "--bundle", str(tiny_bundle)], stdin='{"text": "fine"}\n' + line + "\n")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_missing_bundle_is_a_clear_error(tmp_path):
    r = run(["classify", "hello", "--bundle", str(tmp_path / "nope")])
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_train_and_export_from_the_command_line(tmp_path, tiny_base, tiny_data):
    out = tmp_path / "run"
    r = run(
        [
            "train",
            "--train",
            str(tiny_data[0]),
            "--validation",
            str(tiny_data[1]),
            "--out",
            str(out),
            "--base",
            str(tiny_base),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--max-length",
            "32",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 2
    r = run(
        [
            "train",
            "--train",
            str(tiny_data[0]),
            "--validation",
            str(tiny_data[1]),
            "--out",
            str(out),
            "--base",
            str(tiny_base),
        ]
    )
    assert r.returncode == 2 and "--resume" in r.stderr
    r = run(
        [
            "train",
            "--train",
            str(tiny_data[0]),
            "--validation",
            str(tiny_data[1]),
            "--out",
            str(tmp_path / "r2"),
            "--base",
            str(tiny_base),
        ]
    )
    assert r.returncode == 2 and "max_length 128 exceeds the base encoder's 64 positions" in r.stderr
    r = run(["export", str(out), "--out", str(tmp_path / "b"), "--name", "cli", "--no-int8"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fp32_max_abs_diff"] < 1e-4
    r = run(["classify", "hello", "--bundle", str(tmp_path / "b"), "--variant", "fp32"])
    assert r.returncode == 0, r.stderr


def test_train_reports_bad_data_by_line(tmp_path, tiny_base):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,sentiment\nfine,negative\noops,furious\n")
    r = run(
        [
            "train",
            "--train",
            str(bad),
            "--validation",
            str(bad),
            "--out",
            str(tmp_path / "o"),
            "--base",
            str(tiny_base),
            "--max-length",
            "32",
        ]
    )
    assert r.returncode == 2
    assert "line 3, field 'sentiment': 'furious'" in r.stderr and "Traceback" not in r.stderr
