"""Conversations: roles, first brand replies and their delays, bad thread data, thread-aware scoring and resume,
and the report's response-time section."""

import csv
import datetime as dt
import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from earful.batch import score as score_module
from earful.batch.conversation import ConversationOptions, ConversationSections, render_html, render_markdown
from earful.batch.score import ScoreError, ScoreOptions, score
from earful.batch.threads import (
    MISSING,
    T_NAIVE,
    T_ZONED,
    TWCS,
    ReplyIndex,
    ThreadError,
    build_replies,
    epoch_seconds,
    id_key,
    id_keys,
    inbound_role,
    resolve_columns,
)
from earful.tabular import iter_rows, write_rows

TWCS_SAMPLE = Path(__file__).parent / "fixtures" / "twcs_threads_sample.csv"
T0 = dt.datetime(2024, 3, 4, 8, 0, tzinfo=dt.UTC)  # a Monday


def _twcs_oracle():
    """First brand reply delay per customer tweet, computed the plain way from the CSV."""
    rows = list(csv.DictReader(open(TWCS_SAMPLE, encoding="utf-8")))
    by_id = {r["tweet_id"]: r for r in rows}

    def t(r):
        return dt.datetime.strptime(r["created_at"], "%a %b %d %H:%M:%S %z %Y").timestamp()

    out = {}
    for r in rows:
        if r["inbound"] != "TRUE":
            continue
        linked = [b for b in rows if b["inbound"] == "FALSE" and b["in_response_to_tweet_id"] == r["tweet_id"]]
        linked += [by_id[x] for x in r["response_tweet_id"].split(",") if x in by_id and by_id[x]["inbound"] == "FALSE"]
        delays = [t(b) - t(r) for b in linked if t(b) >= t(r)]
        out[r["tweet_id"]] = min(delays) if delays else None
    return out


def test_twcs_sample_first_replies_match_a_plain_computation():
    first = next(iter_rows(TWCS_SAMPLE)).data
    columns = resolve_columns(first, "twcs")
    assert columns == TWCS
    replies = build_replies(TWCS_SAMPLE, columns)
    assert (replies.counts.customer_posts, replies.counts.brand_replies) == (66, 55)
    ids = [r.data["tweet_id"] for r in iter_rows(TWCS_SAMPLE)]
    oracle = _twcs_oracle()
    got = {ids[i]: replies.row_fields(i) for i in range(len(ids)) if replies.role[i] == 0}
    assert set(got) == set(oracle)
    for tweet, delay in oracle.items():
        assert got[tweet]["replied"] == (delay is not None), tweet
        assert got[tweet]["response_seconds"] == delay, tweet
    # a reply that comes before its post in the file still counts: tweet 1 answers tweet 3 140 s later
    assert got["3"] == {
        "role": "customer",
        "replied": True,
        "first_reply_at": "2017-10-31T22:10:47Z",
        "response_seconds": 140.0,
    }
    assert replies.counts.answered == sum(d is not None for d in oracle.values())


def test_id_keys_are_exact_for_integers_and_distinct_for_text():
    assert id_key("123") == id_key(123) == id_key(123.0) == id_key("123.0") == 123
    assert id_key("0123") != id_key("123")  # a leading zero is text, not the number
    assert id_key("") == id_key(None) == id_key(float("nan")) == MISSING
    keys = {id_key(f"post-{i}") for i in range(10000)}
    assert len(keys) == 10000 and min(keys) >= 1 << 62
    assert id_keys("5,7, 9") == [5, 7, 9] and id_keys("[5, 7]") == [5, 7] and id_keys(None) == [] and id_keys(4) == [4]


def test_inbound_flags_and_times():
    assert [inbound_role(v) for v in (True, "TRUE", "true", 1, "0", False, "maybe", None)] == [
        0,
        0,
        0,
        0,
        1,
        1,
        None,
        None,
    ]
    twitter, kind = epoch_seconds("Tue Oct 31 22:10:47 +0000 2017")
    assert kind == T_ZONED and twitter == dt.datetime(2017, 10, 31, 22, 10, 47, tzinfo=dt.UTC).timestamp()
    assert epoch_seconds("Tue Oct 31 23:10:47 +0100 2017")[0] == twitter
    assert epoch_seconds("2017-10-31T22:10:47Z")[0] == twitter
    assert epoch_seconds("2017-10-31T22:10:47") == (twitter, T_NAIVE)
    assert epoch_seconds(dt.datetime(2017, 10, 31, 22, 10, 47)) == (twitter, T_NAIVE)
    assert epoch_seconds(str(int(twitter)))[0] == twitter and epoch_seconds(twitter * 1000)[0] == twitter
    assert math.isnan(epoch_seconds("soon")[0]) and math.isnan(epoch_seconds("")[0])


def _index(rows, **columns):
    index = ReplyIndex(resolve_columns(rows[0], "test", detect_layout=False, **columns))
    for r in rows:
        index.add(r)
    return index.resolve()


COLS = dict(id="id", inbound="in", time="t", reply_to="to")


def test_bad_thread_data_is_counted_and_explained_never_fatal():
    rows = [
        {"id": "p1", "in": "true", "t": "2024-03-04T10:00:00+02:00", "to": ""},  # 08:00 UTC
        {"id": "b1", "in": "false", "t": "2024-03-04T08:30:00", "to": "p1"},  # naive, read as UTC: 30 min
        {"id": "p2", "in": "true", "t": "2024-03-04T09:00:00Z", "to": ""},
        {"id": "b2", "in": "false", "t": "2024-03-04T08:00:00Z", "to": "p2"},  # before its post
        {"id": "b3", "in": "false", "t": "2024-03-04T09:00:00Z", "to": "gone"},  # answers nothing here
        {"id": "p3", "in": "true", "t": "whenever", "to": ""},
        {"id": "b4", "in": "false", "t": "2024-03-04T12:00:00Z", "to": "p3"},  # post has no usable time
        {"id": "p1", "in": "true", "t": "2024-03-05T00:00:00Z", "to": ""},  # duplicate id
        {"id": "", "in": "?", "t": "", "to": ""},  # no id, unreadable flag, no time
    ]
    r = _index(rows, **COLS)
    c = r.counts
    assert r.row_fields(0) == {
        "role": "customer",
        "replied": True,
        "first_reply_at": "2024-03-04T08:30:00Z",
        "response_seconds": 1800.0,
    }
    assert r.row_fields(2)["replied"] is True and r.row_fields(2)["response_seconds"] is None
    assert r.row_fields(5)["replied"] is True and r.row_fields(5)["response_seconds"] is None
    assert r.row_fields(7)["replied"] is False
    assert r.row_fields(8)["role"] == "customer"
    assert (c.replies_before_post, c.reply_targets_not_found, c.replies_without_time) == (1, 1, 1)
    assert (c.duplicate_ids, c.missing_ids, c.unreadable_inbound) == (1, 1, 1)
    assert (c.times_without_zone, c.times_unreadable, c.times_missing) == (1, 1, 1)
    from earful.batch.threads import explain

    notes = " ".join(explain(c))
    for words in (
        "before the post",
        "not in the archive",
        "neither true nor false",
        "read as UTC",
        "mixes times",
        "repeat",
    ):
        assert words in notes


def test_the_earliest_brand_reply_wins_whichever_way_it_is_linked():
    rows = [
        {"id": "p", "in": "1", "t": 0, "to": "", "resp": "b2,c1"},
        {"id": "b1", "in": "0", "t": 600, "to": "p", "resp": ""},  # linked by its reply-to
        {"id": "b2", "in": "0", "t": 300, "to": "", "resp": ""},  # linked only by the post's response list
        {"id": "c1", "in": "1", "t": 100, "to": "p", "resp": ""},  # a customer's follow-up is not an answer
    ]
    r = _index(rows, **COLS, responses="resp")
    assert r.row_fields(0)["response_seconds"] == 300.0 and r.counts.answered == 1


def test_brand_authors_instead_of_an_inbound_flag():
    rows = [{"id": "1", "who": "alice", "t": 0, "to": ""}, {"id": "2", "who": "AcmeHelp", "t": 60, "to": "1"}]
    index = ReplyIndex(
        resolve_columns(
            rows[0], "t", detect_layout=False, id="id", author="who", time="t", reply_to="to", brands="AcmeHelp"
        )
    )
    for row in rows:
        index.add(row)
    assert index.resolve().row_fields(0)["response_seconds"] == 60.0


def test_mapping_errors_name_the_columns(tmp_path):
    first = {"id": 1, "text": "x"}
    with pytest.raises(ThreadError, match="reply_to=parent.*not in the input.*--reply-to-column"):
        resolve_columns(first, "in.csv", id="id", reply_to="parent")
    with pytest.raises(ThreadError, match="cannot be timed.*--time-column.*--inbound-column"):
        resolve_columns({**first, "parent": 2}, "in.csv", id="id", reply_to="parent")
    bad = tmp_path / "m.json"
    bad.write_text('{"id": "id", "parnet": "x"}')
    with pytest.raises(ThreadError, match="unknown keys \\['parnet'\\]"):
        resolve_columns(first, "in.csv", mapping_file=bad)
    bad.write_text("{not json")
    with pytest.raises(ThreadError, match="not a valid JSON mapping"):
        resolve_columns(first, "in.csv", mapping_file=bad)
    good = tmp_path / "m.toml"
    good.write_text('id = "pid"\ninbound = "mine"\ntime = "ts"\nreply_to = "up"\n')
    cols = resolve_columns({"pid": 1, "mine": 1, "ts": 0, "up": "", "text": ""}, "in.csv", mapping_file=good, time="ts")
    assert (cols.id, cols.inbound, cols.reply_to) == ("pid", "mine", "up") and cols.has_threads
    assert resolve_columns(first, "in.csv") is None  # no conversation columns: not a conversation archive


# -- a synthetic conversation archive ---------------------------------------------------
TEXTS = [
    "my order never arrived",
    "the app crashes again",
    "your agent was rude",
    "thanks, all good",
    "where is my refund",
]


def synthetic_archive(n_posts: int, seed: int = 0):
    """Customer posts with 0-2 brand replies each, shuffled so that replies often come before their post in the
    file. Returns (rows, {post id: first reply delay or None})."""
    rng = random.Random(seed)
    rows, expected = [], {}
    for i in range(n_posts):
        at = T0 + dt.timedelta(minutes=37 * i)
        pid = f"c{i}"
        rows.append(
            {
                "post_id": pid,
                "user": f"u{i % 7}",
                "customer": "yes",
                "at": at.isoformat(),
                "parent": "",
                "text": TEXTS[i % 5],
            }
        )
        delays = sorted(rng.choice([45, 300, 3600, 7200, 90000]) for _ in range(rng.choice([0, 1, 1, 2])))
        for j, d in enumerate(delays):
            rows.append(
                {
                    "post_id": f"r{i}-{j}",
                    "user": "Brand",
                    "customer": "no",
                    "at": (at + dt.timedelta(seconds=d)).isoformat(),
                    "parent": pid,
                    "text": "sorry, DM us",
                }
            )
        expected[pid] = float(delays[0]) if delays else None
    rng.shuffle(rows)
    return rows, expected


SYNTH = ConversationOptions(
    id_column="post_id", author_column="user", inbound_column="customer", time_column="at", reply_to_column="parent"
)


def test_scoring_a_conversation_archive_classifies_customer_posts_only(tiny_bundle, tmp_path):
    rows, expected = synthetic_archive(60)
    write_rows(tmp_path / "in.jsonl", rows)
    s = score(
        tmp_path / "in.jsonl",
        tmp_path / "out.csv",
        ScoreOptions(bundle=str(tiny_bundle), chunk_size=16, conversation=SYNTH),
        progress=False,
    )
    out = [r.data for r in iter_rows(tmp_path / "out.csv")]
    assert [r["post_id"] for r in out] == [r["post_id"] for r in rows]
    brand = [r for r in out if r["customer"] == "no"]
    customer = [r for r in out if r["customer"] == "yes"]
    assert s.roles == {"customer": 60, "brand": len(brand)} and s.status_counts == {"ok": 60, "brand_reply": len(brand)}
    assert all(
        r["role"] == "brand" and r["status"] == "brand_reply" and r["complaint_type"] == "" and r["lang"] == ""
        for r in brand
    )
    assert all(r["role"] == "customer" and r["status"] == "ok" and r["complaint_type"] for r in customer)
    for r in customer:
        want = expected[r["post_id"]]
        assert r["replied"] == ("True" if want is not None else "False")
        assert (float(r["response_seconds"]) if r["response_seconds"] else None) == want
    assert s.threads["answered"] == sum(v is not None for v in expected.values())


def test_a_chunk_of_brand_replies_only_is_written(tiny_bundle, tmp_path):
    rows = [
        {"post_id": f"r{i}", "user": "Brand", "customer": "no", "at": T0.isoformat(), "parent": "", "text": "hi"}
        for i in range(5)
    ]
    rows.append(
        {
            "post_id": "c",
            "user": "u",
            "customer": "yes",
            "at": T0.isoformat(),
            "parent": "",
            "text": "my order is wrong",
        }
    )
    write_rows(tmp_path / "in.csv", rows)
    s = score(
        tmp_path / "in.csv",
        tmp_path / "o.parquet",
        ScoreOptions(bundle=str(tiny_bundle), chunk_size=5, conversation=SYNTH),
        progress=False,
    )
    assert s.status_counts == {"brand_reply": 5, "ok": 1}
    assert pq.read_table(tmp_path / "o.parquet").column("role").to_pylist() == ["brand"] * 5 + ["customer"]


def test_twcs_layout_is_recognised_and_can_be_turned_off(tiny_bundle, tmp_path):
    s = score(TWCS_SAMPLE, tmp_path / "o.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)
    assert s.roles == {"customer": 66, "brand": 55}
    t = pq.read_table(tmp_path / "o.parquet")
    assert {"role", "replied", "first_reply_at", "response_seconds"} <= set(t.schema.names)
    off = ScoreOptions(bundle=str(tiny_bundle), conversation=ConversationOptions(detect_layout=False))
    s = score(TWCS_SAMPLE, tmp_path / "plain.parquet", off, progress=False)
    assert s.roles == {} and s.status_counts == {"ok": 121}
    assert "role" not in pq.read_table(tmp_path / "plain.parquet").schema.names


def test_missing_conversation_columns_are_a_clear_error(tiny_bundle, tmp_path):
    write_rows(tmp_path / "in.csv", [{"id": "1", "text": "hello"}])
    opts = ScoreOptions(
        bundle=str(tiny_bundle), conversation=ConversationOptions(id_column="id", reply_to_column="parent")
    )
    with pytest.raises(ScoreError, match="reply_to=parent are not in the input"):
        score(tmp_path / "in.csv", tmp_path / "o.parquet", opts, progress=False)
    assert not (tmp_path / "o.parquet.partial").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_conversation_run_resumes_to_the_same_output(tiny_bundle, tmp_path, monkeypatch, workers):
    rows, _ = synthetic_archive(90, seed=3)
    src = tmp_path / "in.csv"
    write_rows(src, rows)
    opts = ScoreOptions(bundle=str(tiny_bundle), chunk_size=20, workers=workers, conversation=SYNTH)
    straight = score(src, tmp_path / "straight.parquet", opts, progress=False)
    real_write = score_module._write_part
    written = []

    def write_then_stop(partial, k, records, schema):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(k)
        real_write(partial, k, records, schema)

    monkeypatch.setattr(score_module, "_write_part", write_then_stop)
    with pytest.raises(ScoreError, match="--resume"):
        score(src, tmp_path / "out.parquet", opts, progress=False)
    monkeypatch.setattr(score_module, "_write_part", real_write)
    resumed = score(src, tmp_path / "out.parquet", opts, resume=True, progress=False)
    assert resumed.resumed_from_row == 60
    assert resumed.roles == straight.roles and resumed.threads == straight.threads
    assert resumed.status_counts["ok"] + straight.status_counts["ok"] > 0
    a, b = pq.read_table(tmp_path / "out.parquet"), pq.read_table(tmp_path / "straight.parquet")
    assert a.schema == b.schema
    for column in ("post_id", "role", "status", "replied", "first_reply_at", "response_seconds", "complaint_type"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column
    # a changed mapping is a changed run: no resume across it
    partial = tmp_path / "o2.parquet.partial"
    monkeypatch.setattr(score_module, "_write_part", write_then_stop)
    written.clear()
    with pytest.raises(ScoreError):
        score(src, tmp_path / "o2.parquet", opts, progress=False)
    monkeypatch.setattr(score_module, "_write_part", real_write)
    other = ScoreOptions(
        bundle=str(tiny_bundle),
        chunk_size=20,
        workers=workers,
        conversation=ConversationOptions(inbound_column="customer"),
    )
    with pytest.raises(ScoreError, match="changed since the interrupted run"):
        score(src, tmp_path / "o2.parquet", other, resume=True, progress=False)
    assert partial.exists()


# -- the report section -------------------------------------------------------------------
def scored_conversation(n_posts: int = 40):
    """Scored rows of a synthetic archive with known complaint types and delays, in time order."""
    rows, expected = synthetic_archive(n_posts, seed=5)
    kinds = ["order_error", "product", "poor_service", "none"]
    for r in rows:
        if r["customer"] == "yes":
            i = int(r["post_id"][1:])
            r.update(
                status="ok",
                complaint_type=kinds[i % 4],
                sentiment="negative" if i % 4 < 3 else "positive",
                lang="en" if i % 2 else "es",
            )
        else:
            r.update(status="brand_reply", complaint_type=None, sentiment=None, lang=None)
    return rows, expected


def _section(path, options=SYNTH):
    first = next(iter_rows(path)).data
    sections = ConversationSections(first, path, options)
    for row in iter_rows(path):
        sections.add(row.data)
    return sections.finish(path)


def test_report_response_times_by_group_and_oldest_unanswered(tmp_path):
    rows, expected = scored_conversation(40)
    write_rows(tmp_path / "scored.parquet", rows)
    t = _section(tmp_path / "scored.parquet")["threads"]
    delays = [d for d in expected.values() if d is not None]
    assert t["overall"]["answered"] == len(delays)
    assert t["overall"]["median_s"] == round(float(np.median(delays)), 1)
    assert t["overall"]["p90_s"] == round(float(np.quantile(delays, 0.9)), 1)
    product = [d for p, d in expected.items() if int(p[1:]) % 4 == 1 and d is not None]
    assert t["by_complaint_type"]["product"]["median_s"] == round(float(np.median(product)), 1)
    assert t["by_language"]["es"]["posts"] == 20
    never = sorted((int(p[1:]) for p, d in expected.items() if d is None and int(p[1:]) % 4 < 3))
    assert t["unanswered_complaints"]["unanswered"] == len(never)
    assert t["unanswered_complaints"]["share"] == round(len(never) / 30, 4)
    oldest = [
        int(p["id"][1:]) for name in ("order_error", "product", "poor_service") for p in t["oldest_unanswered"][name]
    ]
    for name, k in (("order_error", 0), ("product", 1), ("poor_service", 2)):
        want = [i for i in never if i % 4 == k][:5]
        assert [int(p["id"][1:]) for p in t["oldest_unanswered"][name]] == want
        assert all(p["text"] for p in t["oldest_unanswered"][name])
    assert oldest
    # post c0 was a Monday 08:00 UTC: its cell of the heatmap holds its delay when it was answered
    if expected["c0"] is not None:
        assert t["heatmap_answered"][0][8] >= 1
    assert sum(map(sum, t["heatmap_answered"])) == len(delays)
    page = render_html(_section(tmp_path / "scored.parquet"))
    assert "<svg" in page and "Oldest unanswered" in page and "<script" not in page
    assert render_markdown(_section(tmp_path / "scored.parquet")).startswith("## Threads and response times")


def test_report_sections_say_why_they_are_absent(tmp_path):
    write_rows(
        tmp_path / "plain.csv",
        [{"id": "1", "text": "x", "status": "ok", "complaint_type": "product", "sentiment": "negative", "lang": "en"}],
    )
    result = _section(tmp_path / "plain.csv", ConversationOptions())
    assert "no conversation columns" in result["threads"]["absent"]
    assert "no author column" in result["people"]["absent"]
    page = render_html(result)
    assert "No response times" in page and "No author section" in page
    json.dumps(result)  # JSON-ready


def test_ray_engine_scores_a_conversation_archive_like_the_local_engine(tiny_bundle, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine is the optional `ray` extra; make install installs it")
    from earful.batch.ray_engine import score_with_ray

    rows, _ = synthetic_archive(50, seed=9)
    write_rows(tmp_path / "in.jsonl", rows)
    opts = ScoreOptions(bundle=str(tiny_bundle), chunk_size=16, workers=1, conversation=SYNTH)
    by_ray = score_with_ray(tmp_path / "in.jsonl", tmp_path / "ray.parquet", opts)
    local = score(tmp_path / "in.jsonl", tmp_path / "local.parquet", opts, progress=False)
    assert by_ray.roles == local.roles and by_ray.status_counts == local.status_counts
    a, b = pq.read_table(tmp_path / "ray.parquet"), pq.read_table(tmp_path / "local.parquet")
    for column in ("post_id", "role", "status", "replied", "first_reply_at", "response_seconds", "complaint_type"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column


def _cli(*args):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-m", "earful.cli", *map(str, args)], capture_output=True, text=True, timeout=300, cwd=root
    )


def test_cli_scores_and_reports_the_twcs_sample(tiny_bundle, tmp_path):
    out = tmp_path / "scored.parquet"
    r = _cli("score", TWCS_SAMPLE, "-o", out, "--bundle", tiny_bundle, "--chunk-size", "50")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["roles"] == {"customer": 66, "brand": 55}
    r = _cli("report", out, "-o", tmp_path / "r.html", "--time-column", "created_at", "--min-complaints", "2")
    assert r.returncode == 0, r.stderr
    headline = json.loads(r.stdout)
    assert headline["first_response"]["answered"] == 55 and headline["first_response"]["median_s"] == 314.0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sections"]["threads"]["counts"]["brand_replies"] == 55
    assert report["sections"]["people"]["min_complaints"] == 2
    page = (tmp_path / "r.html").read_text()
    assert "Threads and response times" in page and "Who is talking" in page


def test_cli_bad_conversation_flags_are_one_line_errors(tiny_bundle, tmp_path):
    write_rows(tmp_path / "in.csv", [{"id": "1", "text": "hello", "parent": ""}])
    r = _cli(
        "score",
        tmp_path / "in.csv",
        "-o",
        tmp_path / "o.parquet",
        "--bundle",
        tiny_bundle,
        "--reply-to-column",
        "parnet",
    )
    assert r.returncode == 2 and "reply_to=parnet" in r.stderr and "Traceback" not in r.stderr
    r = _cli(
        "score",
        tmp_path / "in.csv",
        "-o",
        tmp_path / "o.parquet",
        "--bundle",
        tiny_bundle,
        "--mapping",
        tmp_path / "nope.json",
    )
    assert r.returncode == 2 and "cannot read the mapping file" in r.stderr and "Traceback" not in r.stderr
    scored = tmp_path / "s.csv"
    write_rows(
        scored,
        [{"id": "1", "text": "x", "status": "ok", "complaint_type": "none", "sentiment": "neutral", "lang": "en"}],
    )
    r = _cli("report", scored, "-o", tmp_path / "r.html", "--author-column", "who")
    assert r.returncode == 2 and "author=who" in r.stderr and "Traceback" not in r.stderr
    r = _cli("report", scored, "-o", tmp_path / "r.html", "--min-complaints", "0")
    assert r.returncode == 2 and "--min-complaints" in r.stderr


def _twcs_without_inbound(path: Path) -> set[str]:
    """The TWCS sample without its inbound column, written to ``path``; returns the brands' author names."""
    rows = list(csv.DictReader(open(TWCS_SAMPLE, encoding="utf-8")))
    write_rows(path, [{k: v for k, v in r.items() if k != "inbound"} for r in rows])
    return {r["author_id"] for r in rows if r["inbound"] == "FALSE"}


def test_twcs_layout_without_inbound_is_explained_and_brand_authors_stand_in(tiny_bundle, tmp_path):
    brands = _twcs_without_inbound(tmp_path / "in.csv")
    s = score(tmp_path / "in.csv", tmp_path / "plain.parquet", ScoreOptions(bundle=str(tiny_bundle)), progress=False)
    assert s.roles == {} and s.status_counts == {"ok": 121}
    assert "Customer Support on Twitter columns but not inbound" in s.threads["notes"][0]
    assert "--brand-authors" in s.threads["notes"][0]
    result = _section(tmp_path / "plain.parquet", ConversationOptions())
    assert "but not inbound" in result["threads"]["absent"]
    named = ConversationOptions(brands=",".join(sorted(brands)))
    s = score(
        tmp_path / "in.csv",
        tmp_path / "o.parquet",
        ScoreOptions(bundle=str(tiny_bundle), conversation=named),
        progress=False,
    )
    assert s.roles == {"customer": 66, "brand": 55} and s.threads["answered"] == 55
    assert _section(tmp_path / "o.parquet", named)["threads"]["overall"]["median_s"] == 314.0


def test_brand_authors_without_an_author_column_are_refused():
    with pytest.raises(ThreadError, match="no author column.*--author-column"):
        resolve_columns({"id": 1, "text": "x"}, "in.csv", brands="Acme")
    near = {"id": 1, "text": "x", "in_response_to_tweet_id": ""}  # far from the layout: no hint
    assert resolve_columns(near, "in.csv") is None


def test_cli_bad_thread_archives_get_a_message_never_a_traceback(tiny_bundle, tmp_path):
    _twcs_without_inbound(tmp_path / "no_inbound.csv")
    base = {"author_id": "a", "inbound": "True", "text": "my app crashes", "response_tweet_id": ""}
    write_rows(
        tmp_path / "messy.csv",
        [
            {**base, "tweet_id": "1", "created_at": "2017-10-31T22:10:47Z", "in_response_to_tweet_id": "99"},
            {**base, "tweet_id": "2", "created_at": "2017-10-31 22:20:00", "in_response_to_tweet_id": ""},
            {**base, "tweet_id": "3", "inbound": "False", "created_at": "2017-10-31T22:00:00+01:00"}
            | {"in_response_to_tweet_id": "2"},
            {**base, "tweet_id": "x", "inbound": "maybe", "created_at": "not a time", "in_response_to_tweet_id": ""},
        ],
    )
    r = _cli("score", tmp_path / "messy.csv", "-o", tmp_path / "m.parquet", "--bundle", tiny_bundle)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    notes = " ".join(json.loads(r.stdout)["threads"]["notes"])
    for said in ("not in the archive", "times out of order", "cannot be read", "read as UTC", "neither true"):
        assert said in notes, said
    r = _cli("report", tmp_path / "m.parquet", "-o", tmp_path / "m.html")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = _cli("score", tmp_path / "no_inbound.csv", "-o", tmp_path / "n.parquet", "--bundle", tiny_bundle)
    assert r.returncode == 0 and "but not inbound" in r.stdout, r.stderr
    r = _cli(
        "score",
        TWCS_SAMPLE,
        "-o",
        tmp_path / "y.parquet",
        "--bundle",
        tiny_bundle,
        "--no-threads",
        "--brand-authors",
        "x",
    )
    assert r.returncode == 2 and "no author column" in r.stderr and "Traceback" not in r.stderr


def test_report_tables_are_styled_and_the_heatmap_has_a_scale(tmp_path):
    rows, _ = scored_conversation(40)
    write_rows(tmp_path / "scored.parquet", rows)
    page = render_html(_section(tmp_path / "scored.parquet"))
    assert "<table>" not in page and "<table class='posts'" in page
    assert "<th>complaint type</th><th style='text-align:right" in page  # numbers right-aligned under their heads
    assert "darker = slower first reply (lightest " in page and "grey: no answered post" in page
