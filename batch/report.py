"""``earful report``: what a care team learns from a scored archive.

Reads the output of ``earful score`` as a stream (bounded memory: counters and a
small heap per complaint type) and writes a self-contained HTML page (inline
SVG plots, no network needed to view it) plus ``.json`` and ``.md`` summaries.

Early-warning spikes. For each complaint type, and for negative sentiment, the
daily count is compared with its own recent past: robust z = (count − median of
the previous ``window`` days) / (1.4826 × MAD of those days, at least 1). A day
is a spike when z ≥ ``z_threshold`` and the count is at least ``min_count``
(so 3 posts after a quiet week is not an alarm). Days with fewer than
``min_history`` previous days are not judged.
"""

from __future__ import annotations

import datetime as dt
import heapq
import html
import io
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import numpy as np

from earful.models.bundle import DEFAULT_TROLL_THRESHOLD
from earful.schema import COMPLAINT_TYPES, NOT_A_COMPLAINT, SENTIMENTS
from earful.tabular import iter_rows

COMPLAINTS = COMPLAINT_TYPES[:3]
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ReportError(ValueError):
    """The file cannot be reported on as asked; the message names the file or column and what to do."""


@dataclass(frozen=True)
class SpikeRule:
    window: int = 14
    min_history: int = 7
    z_threshold: float = 3.5
    min_count: int = 5

    def describe(self) -> str:
        return (
            f"robust z-score of the daily count against the previous {self.window} days "
            f"(median and 1.4826×MAD, MAD at least 1); spike when z ≥ {self.z_threshold} and count ≥ {self.min_count}; "
            f"days with under {self.min_history} days of history are not judged"
        )


@dataclass
class Spike:
    series: str
    day: str
    count: int
    baseline: float
    z: float


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    unscored: dict[str, int] = field(default_factory=dict)
    complaint_mix: dict[str, int] = field(default_factory=dict)
    sentiment_mix: dict[str, int] = field(default_factory=dict)
    language_mix: dict[str, int] = field(default_factory=dict)
    troll_share: float = 0.0
    days: list[str] = field(default_factory=list)
    daily: dict[str, list[int]] = field(default_factory=dict)
    by_hour: list[int] = field(default_factory=list)
    by_weekday: list[int] = field(default_factory=list)
    spikes: list[Spike] = field(default_factory=list)
    top_posts: dict[str, list[dict]] = field(default_factory=dict)
    rule: str = ""
    time_column: str | None = None
    unparsed_times: int = 0


def parse_time(value) -> dt.datetime | None:
    """ISO 8601, epoch seconds, or Twitter's "Tue Oct 31 23:36:20 +0000 2017"."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    s = str(value).strip()
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return dt.datetime.strptime(s, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(s)
    except (TypeError, ValueError):
        return None


def detect_spikes(days: list[str], counts: list[int], name: str, rule: SpikeRule) -> list[Spike]:
    spikes = []
    x = np.asarray(counts, dtype=float)
    for i in range(len(x)):
        history = x[max(0, i - rule.window) : i]
        if len(history) < rule.min_history:
            continue
        med = float(np.median(history))
        mad = max(1.0, float(np.median(np.abs(history - med))))
        z = (x[i] - med) / (1.4826 * mad)
        if z >= rule.z_threshold and x[i] >= rule.min_count:
            spikes.append(Spike(name, days[i], int(x[i]), med, round(float(z), 2)))
    return spikes


def _flagged(is_troll: Any, troll: float) -> bool:
    """A scored row's ``is_troll`` (a bool, or its text in a CSV); files scored before that column existed
    are read at the default threshold, 0.5."""
    if is_troll is None or is_troll == "":
        return troll >= DEFAULT_TROLL_THRESHOLD
    return is_troll if isinstance(is_troll, bool) else str(is_troll).strip().lower() in ("true", "1")


def summarize(
    path: str | Path, time_column: str | None = None, rule: SpikeRule = SpikeRule(), top_n: int = 5
) -> Summary:
    s = Summary(rule=rule.describe(), time_column=time_column)
    complaint, sentiment, language, unscored = Counter(), Counter(), Counter(), Counter()
    daily: dict[str, Counter] = defaultdict(Counter)
    hours, weekdays = Counter(), Counter()
    trolls = 0
    heaps: dict[str, list] = {c: [] for c in COMPLAINTS}
    for row in iter_rows(path):
        r = row.data
        if not s.rows:
            _check_columns(path, r, time_column)
        s.rows += 1
        if r.get("status") != "ok":
            unscored[str(r.get("status"))] += 1
            continue
        s.scored += 1
        ct, sent = r.get("complaint_type"), r.get("sentiment")
        complaint[ct] += 1
        sentiment[sent] += 1
        language[r.get("lang")] += 1
        troll = float(r.get("troll") or 0)
        trolls += _flagged(r.get("is_troll"), troll)
        if ct in heaps:
            p = float(r.get(f"complaint_type_p_{ct}") or 0)
            item = (p, -s.rows, {"text": r.get("text"), "id": r.get("id"), "p": round(p, 3), "troll": round(troll, 3)})
            (heapq.heappush if len(heaps[ct]) < top_n else heapq.heappushpop)(heaps[ct], item)
        if time_column:
            when = parse_time(r.get(time_column))
            if when is None:
                s.unparsed_times += 1
                continue
            day = when.date().isoformat()
            daily[day]["posts"] += 1
            daily[day][ct] += 1
            daily[day]["negative"] += sent == "negative"
            hours[when.hour] += 1
            weekdays[when.weekday()] += 1
    if not s.rows:
        raise ReportError(f"{path}: no rows to report on")
    s.complaint_mix = {c: complaint.get(c, 0) for c in COMPLAINT_TYPES}
    s.sentiment_mix = {c: sentiment.get(c, 0) for c in SENTIMENTS}
    s.language_mix = dict(language.most_common())
    s.unscored = dict(unscored)
    s.troll_share = trolls / s.scored if s.scored else 0.0
    s.top_posts = {c: [item for _, _, item in sorted(heaps[c], reverse=True)] for c in COMPLAINTS}
    if daily:
        first, last = min(daily), max(daily)
        d0, d1 = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        s.days = [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]
        for series in ("posts", *COMPLAINTS, NOT_A_COMPLAINT, "negative"):
            s.daily[series] = [daily[d][series] for d in s.days]
        s.by_hour = [hours[h] for h in range(24)]
        s.by_weekday = [weekdays[w] for w in range(7)]
        for series in (*COMPLAINTS, "negative"):
            s.spikes += detect_spikes(s.days, s.daily[series], series, rule)
    return s


def _check_columns(path: str | Path, first: dict, time_column: str | None) -> None:
    """A file without earful's columns, or a --time-column it lacks, would give an empty report that looks fine."""
    columns = ", ".join(map(str, first))
    if "status" not in first or "complaint_type" not in first:
        raise ReportError(
            f"{path}: not the output of `earful score` (no status/complaint_type columns; it has "
            f"{columns}); score it first: earful score FILE -o SCORED.parquet"
        )
    if time_column and time_column not in first:
        raise ReportError(f"{path}: no '{time_column}' column for --time-column (columns: {columns})")


# -- rendering ------------------------------------------------------------------
def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _plots(s: Summary) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    out = {}
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(list(s.complaint_mix), list(s.complaint_mix.values()), color=["#c0392b", "#e67e22", "#8e44ad", "#95a5a6"])
    ax.set_title("Complaint types")
    out["complaint_mix"] = _svg(fig)
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(list(s.sentiment_mix), list(s.sentiment_mix.values()), color=["#c0392b", "#95a5a6", "#27ae60"])
    ax.set_title("Sentiment")
    out["sentiment_mix"] = _svg(fig)
    langs = list(s.language_mix.items())[:15]
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar([k for k, _ in langs], [v for _, v in langs])
    ax.set_title("Languages (top 15)")
    out["language_mix"] = _svg(fig)
    if s.days:
        x = np.arange(len(s.days))
        ticks = x[:: max(1, len(x) // 10)]
        for title, series in (
            ("Posts per day", ("posts",)),
            ("Complaints per day by type", COMPLAINTS),
            ("Negative posts per day", ("negative",)),
        ):
            fig, ax = plt.subplots(figsize=(9, 2.8))
            for name in series:
                ax.plot(x, s.daily[name], label=name, lw=1.2)
                for sp in s.spikes:
                    if sp.series == name:
                        i = s.days.index(sp.day)
                        ax.scatter([i], [sp.count], color="red", zorder=3, s=30)
                        ax.annotate(
                            "spike",
                            (i, sp.count),
                            textcoords="offset points",
                            xytext=(0, 6),
                            ha="center",
                            fontsize=7,
                            color="red",
                        )
            ax.set_xticks(ticks, [s.days[i] for i in ticks], rotation=30, ha="right", fontsize=7)
            ax.set_title(title)
            if len(series) > 1:
                ax.legend(fontsize=7)
            out[title] = _svg(fig)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 2.6))
        a1.bar(range(24), s.by_hour)
        a1.set_title("By hour of day (UTC)")
        a2.bar(WEEKDAYS, s.by_weekday)
        a2.set_title("By day of week")
        out["hour_weekday"] = _svg(fig)
    return out


def render_html(s: Summary, source: str) -> str:
    plots = _plots(s)
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>earful report: {e(source)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
        ".spike{color:#c0392b}</style></head><body>",
        f"<h1>earful report</h1><p>{e(source)}: {s.rows} posts, {s.scored} scored"
        + (f", {sum(s.unscored.values())} with nothing to score ({e(json.dumps(s.unscored))})" if s.unscored else "")
        + ".</p>",
        "<p>Share of posts flagged as trolling (<code>is_troll</code>: the probability reached the model's decision "
        f"threshold): <b>{100 * s.troll_share:.1f}%</b>.</p>",
    ]
    parts.append("<h2>Early-warning spikes</h2>")
    if not s.days:
        parts.append("<p>No time column given (<code>--time-column</code>), so no trends or spikes.</p>")
    elif s.spikes:
        parts.append(
            "<table><tr><th>day</th><th>series</th><th>count</th><th>baseline (median)</th><th>robust z</th></tr>"
        )
        parts += [
            f"<tr class='spike'><td>{sp.day}</td><td>{e(sp.series)}</td><td>{sp.count}</td>"
            f"<td>{sp.baseline:.1f}</td><td>{sp.z}</td></tr>"
            for sp in s.spikes
        ]
        parts.append("</table>")
    else:
        parts.append("<p>No spikes.</p>")
    parts.append(f"<p><small>Rule: {e(s.rule)}.</small></p>")
    for key in (
        "Posts per day",
        "Complaints per day by type",
        "Negative posts per day",
        "hour_weekday",
        "complaint_mix",
        "sentiment_mix",
        "language_mix",
    ):
        if key in plots:
            parts.append(f"<div>{plots[key]}</div>")
    parts.append("<h2>Top complaint posts per type</h2>")
    for ct, posts in s.top_posts.items():
        parts.append(f"<h3>{e(ct)}</h3><table><tr><th>p</th><th>troll</th><th>id</th><th>text</th></tr>")
        parts += [
            f"<tr><td>{p['p']}</td><td>{p['troll']}</td><td>{e(str(p['id']))}</td><td>{e(str(p['text'])[:300])}</td></tr>"
            for p in posts
        ]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(s: Summary, source: str) -> str:
    lines = [
        f"# earful report: {source}",
        "",
        f"{s.rows} posts, {s.scored} scored; troll share {100 * s.troll_share:.1f}%.",
        "",
        "| complaint type | posts |",
        "|---|---|",
    ] + [f"| {k} | {v} |" for k, v in s.complaint_mix.items()]
    lines += ["", "| sentiment | posts |", "|---|---|"] + [f"| {k} | {v} |" for k, v in s.sentiment_mix.items()]
    lines += ["", f"Spike rule: {s.rule}.", ""]
    lines += ["| day | series | count | baseline | z |", "|---|---|---|---|---|"] + [
        f"| {sp.day} | {sp.series} | {sp.count} | {sp.baseline:.1f} | {sp.z} |" for sp in s.spikes
    ]
    return "\n".join(lines) + "\n"


def write_report(
    scored: str | Path, out_html: str | Path, time_column: str | None = None, rule: SpikeRule = SpikeRule()
) -> Summary:
    s = summarize(scored, time_column, rule)
    out_html = Path(out_html)
    out_html.write_text(render_html(s, str(scored)), encoding="utf-8")
    out_html.with_suffix(".json").write_text(json.dumps(asdict(s), indent=2, ensure_ascii=False), encoding="utf-8")
    out_html.with_suffix(".md").write_text(render_markdown(s, str(scored)), encoding="utf-8")
    return s
