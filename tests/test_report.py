"""The care-team report: planted spikes and themes on synthetic archives, the reporting window, bad input, and the
HTML/JSON/Markdown outputs (spike statistics: test_spikes.py; terms: test_terms.py)."""

import datetime as dt
import json
import re

import numpy as np
import pytest

from earful.batch.report import ReportError, ReportOptions, parse_time, summarize, write_report
from earful.tabular import write_rows


def test_time_formats():
    assert parse_time("Tue Oct 31 23:36:20 +0000 2017").day == 31
    assert parse_time("2024-03-01T10:00:00Z").hour == 10
    assert parse_time(0).year == 1970
    assert parse_time("yesterday-ish") is None
    assert parse_time("1509490000").year == 2017 and parse_time(1509490000123).year == 2017  # seconds, ms
    assert parse_time(1e30) is None and parse_time([1, 2]) is None and parse_time(True) is None


THEMES = {(25, "order_error"): "charged twice for order {j}, refund the duplicate charge"}


def _scored_rows():
    rows = []
    start = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)
    rng = np.random.default_rng(1)
    for day in range(40):
        n_order = 30 if day == 25 else int(rng.poisson(3))  # planted order_error spike on day 25
        for kind, n in (("order_error", n_order), ("product", 3), ("none", 6)):
            for j in range(n):
                rows.append(
                    {
                        "id": f"{day}-{kind}-{j}",
                        "text": THEMES.get((day, kind), f"{kind} post {j}").format(j=j),
                        "created_at": (start + dt.timedelta(days=day, hours=j % 5)).isoformat(),
                        "complaint_type": kind,
                        f"complaint_type_p_{kind}": 0.9,
                        "sentiment": "negative" if kind != "none" else "neutral",
                        "troll": 0.1,
                        "lang": "en",
                        "status": "ok",
                    }
                )
    rows.append(
        {
            "id": "e",
            "text": "",
            "created_at": "",
            "complaint_type": None,
            "sentiment": None,
            "troll": None,
            "lang": "und",
            "status": "empty",
        }
    )
    return rows


def test_report_end_to_end(tmp_path):
    write_rows(tmp_path / "scored.parquet", _scored_rows())
    s = write_report(tmp_path / "scored.parquet", tmp_path / "report.html", time_column="created_at")
    assert s.unscored == {"empty": 1} and len(s.days) == 40
    assert s.window.how == "all" and s.window.before == s.window.after == 0
    assert [(sp.series, sp.start) for sp in s.spikes if sp.series == "order_error"] == [("order_error", "2024-01-26")]
    assert not any(sp.series == "product" for sp in s.spikes)  # a flat series never spikes
    spike = next(sp for sp in s.spikes if sp.series == "order_error")
    assert {"charged twice", "duplicate charge"} & {t["term"] for t in spike.terms}
    assert len(spike.examples) == 3 and all("charged twice" in ex["text"] for ex in spike.examples)
    page = (tmp_path / "report.html").read_text()
    assert "2024-01-26" in page and "charged twice" in page and "uPlot" in page
    # self-contained: the charting library and the data are inline, nothing is fetched when the page is opened
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not any(x in page for x in ("<link", "@import", "<script src", "url(http"))
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["complaint_mix"]["product"] == 120
    assert summary["spikes"][0]["terms"] and set(summary["trending"]) == {
        "order_error",
        "product",
        "poor_service",
        "negative",
    }
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# earful report") and "Rising terms:" in md


def test_post_text_cannot_break_out_of_the_page(tmp_path):
    rows = _scored_rows()
    rows[0]["text"] = "</script><script>alert(1)</script><img src=http://x.invalid/a.png>"
    rows[0]["complaint_type_p_order_error"] = 1.0
    write_rows(tmp_path / "scored.parquet", rows)
    write_report(tmp_path / "scored.parquet", tmp_path / "report.html", time_column="created_at")
    page = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)" not in page and "<img src=http" not in page and "&lt;/script&gt;" in page


def test_stray_old_posts_and_a_partial_first_day_fall_outside_the_window(tmp_path):
    rows = _scored_rows()
    stray = dict(rows[0], id="old", created_at="2015-06-01T10:00:00+00:00")
    write_rows(tmp_path / "scored.parquet", [stray, *rows])
    s = summarize(tmp_path / "scored.parquet", options=ReportOptions(time_column="created_at"))
    assert (s.window.start, s.window.end, s.window.before, s.window.how) == ("2024-01-01", "2024-02-09", 1, "dense")
    assert len(s.days) == 40 and s.window.first_post == "2015-06-01"
    given = summarize(
        tmp_path / "scored.parquet",
        options=ReportOptions(time_column="created_at", since="2024-01-10", until="2024-01-31"),
    )
    assert (given.days[0], given.days[-1], given.window.how) == ("2024-01-10", "2024-01-31", "given")
    before = 1 + sum(r["created_at"] < "2024-01-10" for r in rows if r["created_at"])
    after = sum(r["created_at"] >= "2024-02-01" for r in rows if r["created_at"])
    assert (given.window.before, given.window.after) == (before, after) and after > 0
    assert given.by_weekday and sum(given.daily["posts"]) == sum(given.by_weekday)


def test_bad_input_is_a_clear_message_or_a_counted_skip(tmp_path):
    rows = _scored_rows()
    rows[1]["created_at"] = "not a time"
    rows[2]["complaint_type"] = "garbage"
    rows[3]["troll"] = "n/a"
    write_rows(tmp_path / "scored.csv", rows)
    s = write_report(tmp_path / "scored.csv", tmp_path / "r.html", time_column="created_at")
    assert s.unparsed_times == 1 and sum(s.skipped.values()) == 1 and s.scored == len(rows) - 1 - 1
    page = (tmp_path / "r.html").read_text()
    assert "no readable time" in page and "rows skipped" in page
    for opts, message in (
        (ReportOptions(time_column="created_at", since="2024-02-01", until="2024-01-01"), "is after"),
        (ReportOptions(time_column="created_at", since="1st of May"), "YYYY-MM-DD"),
        (ReportOptions(time_column="posted"), "no 'posted' column"),
    ):
        with pytest.raises(ReportError, match=message):
            summarize(tmp_path / "scored.csv", options=opts)
    (tmp_path / "broken.csv").write_text('id,text,status,complaint_type\n1,"open quote,ok,none\n')
    with pytest.raises(ReportError, match="line 2"):
        summarize(tmp_path / "broken.csv")
    write_rows(tmp_path / "times.csv", [dict(r, created_at="??") for r in rows[:30]])
    s = write_report(tmp_path / "times.csv", tmp_path / "t.html", time_column="created_at")
    assert s.window is None and s.unparsed_times == 29 and "no readable time" in (tmp_path / "t.html").read_text()


def test_report_without_time_column(tmp_path):
    write_rows(tmp_path / "scored.csv", _scored_rows()[:50])
    s = summarize(tmp_path / "scored.csv")
    assert s.days == [] and s.spikes == [] and s.scored == 50


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_troll_share_counts_the_models_flags(tmp_path, fmt):
    # the flag is the model's decision, whatever the probability: here 0.4 and 0.45 flagged, 0.6 not
    rows = [
        {
            "id": str(i),
            "text": "t",
            "complaint_type": "none",
            "sentiment": "neutral",
            "troll": p,
            "is_troll": flag,
            "lang": "en",
            "status": "ok",
        }
        for i, (p, flag) in enumerate([(0.4, True), (0.45, True), (0.6, False), (0.1, False)])
    ]
    write_rows(tmp_path / f"scored.{fmt}", rows)
    assert summarize(tmp_path / f"scored.{fmt}").troll_share == 0.5
    for r in rows:
        del r["is_troll"]  # scored before the column existed: read at 0.5
    write_rows(tmp_path / f"old.{fmt}", rows)
    assert summarize(tmp_path / f"old.{fmt}").troll_share == 0.25
