"""``earful score`` and ``earful report``: archives of posts."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from earful.cli.common import UsageError


def _conversation(args: argparse.Namespace, time_column: str | None):
    """The archive's conversation columns as the flags name them (batch/conversation.py)."""
    from earful.batch.conversation import ConversationOptions

    return ConversationOptions(
        id_column=args.id_column,
        author_column=args.author_column,
        inbound_column=args.inbound_column,
        time_column=time_column,
        reply_to_column=args.reply_to_column,
        responses_column=args.responses_column,
        reach_column=args.reach_column,
        brands=args.brand_authors,
        mapping=args.mapping,
        detect_layout=not args.no_threads,
        min_complaints=getattr(args, "min_complaints", 3),
    )


def _add_conversation_flags(p: argparse.ArgumentParser, time_flag: bool) -> None:
    g = p.add_argument_group(
        "conversations",
        "archives of threads: customer posts and brand replies (the Customer Support on Twitter layout, tweet_id, "
        "author_id, inbound, created_at, response_tweet_id, in_response_to_tweet_id, is recognised by its columns)",
    )
    g.add_argument("--id-column", help="post id column")
    g.add_argument("--author-column", help="author column (who is talking, repeat complainers)")
    g.add_argument("--inbound-column", help="true for a customer post, false for a brand reply")
    g.add_argument("--brand-authors", metavar="A,B", help="the brand's author names, where there is no inbound flag")
    g.add_argument("--reply-to-column", help="the id of the post a post answers")
    g.add_argument("--responses-column", help="the ids of a post's replies, comma-separated")
    g.add_argument("--reach-column", help="the author's reach at posting time (followers, say)")
    if time_flag:
        g.add_argument("--time-column", help="post time column (ISO 8601, epoch seconds or Twitter's format)")
    g.add_argument("--mapping", metavar="FILE", help='JSON/TOML file of the above: {"id": ..., "reply_to": ...}')
    g.add_argument("--no-threads", action="store_true", help="do not recognise the TWCS layout by its column names")


def cmd_score(args: argparse.Namespace) -> None:
    from earful.batch.score import ScoreError, ScoreOptions, score

    options = ScoreOptions(
        text_column=args.text_column,
        columns=args.columns,
        chunk_size=args.chunk_size,
        workers=args.workers,
        bundle=args.bundle,
        variant=args.variant,
        batch_size=args.batch_size,
        conversation=_conversation(args, args.time_column),
    )
    try:
        if args.engine == "ray":
            if args.resume:
                raise UsageError(
                    "--resume is for the local engine; with Ray, rerun the job (Ray retries failed tasks itself)"
                )
            from earful.batch.ray_engine import score_with_ray

            summary = score_with_ray(
                args.input, args.output, options, address=args.ray_address, overwrite=args.overwrite
            )
        else:
            summary = score(args.input, args.output, options, resume=args.resume, overwrite=args.overwrite)
    except ScoreError as e:
        raise UsageError(str(e)) from None
    print(json.dumps(asdict(summary), indent=2))


def cmd_report(args: argparse.Namespace) -> None:
    from earful.batch.report import ReportError, ReportOptions, SpikeRule, write_report

    for flag, value in (("--window", args.window), ("--warm-up", args.warm_up), ("--min-count", args.min_count)):
        if value < 1:
            raise UsageError(f"{flag} {value}: give a whole number of at least 1")
    rule = SpikeRule(
        window=args.window,
        min_history=args.warm_up,
        z_threshold=args.z,
        min_count=args.min_count,
        min_ratio=args.min_ratio,
    )
    options = ReportOptions(time_column=args.time_column, since=args.since, until=args.until, rule=rule)
    if args.min_complaints < 1:
        raise UsageError(f"--min-complaints {args.min_complaints}: give a whole number of at least 1")
    from earful.batch.conversation import report_sections

    sections = report_sections(_conversation(args, args.time_column))
    try:
        summary = write_report(args.scored, args.output, options=options, sections=sections)
    except ReportError as e:
        raise UsageError(str(e)) from None
    w = summary.window
    print(
        json.dumps(
            {
                "report": args.output,
                "rows": summary.rows,
                "scored": summary.scored,
                "window": [w.start, w.end] if w else None,
                "days": len(summary.days),
                "dated_posts_outside_window": (w.before + w.after) if w else 0,
                "unparsed_times": summary.unparsed_times,
                "skipped": summary.skipped,
                "spikes": [
                    {
                        "series": sp.series,
                        "days": [sp.start, sp.end],
                        "z": sp.z,
                        "terms": [t["term"] for t in sp.terms[:5]],
                    }
                    for sp in summary.spikes
                ],
                **_conversation_headline(summary.sections),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _conversation_headline(sections: dict) -> dict:
    """First-response times and repeat complainers for the command's summary (the report's JSON has the rest)."""
    threads, people = sections.get("threads") or {}, sections.get("people") or {}
    out = {}
    if threads and not threads.get("absent"):
        u = threads["unanswered_complaints"]
        out["first_response"] = {
            **threads["overall"],
            "complaints_unanswered": u["unanswered"],
            "complaints": u["complaints"],
        }
    if people and not people.get("absent") and people.get("repeat_complainers"):
        out["repeat_complainers"] = people["repeat_complainers"]["count"]
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add the score, report commands."""
    p = sub.add_parser("score", help="score an archive (CSV/JSONL/Parquet, gz/zst) into Parquet/CSV/JSONL, resumably")
    p.add_argument("input", help="posts to score; needs a text column")
    p.add_argument(
        "-o", "--output", required=True, help="output file (.parquet, .csv, .jsonl; .gz/.zst for the text formats)"
    )
    p.add_argument("--resume", action="store_true", help="finish an interrupted run into the same output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--text-column", default="text")
    p.add_argument("--columns", nargs="+", help="input columns to keep (default: all)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (Ray: actors), each with its own onnxruntime session (default 1)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes (default) or a Ray cluster via Ray Data",
    )
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray instance)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=2000,
        help="rows read, scored and written together as one checkpointed part (default 2000)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="posts per onnxruntime run, at most (default 64)")
    p.add_argument("--bundle", help="bundle folder (default: models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default="int8")
    _add_conversation_flags(p, time_flag=True)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "report", help="self-contained HTML report (+ .json/.md) of a scored archive, with early-warning spikes"
    )
    p.add_argument("scored", help="the output of earful score")
    p.add_argument("-o", "--output", required=True, help="report .html (the .json and .md summaries go beside it)")
    p.add_argument(
        "--time-column", help="timestamp column (ISO 8601, epoch seconds or Twitter's format) for trends and spikes"
    )
    p.add_argument("--since", metavar="YYYY-MM-DD", help="first day reported (default: where the data gets dense)")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="last day reported, inclusive (default: where it thins out)")
    p.add_argument("--window", type=int, default=28, help="days of baseline a day is compared with (default 28)")
    p.add_argument("--warm-up", type=int, default=7, help="days of baseline needed before a day is judged (default 7)")
    p.add_argument(
        "--z", type=float, default=3.5, help="z-score of a share (or count) that makes a spike (default 3.5)"
    )
    p.add_argument("--min-count", type=int, default=5, help="smallest daily count that can be a spike (default 5)")
    p.add_argument(
        "--min-ratio", type=float, default=1.5, help="a spike is at least this many times the expected (default 1.5)"
    )
    _add_conversation_flags(p, time_flag=False)
    p.add_argument(
        "--min-complaints", type=int, default=3, help="complaints that make an author a repeat complainer (default 3)"
    )
    p.set_defaults(func=cmd_report)
