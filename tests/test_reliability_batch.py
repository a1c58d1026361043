"""Batch scoring and reports through the `earful` command when the input or the run goes wrong: a malformed or
cut-off file stops with its line, a failed run can be started over, bad characters never end a run, the Ray
engine finishes with as many workers as CPUs, and a report refuses a file it cannot read."""

import json
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from earful.cli import main
from earful.tabular import iter_rows, write_rows


def _score(capsys, *args):
    rc = main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


def test_csv_with_an_unterminated_quote_stops_at_its_line(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,hello\n2,"unterminated\n3,foo\n4,bar\n')
    rc, _, err = _score(capsys, src, "-o", tmp_path / "out.parquet", "--bundle", tiny_bundle)
    assert rc == 2, "4 rows in must never be 2 rows out"
    assert f"{src} line 3: malformed CSV" in err and "quote" in err
    assert not (tmp_path / "out.parquet").exists()


def test_a_quoted_newline_is_one_row_that_keeps_its_line(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,"two\nlines"\n2,after\n')
    assert [(r.line, r.data["id"]) for r in iter_rows(src)] == [(2, "1"), (4, "2")]


@pytest.mark.parametrize("name", ["in.jsonl.gz", "in.jsonl.zst"])
def test_a_cut_off_compressed_file_is_an_error_not_fewer_rows(tiny_bundle, tmp_path, capsys, name):
    whole = tmp_path / ("whole." + name.split(".", 1)[1])
    write_rows(whole, [{"id": str(i), "text": f"post number {i} " * 8} for i in range(3000)])
    data = whole.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    rc, _, err = _score(capsys, tmp_path / name, "-o", tmp_path / "out.parquet", "--bundle", tiny_bundle)
    assert rc == 2 and "cut off or corrupt" in err and "Traceback" not in err


def test_overwrite_starts_a_failed_run_over_and_resume_finishes_one(tiny_bundle, tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    src.write_text("".join(json.dumps({"id": str(i), "text": f"post {i}"}) + "\n" for i in range(6)) + "{broken\n")
    rc, _, err = _score(capsys, src, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "2")
    assert rc == 2 and "line 7: not valid JSON" in err
    assert (tmp_path / "out.parquet.partial").is_dir()  # what was scored is kept for --resume
    rc, _, err = _score(capsys, src, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "2")
    assert rc == 2 and "--resume" in err and "--overwrite" in err
    src.write_text("".join(json.dumps({"id": str(i), "text": f"post {i}"}) + "\n" for i in range(7)))  # fixed
    rc, summary, err = _score(capsys, src, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "2", "--overwrite")
    assert rc == 0, err
    assert summary["rows"] == 7 and summary["resumed_from_row"] == 0
    assert pq.read_table(out).column("id").to_pylist() == [str(i) for i in range(7)]
    assert not (tmp_path / "out.parquet.partial").exists()


CUT_EMOJI = (
    '{"id":"1","text":"ok","meta":{}}\n{"id":"3\\ud83d","text":"emoji cut \\ud83d here","meta":{"k":"\\udc00"}}\n'
)


@pytest.mark.parametrize("dst", ["o.csv", "o.jsonl", "o.parquet"])
def test_a_cut_emoji_is_scored_counted_and_written(tiny_bundle, tmp_path, capsys, dst):
    src = tmp_path / "b.jsonl"
    src.write_text(CUT_EMOJI)
    rc, summary, err = _score(capsys, src, "-o", tmp_path / dst, "--bundle", tiny_bundle)
    assert rc == 0, err
    assert summary["status_counts"] == {"ok": 2} and summary["rows_with_replaced_characters"] == 1
    rows = [r.data for r in iter_rows(tmp_path / dst)]
    assert [r["id"] for r in rows] == ["1", "3\ufffd"]
    assert rows[1]["text"] == "emoji cut \ufffd here" and rows[1]["meta"] == '{"k": "\ufffd"}'


def test_resume_goes_past_a_cut_emoji(tiny_bundle, tmp_path, capsys, monkeypatch):
    from earful.batch import score as local

    src, out = tmp_path / "b.jsonl", tmp_path / "o.jsonl"
    src.write_text(CUT_EMOJI * 3)
    write_part = local._write_part

    def interrupted_after_the_first_part(partial, k, *args):
        if k == 1:
            raise KeyboardInterrupt  # as Ctrl-C would, once the first chunk is on disk
        write_part(partial, k, *args)

    monkeypatch.setattr(local, "_write_part", interrupted_after_the_first_part)
    rc, _, err = _score(capsys, src, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "2")
    assert rc == 2 and "--resume" in err
    monkeypatch.setattr(local, "_write_part", write_part)
    rc, summary, err = _score(capsys, src, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "2", "--resume")
    assert rc == 0, err
    assert summary["resumed_from_row"] == 2 and summary["rows_with_replaced_characters"] == 2
    assert [r.data["status"] for r in iter_rows(out)] == ["ok"] * 6


def test_ray_engine_finishes_with_as_many_workers_as_cpus(tiny_bundle, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is the optional `ray` extra; make install installs it")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    # enough rows for Ray to read in several blocks
    write_rows(src, [{"id": f"r{i}", "text": f"post {i}"} for i in range(3000)])
    # A local Ray instance of two CPUs, as on a two-core machine, then the command with two workers.
    code = (
        "import sys, ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False); "
        "from earful.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cmd = [
        sys.executable,
        "-c",
        code,
        "score",
        str(src),
        "-o",
        str(out),
        "--engine",
        "ray",
        "--workers",
        "2",
        "--chunk-size",
        "500",
        "--bundle",
        str(tiny_bundle),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path
    )
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the Ray engine did not finish in 4 minutes with --workers 2 on 2 CPUs")
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["rows"] == 3000 and summary["status_counts"] == {"ok": 3000}
    assert pq.read_table(out).column("id").to_pylist() == [f"r{i}" for i in range(3000)]


def _report(capsys, *args):
    rc = main(["report", *map(str, args)])
    return rc, capsys.readouterr().err


def test_report_refuses_a_file_that_was_not_scored(tmp_path, capsys):
    write_rows(tmp_path / "posts.csv", [{"id": "1", "text": "my order never came"}])
    rc, err = _report(capsys, tmp_path / "posts.csv", "-o", tmp_path / "r.html")
    assert rc == 2 and f"{tmp_path / 'posts.csv'}" in err and "earful score" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r.html").exists()


def test_report_names_a_misspelt_time_column(tmp_path, capsys):
    rows = [
        {
            "id": "1",
            "text": "t",
            "created_at": "2024-01-01T10:00:00Z",
            "complaint_type": "none",
            "sentiment": "neutral",
            "troll": 0.1,
            "is_troll": False,
            "lang": "en",
            "status": "ok",
        }
    ]
    write_rows(tmp_path / "scored.parquet", rows)
    rc, err = _report(capsys, tmp_path / "scored.parquet", "-o", tmp_path / "r.html", "--time-column", "created")
    assert rc == 2 and "no 'created' column" in err and "created_at" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r.html").exists()
    rc, _ = _report(capsys, tmp_path / "scored.parquet", "-o", tmp_path / "r.html", "--time-column", "created_at")
    assert rc == 0
