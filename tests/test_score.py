"""Batch scoring: formats, bad rows, a real kill then resume (exact rows and ids), clear errors."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from earful.batch.score import ScoreError, ScoreOptions, score
from earful.tabular import iter_rows, write_rows

TEXTS = ["my order never came", "la app falla otra vez", "danke für die hilfe", "", "🙂", "agent was rude", "x" * 5000]


def _rows(n):
    return [{"id": f"r{i}", "text": TEXTS[i % len(TEXTS)], "n": i} for i in range(n)]


@pytest.mark.parametrize(
    "src, dst",
    [
        ("in.csv", "out.parquet"),
        ("in.jsonl.gz", "out.csv"),
        ("in.parquet", "out.jsonl.zst"),
        ("in.csv.zst", "out.jsonl"),
    ],
)
def test_formats_keep_every_column_and_row(tiny_bundle, tmp_path, src, dst):
    write_rows(tmp_path / src, _rows(45))
    summary = score(
        tmp_path / src, tmp_path / dst, ScoreOptions(bundle=str(tiny_bundle), chunk_size=10), progress=False
    )
    assert summary.rows == 45 and summary.status_counts == {"ok": 39, "empty": 6}
    out = [r.data for r in iter_rows(tmp_path / dst)]
    assert [r["id"] for r in out] == [f"r{i}" for i in range(45)]
    assert {"text", "n", "complaint_type", "sentiment", "troll", "is_troll", "lang", "status", "truncated"} <= set(
        out[0]
    )
    empty = out[3]
    assert empty["status"] == "empty" and empty["lang"] == "und" and empty["complaint_type"] in (None, "")
    assert str(out[6]["truncated"]).lower() == "true"
    assert not (tmp_path / (dst + ".partial")).exists()


def test_null_and_undecodable_text_are_counted_not_dropped(tiny_bundle, tmp_path):
    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wb") as f:
        f.write(
            b'{"id": "a", "text": "fine"}\n{"id": "b", "text": null}\n'
            b'{"id": "c", "text": "bad \xff bytes"}\n{"id": "d"}\n'
        )
    summary = score(src, tmp_path / "out.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)
    assert summary.rows == 4
    assert summary.status_counts == {"ok": 1, "null": 2, "undecodable": 1}
    t = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["status"] for r in t] == ["ok", "null", "undecodable", "null"]
    assert all(r["lang"] == "und" for r in t[1:])


def test_malformed_input_names_the_line(tiny_bundle, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"\n')
    with pytest.raises(ScoreError, match="line 2: not valid JSON"):
        score(src, tmp_path / "out.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)


def test_missing_text_column_is_named(tiny_bundle, tmp_path):
    write_rows(tmp_path / "in.csv", [{"body": "hello"}])
    with pytest.raises(ScoreError, match="no 'text' column.*--text-column"):
        score(tmp_path / "in.csv", tmp_path / "o.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)
    s = score(
        tmp_path / "in.csv",
        tmp_path / "o.parquet",
        ScoreOptions(bundle=str(tiny_bundle), text_column="body"),
        progress=False,
    )
    assert s.rows == 1


def test_killed_run_resumes_with_exactly_one_row_per_input(tiny_bundle, tmp_path):
    n = 3000
    src = tmp_path / "in.jsonl"
    write_rows(src, _rows(n))
    out = tmp_path / "out.parquet"
    cmd = [
        sys.executable,
        "-m",
        "earful.cli",
        "score",
        str(src),
        "-o",
        str(out),
        "--bundle",
        str(tiny_bundle),
        "--chunk-size",
        "25",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    partial = tmp_path / "out.parquet.partial"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(partial.glob("part-*.parquet"))) < 4:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: parent and worker processes
    proc.wait()
    done = len(list(partial.glob("part-*.parquet")))
    assert 4 <= done < n // 25, "the kill should land mid-run"
    assert not out.exists()  # an unfinished output is never visible
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["resumed_from_row"] >= 4 * 25
    ids = pq.read_table(out).column("id").to_pylist()
    assert ids == [f"r{i}" for i in range(n)]  # no gaps, no duplicates, input order
    assert not partial.exists()


def test_resume_refuses_a_changed_input(tiny_bundle, tmp_path):
    src = tmp_path / "in.csv"
    write_rows(src, _rows(30))
    out = tmp_path / "o.parquet"
    partial = tmp_path / "o.parquet.partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps({"input": {"path": "elsewhere"}, "options": {}}))
    with pytest.raises(ScoreError, match="changed since the interrupted run"):
        score(src, out, ScoreOptions(bundle=str(tiny_bundle)), resume=True, progress=False)


def test_existing_output_needs_overwrite(tiny_bundle, tmp_path):
    write_rows(tmp_path / "in.csv", _rows(3))
    (tmp_path / "o.parquet").write_text("x")
    with pytest.raises(ScoreError, match="--overwrite"):
        score(tmp_path / "in.csv", tmp_path / "o.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)


def test_ray_engine_on_a_local_instance_matches_the_local_engine(tiny_bundle, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is the optional `ray` extra; make install installs it")
    from earful.batch.ray_engine import score_with_ray

    rows = _rows(120) + [{"id": "nul", "text": None, "n": 0}]
    write_rows(tmp_path / "in.jsonl", rows)
    opts = ScoreOptions(bundle=str(tiny_bundle), chunk_size=25, workers=1)
    ray_summary = score_with_ray(tmp_path / "in.jsonl", tmp_path / "ray.parquet", opts)
    local_summary = score(tmp_path / "in.jsonl", tmp_path / "local.parquet", opts, progress=False)
    assert ray_summary.rows == local_summary.rows == 121
    assert ray_summary.status_counts == local_summary.status_counts
    a = pq.read_table(tmp_path / "ray.parquet").to_pylist()
    b = pq.read_table(tmp_path / "local.parquet").to_pylist()
    assert [r["id"] for r in a] == [r["id"] for r in b]  # same rows, same order
    assert [r["complaint_type"] for r in a] == [r["complaint_type"] for r in b]


def test_batch_benchmark_scores_every_row_and_measures_memory(tiny_bundle, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "earful.batch.bench",
            "--rows",
            "300",
            "--workers",
            "1",
            "2",
            "--bundle",
            str(tiny_bundle),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "batch_bench.json").read_text())
    assert [run["workers"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["rows"] == 300 and run["rows_per_s"] > 0
        assert run["peak_rss_mb"] > 50  # a Python process with onnxruntime loaded, at least
    assert "rows/s" in (tmp_path / "batch_bench.md").read_text()
