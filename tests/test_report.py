"""The care-team report: spike detection on synthetic data with planted spikes, and the HTML/JSON outputs."""

import datetime as dt
import json

import numpy as np
import pytest

from earful.batch.report import SpikeRule, detect_spikes, parse_time, summarize, write_report
from earful.tabular import write_rows


def test_planted_spikes_are_found_and_noise_is_not():
    rng = np.random.default_rng(0)
    counts = rng.poisson(10, size=60).tolist()
    counts[30] = 45  # planted
    counts[50] = 40  # planted
    days = [f"d{i}" for i in range(60)]
    found = detect_spikes(days, counts, "product", SpikeRule())
    assert [s.day for s in found] == ["d30", "d50"]
    assert all(s.z >= 3.5 for s in found)


def test_small_counts_and_short_history_are_not_alarms():
    assert detect_spikes([str(i) for i in range(10)], [0] * 9 + [4], "x", SpikeRule()) == []  # below min_count
    assert (
        detect_spikes([str(i) for i in range(5)], [1, 1, 1, 1, 50], "x", SpikeRule()) == []
    )  # under 7 days of history


def test_time_formats():
    assert parse_time("Tue Oct 31 23:36:20 +0000 2017").day == 31
    assert parse_time("2024-03-01T10:00:00Z").hour == 10
    assert parse_time(0).year == 1970
    assert parse_time("yesterday-ish") is None


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
                        "text": f"{kind} post {j}",
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
    assert ("order_error", "2024-01-26") in {(sp.series, sp.day) for sp in s.spikes}
    assert not any(sp.series == "product" for sp in s.spikes)  # a flat series never spikes
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "2024-01-26" in page
    # self-contained: nothing is fetched when the page is opened
    assert not any(x in page for x in ('src="http', "src='http", 'href="http', "<link", "<script", "@import"))
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["complaint_mix"]["product"] == 120
    assert (tmp_path / "report.md").read_text().startswith("# earful report")


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
