"""``earful classify``: one post from the command line, or a stream of posts on stdin."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator

from earful.cli.common import UsageError, bundle_args
from earful.schema import lang_hint


def _stdin_posts(stream) -> Iterator[tuple[int, dict]]:
    """Lines of stdin as posts: a JSON object with "text" (and optional "id",
    "lang"), or a plain line of text."""
    for n, line in enumerate(stream, start=1):
        raw = line.rstrip("\n")
        if not raw.strip():
            continue
        if raw.lstrip().startswith("{"):
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise UsageError(f"stdin line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj.get("text"), str):
                raise UsageError(f"stdin line {n}: field 'text' is missing or not a string")
            if obj.get("lang") is not None:
                try:
                    obj["lang"] = lang_hint(obj["lang"])
                except ValueError as e:
                    raise UsageError(f"stdin line {n}: field 'lang': {e}") from None
            yield n, obj
        else:
            yield n, {"text": raw}


def _result_json(post: dict, prediction) -> str:
    record = {"id": post["id"]} if "id" in post else {}
    record.update(prediction.to_dict())
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # an id holding a lone surrogate (a cut emoji): a JSON escape carries it unchanged
        return json.dumps(record)
    return line


def cmd_classify(args: argparse.Namespace) -> None:
    from earful.models.predictor import Predictor

    if args.text != "-" and args.text is not None:
        posts: Iterator[tuple[int, dict]] = iter([(1, {"text": args.text})])
    elif args.text == "-":
        # bytes that are not UTF-8 become U+FFFD: one bad line must not end the stream
        posts = _stdin_posts(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    else:
        raise UsageError('give a text (earful classify "my order never came") or - to read lines from stdin')
    predictor = Predictor.load(args.bundle, variant=args.variant, threads=args.threads)
    chunk: list[dict] = []

    def flush() -> None:
        preds = predictor.predict([p["text"] for p in chunk], [p.get("lang") for p in chunk])
        for post, pred in zip(chunk, preds, strict=True):
            sys.stdout.write(_result_json(post, pred) + "\n")
        sys.stdout.flush()
        chunk.clear()

    for _, post in posts:
        chunk.append(post)
        if len(chunk) >= args.chunk_size:
            flush()
    if chunk:
        flush()


def register(sub: argparse._SubParsersAction) -> None:
    """Add the classify command."""
    p = sub.add_parser("classify", help="classify a text, or JSON/plain lines from stdin (-)")
    p.add_argument(
        "text",
        nargs="?",
        help='the post, or - to read one post per line from stdin (JSON {"text":..,"id":..,"lang":..} or plain text)',
    )
    bundle_args(p)
    p.add_argument(
        "--chunk-size",
        dest="chunk_size",
        type=int,
        default=64,
        help="posts read from stdin before they are classified and written together (default 64)",
    )
    p.add_argument("--batch-size", dest="chunk_size", type=int, help=argparse.SUPPRESS)  # the old name of --chunk-size
    p.set_defaults(func=cmd_classify)
