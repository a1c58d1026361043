"""``earful report``: what a care team learns from a scored archive.

Reads the output of ``earful score`` as a stream, twice, in bounded memory, and writes one self-contained HTML
page (charts drawn by uPlot, inlined with the data: nothing is fetched to view it) plus ``.json`` and ``.md``
summaries beside it.

Pass 1 counts: the mixes of complaint type, sentiment and language, trolls, posts per day by series, hour and
weekday, the top posts per complaint type (a small heap each), and feeds every row to the extra sections.
Between the passes the reporting window is chosen (:func:`earful.batch.spikes.dense_window`, or
``--since``/``--until``) and spikes are found (:mod:`earful.batch.spikes`). Pass 2 tokenises the posts of the
window (:mod:`earful.batch.terms`) into capped term counters, only for the windows the report compares: each
spike's days against the baseline before it, and the last ``trend_days`` against the ``window`` days before;
every post of the window is the background of the prior. A few candidate example posts are kept per spike.

Sections. The page is a list of sections, each computed from the streamed rows and rendered to HTML, Markdown
and JSON. An extra section (see :class:`Section`) is given to :func:`write_report` as ``sections``: it gets
every row of pass 1, is finished with the file's path, and renders its own fragments from its JSON result.
"""

from __future__ import annotations

import datetime as dt
import heapq
import html
import json
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from earful.batch.spikes import Spike, SpikeRule, Window, dense_window, detect
from earful.batch.terms import TermCounts, rising_terms, terms
from earful.models.bundle import DEFAULT_TROLL_THRESHOLD
from earful.schema import COMPLAINT_TYPES, NOT_A_COMPLAINT, SENTIMENTS
from earful.tabular import TableError, iter_rows

__all__ = ["ReportError", "ReportOptions", "Section", "Spike", "SpikeRule", "Summary", "summarize", "write_report"]

COMPLAINTS = COMPLAINT_TYPES[:3]
DEFAULT_RULE = SpikeRule()
SERIES = (*COMPLAINTS, "negative")  # what spikes and rising terms are computed for
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LABELS = {
    "order_error": "order errors",
    "product": "product complaints",
    "poor_service": "poor-service complaints",
    "negative": "negative posts",
}


class ReportError(ValueError):
    """The file cannot be reported on as asked; the message names the file or column and what to do."""


class Section(Protocol):
    """An extra part of the report, computed in pass 1 and rendered from its JSON-ready result."""

    key: str

    def add(self, data: dict[str, Any]) -> None: ...

    def finish(self, path: str | Path) -> dict[str, Any]: ...

    def render_html(self, result: dict[str, Any]) -> str: ...

    def render_markdown(self, result: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class ReportOptions:
    time_column: str | None = None
    since: str | None = None  # first day of the reporting window (YYYY-MM-DD); None: chosen from the data
    until: str | None = None  # last day, inclusive
    rule: SpikeRule = SpikeRule()
    top_n: int = 5  # top posts per complaint type
    top_terms: int = 10
    examples: int = 3
    trend_days: int = 7
    max_spikes_with_terms: int = 20
    term_cap: int = 20_000  # distinct terms per compared window (see earful.batch.terms on pruning)
    background_cap: int = 50_000
    candidates: int = 200  # example candidates kept per window


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    unscored: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # rows marked ok that could not be read, by reason
    complaint_mix: dict[str, int] = field(default_factory=dict)
    sentiment_mix: dict[str, int] = field(default_factory=dict)
    language_mix: dict[str, int] = field(default_factory=dict)
    troll_share: float = 0.0
    time_column: str | None = None
    unparsed_times: int = 0
    window: Window | None = None
    days: list[str] = field(default_factory=list)
    daily: dict[str, list[int]] = field(default_factory=dict)
    by_hour: list[int] = field(default_factory=list)
    by_weekday: list[int] = field(default_factory=list)
    spikes: list[Spike] = field(default_factory=list)
    trending: dict[str, dict] = field(default_factory=dict)
    top_posts: dict[str, list[dict]] = field(default_factory=dict)
    rule: str = ""
    terms_note: str = ""
    sections: dict[str, Any] = field(default_factory=dict)


# -- reading --------------------------------------------------------------------------------------------------
def parse_time(value) -> dt.datetime | None:
    """ISO 8601, epoch seconds (or milliseconds), or Twitter's "Tue Oct 31 23:36:20 +0000 2017"; None if none."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    s = str(value).strip()
    try:
        number = float(s) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        number = None
    if number is not None:
        if number > 1e11:  # milliseconds
            number /= 1000
        try:
            return dt.datetime.fromtimestamp(number, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
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
    except (TypeError, ValueError, IndexError):
        return None


def _text(value: Any, limit: int) -> str:
    """A post's text for the page: cut to ``limit`` characters, bytes that were not UTF-8 shown as U+FFFD."""
    return str(value if value is not None else "")[:limit].encode("utf-8", "replace").decode("utf-8")


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x else None  # NaN


def _flagged(is_troll: Any, troll: float) -> bool:
    """A scored row's ``is_troll`` (a bool, or its text in a CSV); files scored before that column existed
    are read at the default threshold, 0.5."""
    if is_troll is None or is_troll == "":
        return troll >= DEFAULT_TROLL_THRESHOLD
    return is_troll if isinstance(is_troll, bool) else str(is_troll).strip().lower() in ("true", "1")


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


def _day_arg(value: str | None, flag: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ReportError(f"{flag} {value!r}: give a day as YYYY-MM-DD") from None


def _rows(path: str | Path):
    try:
        yield from iter_rows(path)
    except TableError as e:
        raise ReportError(str(e)) from None


def _series_of(ct: Any, sentiment: Any) -> list[str]:
    out = [ct] if ct in COMPLAINTS else []
    if sentiment == "negative":
        out.append("negative")
    return out


def _p(r: dict, series: str) -> float:
    col = "sentiment_p_negative" if series == "negative" else f"complaint_type_p_{series}"
    return _num(r.get(col)) or 0.0


# -- pass 1 ---------------------------------------------------------------------------------------------------
@dataclass
class _Counts:
    complaint: Counter = field(default_factory=Counter)
    sentiment: Counter = field(default_factory=Counter)
    language: Counter = field(default_factory=Counter)
    unscored: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    daily: dict = field(default_factory=lambda: defaultdict(Counter))  # day → series/hour → posts
    trolls: int = 0


def _pass1(path, opts: ReportOptions, s: Summary, sections: list[Section]) -> _Counts:
    k = _Counts()
    heaps: dict[str, list] = {c: [] for c in COMPLAINTS}
    for row in _rows(path):
        r = row.data
        if not s.rows:
            _check_columns(path, r, opts.time_column)
        s.rows += 1
        for section in sections:
            section.add(r)
        if r.get("status") != "ok":
            k.unscored[str(r.get("status"))] += 1
            continue
        ct, sent = r.get("complaint_type"), r.get("sentiment")
        if ct not in COMPLAINT_TYPES:
            k.skipped[f"complaint_type not one of {', '.join(COMPLAINT_TYPES)}"] += 1
            continue
        s.scored += 1
        k.complaint[ct] += 1
        k.sentiment[sent if sent in SENTIMENTS else "unknown"] += 1
        k.language[str(r.get("lang"))] += 1
        troll = _num(r.get("troll")) or 0.0
        k.trolls += _flagged(r.get("is_troll"), troll)
        if ct in heaps:
            p = _p(r, ct)
            item = (
                p,
                -s.rows,
                {
                    "text": _text(r.get("text"), 400),
                    "id": _text(r.get("id"), 80),
                    "p": round(p, 3),
                    "troll": round(troll, 3),
                },
            )
            (heapq.heappush if len(heaps[ct]) < opts.top_n else heapq.heappushpop)(heaps[ct], item)
        if opts.time_column:
            when = parse_time(r.get(opts.time_column))
            if when is None:
                s.unparsed_times += 1
                continue
            day = k.daily[when.date().isoformat()]
            day["posts"] += 1
            day[ct] += 1
            day["negative"] += sent == "negative"
            day[when.hour] += 1
    if not s.rows:
        raise ReportError(f"{path}: no rows to report on")
    s.top_posts = {c: [item for _, _, item in sorted(heaps[c], reverse=True)] for c in COMPLAINTS}
    return k


def _choose_window(daily: dict[str, Counter], opts: ReportOptions) -> Window | None:
    since, until = _day_arg(opts.since, "--since"), _day_arg(opts.until, "--until")
    if since and until and since > until:
        raise ReportError(f"--since {since} is after --until {until}")
    dated = {d: c["posts"] for d, c in daily.items() if c["posts"]}
    if not dated:
        return None
    if since or until:
        start = (since or dt.date.fromisoformat(min(dated))).isoformat()
        end = (until or dt.date.fromisoformat(max(dated))).isoformat()
        how = "given"
    else:
        start, end = dense_window(dated)
        how = "dense" if (start, end) != (min(dated), max(dated)) else "all"
    return Window(
        start=start,
        end=end,
        how=how,
        before=sum(n for d, n in dated.items() if d < start),
        after=sum(n for d, n in dated.items() if d > end),
        first_post=min(dated),
        last_post=max(dated),
    )


# -- pass 2: terms and examples ---------------------------------------------------------------------------------
@dataclass
class _Compare:
    """One comparison of terms: posts of ``series`` on ``target`` days against those on ``reference`` days."""

    series: str
    target: set[str]
    reference: set[str]
    now: TermCounts
    before: TermCounts
    candidates: list = field(default_factory=list)  # heap of (-priority, row, post) kept small


def _days_between(a: str, b: str) -> list[str]:
    d0, d1 = dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    return [(d0 + dt.timedelta(i)).isoformat() for i in range((d1 - d0).days + 1)]


def _pass2(path, opts: ReportOptions, s: Summary) -> None:
    w = s.window
    assert w is not None
    rule = opts.rule
    compares: list[tuple[Any, _Compare]] = []  # (spike or trending key, comparison)
    for sp in s.spikes[: opts.max_spikes_with_terms]:
        start = dt.date.fromisoformat(sp.start)
        ref = {(start - dt.timedelta(i)).isoformat() for i in range(1, rule.window + 1)}
        ref = {d for d in ref if w.start <= d}
        target = set(_days_between(sp.start, sp.end))
        compares.append((sp, _Compare(sp.series, target, ref, TermCounts(opts.term_cap), TermCounts(opts.term_cap))))
    if len(s.days) >= opts.trend_days + rule.min_history:
        last = s.days[-opts.trend_days :]
        before = s.days[max(0, len(s.days) - opts.trend_days - rule.window) : len(s.days) - opts.trend_days]
        for series in SERIES:
            c = _Compare(series, set(last), set(before), TermCounts(opts.term_cap), TermCounts(opts.term_cap))
            compares.append((series, c))
        s.trending = {
            series: {"days": [last[0], last[-1]], "compared_with": [before[0], before[-1]]} for series in SERIES
        }
    background = TermCounts(opts.background_cap)
    by_day: dict[str, list[tuple[_Compare, bool]]] = defaultdict(list)
    for _, c in compares:
        for d in c.target:
            by_day[d].append((c, True))
        for d in c.reference:
            by_day[d].append((c, False))
    n = 0
    for row in _rows(path):
        r = row.data
        n += 1
        if r.get("status") != "ok" or r.get("complaint_type") not in COMPLAINT_TYPES:
            continue
        when = parse_time(r.get(opts.time_column))
        if when is None:
            continue
        day = when.date().isoformat()
        if not (w.start <= day <= w.end):
            continue
        post_terms = terms(r.get("text"))
        background.add(post_terms)
        jobs = by_day.get(day)
        if not jobs:
            continue
        member = _series_of(r.get("complaint_type"), r.get("sentiment"))
        for c, is_target in jobs:
            if c.series not in member:
                continue
            if not is_target:
                c.before.add(post_terms)
                continue
            c.now.add(post_terms)
            # a fixed pseudo-random sample of the target's posts (the same for the same file)
            key = zlib.crc32(f"{n}:{r.get('id')}".encode("utf-8", "surrogatepass"))
            post = {
                "id": _text(r.get("id"), 80),
                "day": day,
                "text": _text(r.get("text"), 400),
                "p": round(_p(r, c.series), 3),
            }
            item = (-key, n, post, post_terms)
            (heapq.heappush if len(c.candidates) < opts.candidates else heapq.heappushpop)(c.candidates, item)
    for owner, c in compares:
        found = rising_terms(c.now, c.before, background, top=opts.top_terms)
        top_terms = [t.term for t in found[:5]]
        examples = _examples(c.candidates, top_terms, opts.examples)
        term_dicts = [asdict(t) for t in found]
        # when nothing rose (a spike of the usual talk), what the posts say most is still worth showing
        common = [] if found else [[t, n] for t, n in sorted(c.now.counts.items(), key=lambda x: (-x[1], x[0]))[:8]]
        if not found and common:
            examples = _examples(c.candidates, [t for t, _ in common[:5]], opts.examples)
        if isinstance(owner, Spike):
            owner.terms, owner.common_terms, owner.examples = term_dicts, common, examples
        else:
            s.trending[owner].update(
                posts=c.now.docs,
                reference_posts=c.before.docs,
                terms=term_dicts,
                common_terms=common,
                examples=examples,
            )
    s.terms_note = (
        "terms rank by the log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008) of the share "
        "of posts using them, against the days before; the prior is every post of the reporting window "
        f"({background.docs} posts). Words, two-word phrases and character bigrams of scripts without spaces; "
        "stop words, @handles and URLs left out"
        + (f"; counts of rare terms are low by at most {background.error} after pruning" if background.error else "")
    )


def _examples(candidates: list, top_terms: list[str], k: int) -> list[dict]:
    """Posts that use the most of the top rising terms (the stronger terms first), then the most confident."""
    weight = {t: len(top_terms) - i for i, t in enumerate(top_terms)}
    ranked = sorted(candidates, key=lambda it: (-sum(weight.get(t, 0) for t in it[3]), -it[2]["p"], it[1]))
    out, seen = [], set()
    for _, _, post, post_terms in ranked:
        norm = " ".join(post["text"].casefold().split())
        if norm in seen:
            continue
        seen.add(norm)
        out.append({**post, "terms": [t for t in top_terms if t in post_terms]})
        if len(out) == k:
            break
    return out


# -- the summary ----------------------------------------------------------------------------------------------
def summarize(
    path: str | Path,
    time_column: str | None = None,
    rule: SpikeRule = DEFAULT_RULE,
    top_n: int = 5,
    *,
    options: ReportOptions | None = None,
    sections: list[Section] | tuple[Section, ...] = (),
) -> Summary:
    opts = options or ReportOptions(time_column=time_column, rule=rule, top_n=top_n)
    s = Summary(rule=opts.rule.describe(), time_column=opts.time_column)
    k = _pass1(path, opts, s, list(sections))
    s.complaint_mix = {c: k.complaint.get(c, 0) for c in COMPLAINT_TYPES}
    s.sentiment_mix = {c: k.sentiment.get(c, 0) for c in SENTIMENTS}
    s.language_mix = dict(k.language.most_common())
    s.unscored, s.skipped = dict(k.unscored), dict(k.skipped)
    s.troll_share = k.trolls / s.scored if s.scored else 0.0
    if opts.time_column:
        s.window = _choose_window(k.daily, opts)
    if s.window is not None:
        s.days = _days_between(s.window.start, s.window.end)
        for series in ("posts", *COMPLAINTS, NOT_A_COMPLAINT, "negative"):
            s.daily[series] = [k.daily[d][series] if d in k.daily else 0 for d in s.days]
        s.by_hour = [sum(k.daily[d][h] for d in s.days if d in k.daily) for h in range(24)]
        weekdays = [0] * 7
        for d, n in zip(s.days, s.daily["posts"], strict=True):
            weekdays[dt.date.fromisoformat(d).weekday()] += n
        s.by_weekday = weekdays
        s.spikes = detect(s.days, s.daily, SERIES, opts.rule)
        if sum(s.daily["posts"]):
            _pass2(path, opts, s)
    for section in sections:
        s.sections[section.key] = section.finish(path)
    return s


# -- rendering ------------------------------------------------------------------------------------------------
def _asset(name: str) -> str:
    return resources.files("earful.batch").joinpath("assets", name).read_text(encoding="utf-8")


def _pct(x: float) -> str:
    if 0 < x < 0.001:
        return "<0.1%"
    return f"{100 * x:.1f}%" if x < 0.1 else f"{100 * x:.0f}%"


def _nice_day(day: str) -> str:
    d = dt.date.fromisoformat(day)
    return f"{WEEKDAYS[d.weekday()]} {d.day} {d.strftime('%b %Y')}"


def _span(a: str, b: str) -> str:
    return _nice_day(a) if a == b else f"{_nice_day(a)} – {_nice_day(b)}"


def _window_text(s: Summary) -> str:
    w = s.window
    if w is None:
        return ""
    how = {
        "dense": "chosen where the data is dense",
        "given": "as given (--since/--until)",
        "all": "every dated post",
    }[w.how]
    out = f"{_span(w.start, w.end)} ({len(s.days)} days, {how})"
    if w.before or w.after:
        out += (
            f"; {w.before + w.after} dated posts fall outside it ({w.before} before, {w.after} after; "
            f"dated posts run from {w.first_post} to {w.last_post})"
        )
    return out


def _bars(title: str, items: list[tuple[str, int]], total: int | None = None) -> str:
    e = html.escape
    total = total if total is not None else sum(v for _, v in items)
    top = max([v for _, v in items] + [1])
    rows = "".join(
        f"<tr><td>{e(str(k))}</td><td class='bar'><span style='width:{100 * v / top:.1f}%'></span></td>"
        f"<td class='num'>{v:,}</td><td class='num'>{_pct(v / total) if total else ''}</td></tr>"
        for k, v in items
    )
    return f"<div class='mix'><h3>{e(title)}</h3><table>{rows}</table></div>"


def _columns(title: str, items: list[tuple[str, int]]) -> str:
    """A compact column chart in HTML (hover a column for its numbers)."""
    e = html.escape
    total, top = sum(v for _, v in items) or 1, max([v for _, v in items] + [1])
    cols = "".join(
        f"<div title='{e(k)}: {v:,} posts ({_pct(v / total)})'><span style='height:{100 * v / top:.1f}%'></span>"
        f"<small>{e(k)}</small></div>"
        for k, v in items
    )
    return f"<div class='mix'><h3>{e(title)}</h3><div class='cols'>{cols}</div></div>"


def _term_chips(found: list[dict], common: list | None = None) -> str:
    e = html.escape
    if not found:
        said = ", ".join(f"{e(t)} ({n})" for t, n in common or [])
        return "<p class='muted'>No term rose clearly: these posts use the same words as before" + (
            f"; most used: {said}.</p>" if said else ".</p>"
        )
    return (
        "<ul class='terms'>"
        + "".join(
            f"<li title='in {t['posts']} posts: {_pct(t['before_share'])} of posts before, {_pct(t['share'])} now; "
            f"z = {t['z']}'>{e(t['term'])} <small>{_pct(t['before_share'])}→{_pct(t['share'])}</small></li>"
            for t in found
        )
        + "</ul>"
    )


def _example_list(examples: list[dict]) -> str:
    e = html.escape
    if not examples:
        return ""
    items = "".join(
        f"<li><span class='muted'>{e(ex['day'])} · id {e(str(ex['id']))}</span> {e(ex['text'][:280])}</li>"
        for ex in examples
    )
    return f"<ol class='examples'>{items}</ol>"


def _spike_html(sp: Spike) -> str:
    e = html.escape
    label = LABELS.get(sp.series, sp.series)
    days = f"{len(sp.days)} flagged day{'s' if len(sp.days) > 1 else ''}" if sp.start != sp.end else "one day"
    how = " and ".join("share of posts" if t == "share" else "count" for t in sp.tests)
    body = (
        f"<div class='spike'><h3>{e(label.capitalize())} · {e(_span(sp.start, sp.end))}</h3>"
        f"<p><b>{sp.count:,}</b> of {sp.posts:,} posts ({_pct(sp.share)}) against <b>{sp.expected:,.0f}</b> expected "
        f"({_pct(sp.baseline_share)} of posts); {days}, peak {e(sp.peak)} at z = {sp.z} ({how}).</p>"
        f"<h4>Rising terms</h4>{_term_chips(sp.terms, sp.common_terms)}"
        f"<h4>Example posts</h4>{_example_list(sp.examples)}</div>"
    )
    return body


def _chart_data(s: Summary) -> dict:
    if not s.days:
        return {}
    xs = [int(dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC).timestamp()) for d in s.days]
    posts = s.daily["posts"]
    share = {k: [round(100 * c / n, 2) if n else None for c, n in zip(s.daily[k], posts, strict=True)] for k in SERIES}
    marks: list[float | None] = [None] * len(xs)
    index = {d: i for i, d in enumerate(s.days)}
    for sp in s.spikes:
        for f in sp.days:
            i = index[f.day]
            v = share[sp.series][i]
            if v is not None:
                marks[i] = max(marks[i] or 0, v)
    return {
        "x": xs,
        "posts": posts,
        "counts": {k: s.daily[k] for k in SERIES},
        "share": share,
        "spikes": marks,
        "labels": LABELS,
    }


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1180px;margin:0 auto;
padding:16px 24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}h3{font-size:15px;margin:0 0 6px}h4{font-size:13px;margin:10px 0 4px;color:#57606a}
.muted{color:#57606a}.facts{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.fact{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:130px}
.fact b{display:block;font-size:20px}.fact.alert{border-color:#cf222e}.fact.alert b{color:#cf222e}
.spike{border:1px solid #d0d7de;border-left:4px solid #cf222e;border-radius:6px;padding:10px 14px;margin:10px 0}
ul.terms{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:6px}
ul.terms li{background:#fff1e5;border:1px solid #f3c89f;border-radius:12px;padding:1px 9px;cursor:default}
ul.terms small{color:#8c5a2b}ol.examples{margin:0;padding-left:20px}ol.examples li{margin:3px 0}
.trend{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.trend>div{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px}
.mixes{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.mix table{border-collapse:collapse;width:100%}.mix td{padding:1px 6px;font-size:13px}
td.bar{width:55%}td.bar span{display:block;height:11px;background:#54aeff;border-radius:2px}
td.num{text-align:right;font-variant-numeric:tabular-nums;color:#57606a}
table.posts{border-collapse:collapse;width:100%}table.posts td,table.posts th{border-top:1px solid #d0d7de;
padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}
.cols{display:flex;align-items:flex-end;gap:2px;height:120px;padding-bottom:16px}
.cols>div{flex:1;height:100%;display:flex;flex-direction:column;justify-content:flex-end;position:relative}
.cols span{display:block;background:#54aeff;border-radius:2px 2px 0 0}
.cols small{position:absolute;bottom:-16px;left:0;right:0;text-align:center;font-size:10px;color:#57606a}
.chart{margin:8px 0 18px}details{margin:6px 0}summary{cursor:pointer}
small.note{color:#57606a;display:block;margin-top:6px}
"""

_JS = """
(function(){
const D = JSON.parse(document.getElementById('earful-data').textContent);
if (!D.x) return;
const colors = {order_error:'#cf222e', product:'#bc4c00', poor_service:'#8250df', negative:'#0969da'};
const fmtDay = ts => new Date(ts*1000).toISOString().slice(0,10);
function make(el, series, data, yLabel) {
  const opts = {width: el.clientWidth, height: 240, series: [{value:(u,v)=>v==null?'':fmtDay(v)}].concat(series),
    axes: [{}, {label: yLabel, size: 60}], cursor: {drag: {x: true, y: false}}, scales: {x: {time: true}}};
  const u = new uPlot(opts, data, el);
  window.addEventListener('resize', () => u.setSize({width: el.clientWidth, height: 240}));
}
make(document.getElementById('chart-posts'),
  [{label: 'posts', stroke: '#57606a', fill: 'rgba(87,96,106,0.12)', width: 1.5}].concat(
   Object.keys(D.counts).map(k => ({label: D.labels[k], stroke: colors[k], width: 1.2, show: k !== 'negative'}))),
  [D.x, D.posts].concat(Object.keys(D.counts).map(k => D.counts[k])), 'posts per day');
make(document.getElementById('chart-share'),
  Object.keys(D.share).map(k => ({label: D.labels[k] + ' %', stroke: colors[k], width: 1.4,
                                   value: (u,v) => v==null ? '' : v.toFixed(1) + '%'}))
   .concat([{label: 'spike day', stroke: '#cf222e', width: 0, paths: () => null,
             points: {show: true, size: 11, width: 2, fill: '#fff'}, value: (u,v) => v==null ? '' : 'spike'}]),
  [D.x].concat(Object.keys(D.share).map(k => D.share[k])).concat([D.spikes]), '% of the day\\'s posts');
})();
"""


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no '</script>' or '<!--' can appear)."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(s: Summary, source: str, sections: list[Section] | tuple[Section, ...] = ()) -> str:
    e = html.escape
    unscored = sum(s.unscored.values()) + sum(s.skipped.values())
    facts = [
        ("posts", f"{s.rows:,}", f"{s.scored:,} scored" + (f", {unscored:,} not" if unscored else "")),
        (
            "complaints",
            f"{sum(s.complaint_mix[c] for c in COMPLAINTS):,}",
            _pct(sum(s.complaint_mix[c] for c in COMPLAINTS) / s.scored) + " of scored posts" if s.scored else "",
        ),
        (
            "negative",
            f"{s.sentiment_mix.get('negative', 0):,}",
            _pct(s.sentiment_mix.get("negative", 0) / s.scored) + " of scored posts" if s.scored else "",
        ),
        ("flagged as trolling", _pct(s.troll_share), "is_troll: the model's decision"),
    ]
    if s.window is not None:
        facts.insert(1, ("days reported", f"{len(s.days)}", f"{s.window.start} to {s.window.end}"))
        facts.append(("spikes", f"{len(s.spikes)}", "early warnings below"))
    fact_html = "".join(
        f"<div class='fact{' alert' if k == 'spikes' and s.spikes else ''}'><b>{e(v)}</b>{e(k)}"
        f"<br><span class='muted'>{e(sub)}</span></div>"
        for k, v, sub in facts
    )
    notes = []
    if s.unscored:
        notes.append("rows with nothing to score: " + ", ".join(f"{n:,} {e(k)}" for k, n in s.unscored.items()))
    if s.skipped:
        notes.append("rows skipped: " + ", ".join(f"{n:,} with {e(k)}" for k, n in s.skipped.items()))
    if s.unparsed_times:
        notes.append(
            f"{s.unparsed_times:,} scored posts have no readable time in <code>{e(str(s.time_column))}</code>; "
            "they count in the mixes but not in trends or spikes"
        )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>earful report: {e(source)}</title><style>{_asset('uPlot.min.css')}{_CSS}</style></head><body>",
        f"<h1>earful report</h1><p class='muted'>{e(source)}</p><div class='facts'>{fact_html}</div>",
    ]
    if s.window is not None:
        parts.append(f"<p><b>Reporting window:</b> {e(_window_text(s))}.</p>")
    if notes:
        parts.append("<p class='muted'>" + "; ".join(notes) + ".</p>")

    parts.append("<h2>Early warnings</h2>")
    if not s.time_column:
        parts.append("<p>No time column given (<code>--time-column</code>), so no trends, spikes or rising terms.</p>")
    elif s.window is None:
        parts.append(f"<p>No post has a readable time in <code>{e(s.time_column)}</code>: no trends or spikes.</p>")
    elif s.spikes:
        parts += [_spike_html(sp) for sp in s.spikes]
    else:
        parts.append(
            "<p>No spikes: no complaint type (nor negative sentiment) rose clearly above its recent level.</p>"
        )
    if s.window is not None:
        parts.append(f"<small class='note'>How: {e(s.rule)}.</small>")

    if s.trending:
        first = next(iter(s.trending.values()))
        parts.append(
            f"<h2>Trending: {e(_span(*first['days']))}</h2><p class='muted'>What each kind of post talks about more "
            f"than in the {len(_days_between(*first['compared_with']))} days before.</p><div class='trend'>"
        )
        for series, t in s.trending.items():
            parts.append(
                f"<div><h3>{e(LABELS[series].capitalize())} <span class='muted'>({t.get('posts', 0):,} posts)</span>"
                f"</h3>{_term_chips(t.get('terms', []), t.get('common_terms'))}</div>"
            )
        parts.append("</div>")
    if s.terms_note:
        parts.append(f"<small class='note'>Rising terms: {e(s.terms_note)}.</small>")

    if s.days:
        parts.append(
            "<h2>Over time</h2><p class='muted'>Hover for the values of a day; drag across a chart to zoom, "
            "double-click to zoom out; click a legend entry to hide or show it.</p>"
            "<h3>Posts per day</h3><div class='chart' id='chart-posts'></div>"
            "<h3>Share of each day's posts</h3><div class='chart' id='chart-share'></div>"
        )
    parts.append("<h2>Mix</h2><div class='mixes'>")
    parts.append(_bars("Complaint type", list(s.complaint_mix.items()), s.scored))
    parts.append(_bars("Sentiment", list(s.sentiment_mix.items()), s.scored))
    langs = list(s.language_mix.items())
    if len(langs) > 10:
        langs = langs[:10] + [(f"{len(langs) - 10} others", sum(v for _, v in langs[10:]))]
    parts.append(_bars("Language", langs, s.scored))
    if s.days:
        parts.append(
            _columns("Hour of day (UTC), reporting window", [(f"{h:02d}", n) for h, n in enumerate(s.by_hour)])
        )
        parts.append(_bars("Day of week, reporting window", list(zip(WEEKDAYS, s.by_weekday, strict=True))))
    parts.append("</div>")

    parts.append("<h2>Most confident complaints per type</h2>")
    for ct, posts in s.top_posts.items():
        rows = "".join(
            f"<tr><td>{p['p']}</td><td>{p['troll']}</td><td>{e(str(p['id']))}</td><td>{e(str(p['text'])[:300])}</td></tr>"
            for p in posts
        )
        parts.append(
            f"<details><summary>{e(LABELS[ct].capitalize())} ({s.complaint_mix.get(ct, 0):,})</summary>"
            f"<table class='posts'><tr><th>p</th><th>troll</th><th>id</th><th>text</th></tr>{rows}</table></details>"
        )
    for section in sections:
        parts.append(section.render_html(s.sections.get(section.key, {})))
    parts.append(
        f"<script id='earful-data' type='application/json'>{_script_json(_chart_data(s))}</script>"
        f"<script>{_asset('uPlot.iife.min.js')}</script><script>{_JS}</script></body></html>"
    )
    return "\n".join(parts)


def _md_terms(found: list[dict]) -> str:
    if not found:
        return "no term rose clearly"
    return ", ".join(f"{t['term']} ({_pct(t['before_share'])}→{_pct(t['share'])})" for t in found)


def render_markdown(s: Summary, source: str, sections: list[Section] | tuple[Section, ...] = ()) -> str:
    lines = [
        f"# earful report: {source}",
        "",
        f"{s.rows} posts, {s.scored} scored; troll share {100 * s.troll_share:.1f}%.",
    ]
    if s.unscored or s.skipped or s.unparsed_times:
        lines.append(
            f"Not scored: {s.unscored or 'none'}; skipped: {s.skipped or 'none'}; "
            f"scored posts without a readable time: {s.unparsed_times}."
        )
    if s.window is not None:
        lines += ["", f"Reporting window: {_window_text(s)}."]
    lines += ["", "| complaint type | posts |", "|---|---|"] + [f"| {k} | {v} |" for k, v in s.complaint_mix.items()]
    lines += ["", "| sentiment | posts |", "|---|---|"] + [f"| {k} | {v} |" for k, v in s.sentiment_mix.items()]
    lines += ["", "## Early warnings", ""]
    if not s.spikes:
        lines.append("No spikes." if s.window is not None else "No time column or no readable times: no spikes.")
    for sp in s.spikes:
        lines += [
            f"### {LABELS.get(sp.series, sp.series).capitalize()}: {_span(sp.start, sp.end)}",
            "",
            f"{sp.count} of {sp.posts} posts ({_pct(sp.share)}) against {sp.expected:.0f} expected "
            f"({_pct(sp.baseline_share)}); peak {sp.peak}, z = {sp.z} ({', '.join(sp.tests)}).",
            "",
            f"Rising terms: {_md_terms(sp.terms)}.",
            "",
        ] + [f"- {ex['day']} ({ex['id']}): {' '.join(ex['text'].split())[:280]}" for ex in sp.examples]
        lines.append("")
    if s.window is not None:
        lines += ["", f"Spike rule: {s.rule}."]
    if s.trending:
        first = next(iter(s.trending.values()))
        lines += ["", f"## Trending: {_span(*first['days'])}", ""]
        lines += [f"- {LABELS[k]}: {_md_terms(t.get('terms', []))}" for k, t in s.trending.items()]
    if s.terms_note:
        lines += ["", f"Rising terms: {s.terms_note}."]
    for section in sections:
        lines += ["", section.render_markdown(s.sections.get(section.key, {}))]
    return "\n".join(lines) + "\n"


def write_report(
    scored: str | Path,
    out_html: str | Path,
    time_column: str | None = None,
    rule: SpikeRule = DEFAULT_RULE,
    *,
    since: str | None = None,
    until: str | None = None,
    options: ReportOptions | None = None,
    sections: list[Section] | tuple[Section, ...] = (),
) -> Summary:
    opts = options or ReportOptions(time_column=time_column, since=since, until=until, rule=rule)
    s = summarize(scored, options=opts, sections=sections)
    out_html = Path(out_html)
    out_html.write_text(render_html(s, str(scored), sections), encoding="utf-8")
    out_html.with_suffix(".json").write_text(json.dumps(asdict(s), indent=2, ensure_ascii=False), encoding="utf-8")
    out_html.with_suffix(".md").write_text(render_markdown(s, str(scored), sections), encoding="utf-8")
    return s
