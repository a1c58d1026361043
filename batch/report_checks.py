"""Measurements of ``earful report`` on real archives, each writing its figures to a Markdown file.

``python -m earful.batch.report_checks inject SCORED --time-column created_at --out docs/report-injection.md``
    Takes a scored archive, checks that the untouched archive raises no spike in its first weeks, then adds
    ``--posts`` order-error posts written like customers write them (varied wording, one theme: a double charge
    for the same order) on one day and checks that the report flags that day and finds the theme's terms.

``python -m earful.batch.report_checks perf SCORED --rows 200000 1000000 --out docs/report-performance.md``
    Builds archives of ``--rows`` scored rows from a real one (copies spread over a year, each post given one
    extra rare word so that the vocabulary grows as a real archive's does), runs ``earful report`` on it in a
    child process and records the wall time and the child's peak resident memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from earful.batch.report import ReportOptions, parse_time, summarize
from earful.serving.loadtest import machine

# The injected theme: a double charge for one order, said the ways customers say it.
_OPENINGS = ["", "hey ", "hi, ", "seriously ", "ugh ", "um ", "so ", ""]
_BODIES = [
    "I was charged twice for my order #{n}, please refund the duplicate charge",
    "you double charged my card for the same order, order {n}",
    "why is there a duplicate charge on my card?? one order, two payments",
    "got billed twice for order {n}. need the second charge refunded asap",
    "charged twice again for the same order. this is the second time this month",
    "my bank shows two charges for order {n}, only ordered once",
    "double charge on my account for order {n}, who do I talk to about a refund",
    "I only placed one order but was charged twice. please fix the duplicate charge",
    "order {n} went through twice and now I'm charged double",
    "still waiting on the refund for the duplicate charge on order {n}",
]
_ENDINGS = ["", " :(", " !!", " thanks", " please help", " not happy", "", " #fail"]


def injected_posts(k: int, day: dt.date, handle: str, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(k):
        text = rng.choice(_OPENINGS) + rng.choice(_BODIES).format(n=rng.randint(10000, 99999)) + rng.choice(_ENDINGS)
        when = dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randint(0, 14 * 60))
        out.append(
            {
                "id": f"injected-{i}",
                "text": f"{handle} {text}",
                "created_at": when.strftime("%a %b %d %H:%M:%S %z %Y"),
                "complaint_type": "order_error",
                "complaint_type_p_order_error": 0.9,
                "complaint_type_p_product": 0.04,
                "complaint_type_p_poor_service": 0.03,
                "complaint_type_p_none": 0.03,
                "sentiment": "negative",
                "sentiment_p_negative": 0.85,
                "troll": 0.05,
                "is_troll": False,
                "lang": "en",
                "status": "ok",
            }
        )
    return out


def _read(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _write(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(dict.fromkeys(k for r in rows[:1000] for k in r))
    pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)


def inject(args: argparse.Namespace) -> str:
    scored = Path(args.scored)
    rows = _read(scored)
    opts = ReportOptions(time_column=args.time_column)
    lines = [
        "# `earful report`: does it find an injected theme, and stay quiet otherwise?",
        "",
        f"Archive: `{scored.name}` ({len(rows):,} scored posts). Command: `python -m earful.batch.report_checks "
        f"inject {scored.name} --time-column {args.time_column} --posts {args.posts} --day {args.day}`. "
        f"Machine: {machine()}.",
        "",
    ]
    t0 = time.perf_counter()
    base = summarize(scored, options=opts)
    assert base.window is not None
    w = base.window
    early = [sp for sp in base.spikes if sp.start < (dt.date.fromisoformat(w.start) + dt.timedelta(21)).isoformat()]
    lines += [
        "## The untouched archive",
        "",
        f"Reporting window chosen: {w.start} to {w.end} ({len(base.days)} days); {w.before} posts before it and "
        f"{w.after} after (dated posts run from {w.first_post} to {w.last_post}).",
        f"Spikes: {len(base.spikes)} in all, {len(early)} in the first three weeks of the window "
        "(where collection ramps up).",
        "",
    ]
    lines += [
        f"- {sp.series} {sp.start}–{sp.end}: {sp.count} of {sp.posts} posts against {sp.expected:.0f} expected, "
        f"z = {sp.z}; rising terms: {', '.join(t['term'] for t in sp.terms) or 'none'}"
        for sp in base.spikes
    ]
    day = dt.date.fromisoformat(args.day)
    order_before = base.daily["order_error"][base.days.index(args.day)]
    posts_before = base.daily["posts"][base.days.index(args.day)]
    added = injected_posts(args.posts, day, args.handle)
    with tempfile.TemporaryDirectory() as tmp:
        mixed = Path(tmp) / "injected.parquet"
        _write(mixed, rows + added)
        after = summarize(mixed, options=opts)
    found = [sp for sp in after.spikes if sp.series == "order_error" and sp.start <= args.day <= sp.end]
    theme = {"charged", "twice", "charged twice", "duplicate", "duplicate charge", "charge", "double", "refund"}
    lines += [
        "",
        f"## With {args.posts} order-error posts added on {args.day}",
        "",
        f"That day had {posts_before} posts, {order_before} of them order errors. Injected texts are varied "
        f"(e.g. “{added[0]['text']}”, “{added[1]['text']}”).",
        "",
    ]
    if found:
        sp = found[0]
        terms = [t["term"] for t in sp.terms]
        hits = [t for t in terms if t in theme]
        lines += [
            f"**Found**: order errors {sp.start}–{sp.end}, {sp.count} of {sp.posts} posts against "
            f"{sp.expected:.1f} expected, z = {sp.z} ({', '.join(sp.tests)}).",
            "",
            f"Rising terms: {', '.join(terms)}. Of the top five, {len([t for t in terms[:5] if t in theme])} are the "
            f"injected theme's words ({', '.join(hits[:5])}).",
            "",
            "Example posts: " + " / ".join(f"“{ex['text']}”" for ex in sp.examples),
        ]
    else:
        lines.append("**Not found**: no order-error spike covers that day.")
    other = [sp for sp in after.spikes if sp not in found]
    lines += [
        "",
        f"Other spikes after injection: {len(other)} (before injection: {len(base.spikes)}).",
        "",
        f"Two reports took {time.perf_counter() - t0:.1f} s in all.",
    ]
    return "\n".join(lines) + "\n"


def build_archive(scored: Path, out: Path, n_rows: int, seed: int = 0) -> None:
    """``n_rows`` rows from copies of ``scored``'s rows, spread over a year, streamed to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _read(scored)
    base = [r for r in rows if parse_time(r.get("created_at"))]
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    writer = None
    start = dt.datetime(2023, 1, 2, tzinfo=dt.UTC)
    batch: list[dict] = []
    for i in range(n_rows):
        r = dict(base[i % len(base)])
        r["id"] = f"r{i}"
        r["created_at"] = (start + dt.timedelta(seconds=rng.randint(0, 364 * 86400))).isoformat()
        rare = "".join(rng.choice(alphabet) for _ in range(6))  # one rare word per post: a growing vocabulary
        r["text"] = f"{r['text']} {rare}"
        batch.append(r)
        if len(batch) == 50_000 or i == n_rows - 1:
            table = pa.Table.from_pylist(batch)
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table.cast(writer.schema))
            batch = []
    assert writer is not None
    writer.close()


def _timed_report(archive: Path, work: Path) -> tuple[dict, float, float]:
    """``earful report`` on ``archive`` in a fresh child: its printed summary, wall seconds, peak RSS in MiB."""
    script = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); wall = time.perf_counter() - t; "
        "print(json.dumps({'rc': done.returncode, 'out': done.stdout, 'err': done.stderr[-2000:], 'wall': wall, "
        "'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    report = [sys.executable, "-m", "earful.cli", "report", str(archive), "-o", str(work / "report.html")]
    report += ["--time-column", "created_at"]
    done = json.loads(subprocess.run([sys.executable, "-c", script, *report], capture_output=True, text=True).stdout)
    if done["rc"]:
        raise SystemExit(f"earful report failed:\n{done['err']}")
    return json.loads(done["out"]), done["wall"], done["peak_kib"] / 1024  # Linux reports KiB


def perf(args: argparse.Namespace) -> str:
    scored = Path(args.scored)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    table = []
    for n in args.rows:
        archive = work / f"scored-{n}.parquet"
        if not archive.exists():
            build_archive(scored, archive, n)
        out, wall, peak = _timed_report(archive, work)
        size = archive.stat().st_size / 1e6
        table.append(
            f"| {out['rows']:,} | {size:.0f} MB | {out['days']} | {len(out['spikes'])} | {wall:.0f} s "
            f"| {peak:.0f} MiB |"
        )
    rows = " ".join(str(n) for n in args.rows)
    return (
        "# `earful report` on a million scored rows: time and peak memory\n\n"
        f"Command: `python -m earful.batch.report_checks perf {scored.name} --rows {rows}` (builds each archive, "
        "then times `earful report scored-N.parquet -o report.html --time-column created_at` in a fresh child "
        "process; peak memory is that child's maximum resident set size).\n\n"
        f"Archives: rows of the scored SpotifyCares tweets ({scored.name}), copied, spread over a year and each "
        "given one extra rare six-letter word (a vocabulary that keeps growing, the hard case for the term "
        "counters); Parquet.\n\n"
        "| rows | file | days | spikes | wall time | peak resident memory |\n|---|---|---|---|---|---|\n"
        + "\n".join(table)
        + f"\n\nMachine: {machine()}; Python {platform.python_version()}; {os.cpu_count()} cores visible, the "
        "report uses one. The time is two streaming passes over the file (counts, then the terms of the reporting "
        "window), linear in the rows; memory is bounded by the days, the capped term counters (20,000 terms per "
        "compared window, 50,000 for the background, pruned by lossy counting) and the Parquet reader's batches of "
        "4,096 rows, not by the rows: peak memory grows from the smaller archive to the larger as the term "
        "counters fill toward their caps, which is where that growth stops.\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m earful.batch.report_checks", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("inject", help="inject a theme on one day; does the report find it?")
    p.add_argument("scored", help="a scored archive (Parquet)")
    p.add_argument("--time-column", default="created_at")
    p.add_argument("--day", required=True, help="YYYY-MM-DD inside the reporting window")
    p.add_argument("--posts", type=int, default=40)
    p.add_argument("--handle", default="@SpotifyCares")
    p.add_argument("--out", required=True)
    p.set_defaults(func=inject)
    p = sub.add_parser("perf", help="time and peak memory of earful report on many rows")
    p.add_argument("scored", help="a scored archive (Parquet) to copy rows from")
    p.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--workdir", default=tempfile.gettempdir())
    p.add_argument("--out", required=True)
    p.set_defaults(func=perf)
    args = ap.parse_args(argv)
    text = args.func(args)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
