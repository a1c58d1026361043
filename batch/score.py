"""``earful score``: score an archive of posts, in bounded memory, resumably.

How nothing is lost or doubled:

* The input is read as a stream and cut into chunks of ``chunk_size`` rows;
  chunk *k* is always input rows ``[k·C, (k+1)·C)``.
* Each scored chunk is written to ``<OUT>.partial/part-<k>.parquet`` through a
  temporary file and an atomic rename, so a part on disk is always complete.
  Parts are written in chunk order, so the parts present are always chunks
  ``0..n-1``.
* ``--resume`` checks that the input and options are the ones recorded in
  ``<OUT>.partial/run.json``, skips the ``n·C`` rows already scored and goes on;
  ``--overwrite`` discards the parts of an interrupted or failed run and starts over.
* When every chunk is done the parts are joined into ``OUT`` through a
  temporary file and an atomic rename: ``OUT`` exists only when complete.

Rows with nothing to score (null, empty or undecodable text) get
``status`` = ``null``/``empty``/``undecodable`` and ``lang`` = ``und``; they
are counted and kept, never dropped. A text holding half of a surrogate pair
(a JSON ``"\\ud83d"`` of a cut emoji) is scored with U+FFFD in its place and
counted in the summary (``rows_with_replaced_characters``).

Conversations (:mod:`earful.batch.threads`): in an archive whose columns say which posts are the brand's (the
Customer Support on Twitter layout is recognised; others name their columns in
``ScoreOptions.conversation``), only customer posts are classified. A brand reply is kept with empty
predictions, ``status`` = ``brand_reply`` and ``role`` = ``brand``; with ids, times and reply links, each
customer post also gets ``replied``, ``first_reply_at`` (UTC) and ``response_seconds`` (to the brand's first
reply). The replies are found in one pass over the whole input before scoring starts, so every chunk, resumed or
not, sees the same answer; that pass keeps about 40 bytes per row (see :mod:`earful.batch.threads`).

The engines share this module's public functions: :func:`kept_columns`,
:func:`output_schema`, :func:`init_worker`, :func:`score_texts`,
:func:`output_records` and :func:`assemble`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from earful.batch.conversation import ConversationOptions
from earful.batch.threads import (
    BRAND,
    BRAND_STATUS,
    THREAD_FIELDS,
    Replies,
    ThreadColumns,
    build_replies,
    explain,
    layout_hint,
)
from earful.models.tokenization import replace_lone_surrogates
from earful.schema import COMPLAINT_TYPES, SENTIMENTS
from earful.tabular import TableError, count_rows, detect_format, has_undecodable, iter_rows, open_text_writer

PART_GLOB = "part-*.parquet"
RUN_FILE = "run.json"


class ScoreError(RuntimeError):
    """A scoring run cannot start or continue; the message says what to do."""


@dataclass
class ScoreOptions:
    text_column: str = "text"
    columns: list[str] | None = None
    chunk_size: int = 2000
    workers: int = 1
    bundle: str | None = None
    variant: str = "int8"
    batch_size: int = 64
    #: The archive's conversation columns as given (flags, a mapping file); the TWCS layout is recognised unless
    #: ``detect_layout`` is off. Recorded for ``--resume`` as the mapping it resolves to.
    conversation: ConversationOptions = field(default_factory=ConversationOptions)


@dataclass
class ScoreSummary:
    output: str
    rows: int
    seconds: float
    rows_per_second: float
    status_counts: dict[str, int] = field(default_factory=dict)
    resumed_from_row: int = 0
    columns_kept: list[str] = field(default_factory=list)
    #: Rows (JSONL) carrying fields that the first row lacked; those fields are not in the output.
    rows_with_fields_not_kept: int = 0
    #: Rows whose text held half of a surrogate pair (a cut emoji): scored with U+FFFD in its place (local engine).
    rows_with_replaced_characters: int = 0
    #: Conversation archives: {"customer": posts classified, "brand": brand replies kept unclassified}.
    roles: dict[str, int] = field(default_factory=dict)
    #: Conversation archives with reply links: what the reply lookup found and left out, with reasons.
    threads: dict[str, Any] = field(default_factory=dict)


def _fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


#: earful's output columns and their types ("f64", "str", "bool", "int"), the label columns from earful.schema.
PREDICTION_FIELDS: tuple[tuple[str, str], ...] = (
    ("complaint_type", "str"),
    *((f"complaint_type_p_{label}", "f64") for label in COMPLAINT_TYPES),
    ("sentiment", "str"),
    *((f"sentiment_p_{label}", "f64") for label in SENTIMENTS),
    ("troll", "f64"),
    ("is_troll", "bool"),
    ("lang", "str"),
    ("lang_confidence", "f64"),
    ("lang_source", "str"),
    ("truncated", "bool"),
    ("n_tokens", "int"),
    ("status", "str"),
)


def prediction_columns() -> list[str]:
    return [name for name, _ in PREDICTION_FIELDS]


# -- worker side ------------------------------------------------------------
_PREDICTOR = None


def init_worker(bundle: str | None, variant: str, threads: int) -> None:
    """Load this process's predictor, once (a pool initializer, or a Ray actor's constructor)."""
    global _PREDICTOR
    from earful.models.predictor import Predictor

    _PREDICTOR = Predictor.load(bundle, variant=variant, threads=threads)


def _needs_replacement(text: Any) -> bool:
    """A text that is scored with U+FFFD in place of half a surrogate pair (not undecodable bytes: those rows
    are marked ``undecodable`` and not scored)."""
    return isinstance(text, str) and not has_undecodable(text) and replace_lone_surrogates(text) != text


def score_texts(texts: list[Any], batch_size: int) -> list[dict[str, Any]]:
    """Predictions for one chunk of raw text cells (None, undecodable or str), after :func:`init_worker`."""
    if not texts:  # a chunk of brand replies only
        return []
    status = []
    clean = []
    for t in texts:
        if t is None:
            status.append("null")
            clean.append("")
        elif not isinstance(t, str):
            status.append("ok")
            clean.append(str(t))
        elif has_undecodable(t):
            status.append("undecodable")
            clean.append("")
        else:
            status.append(None)
            clean.append(t)
    preds = _PREDICTOR.predict(clean, batch_size=batch_size)
    rows = []
    for st, p in zip(status, preds, strict=True):
        ct, sent = p.complaint_type, p.sentiment
        rows.append(
            {
                "complaint_type": ct.label,
                **{f"complaint_type_p_{k}": ct.probabilities.get(k) for k in COMPLAINT_TYPES},
                "sentiment": sent.label,
                **{f"sentiment_p_{k}": sent.probabilities.get(k) for k in SENTIMENTS},
                "troll": p.troll,
                "is_troll": p.is_troll,
                "lang": p.lang.code,
                "lang_confidence": p.lang.confidence,
                "lang_source": p.lang.source,
                "truncated": p.truncated,
                "n_tokens": p.n_tokens,
                "status": st if st in ("null", "undecodable") else p.status,
            }
        )
    return rows


def _score_chunk(args: tuple[int, list[Any], int]) -> tuple[int, list[dict[str, Any]]]:
    k, texts, batch_size = args
    return k, score_texts(texts, batch_size)


# -- parent side --------------------------------------------------------------
def _chunks(path: Path, options: ScoreOptions, skip_rows: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(chunk index, rows) from ``skip_rows`` on."""
    k = skip_rows // options.chunk_size
    rows: list[dict[str, Any]] = []
    seen = 0
    for row in iter_rows(path):
        seen += 1
        if seen <= skip_rows:
            continue
        rows.append(row.data)
        if len(rows) == options.chunk_size:
            yield k, rows
            k += 1
            rows = []
    if rows:
        yield k, rows


def _stringify(v: Any) -> Any:
    """Input cells of JSONL/CSV become strings (nested values as JSON), so every
    part has the same schema whatever each chunk happened to contain. Code points
    that cannot be written as UTF-8 (bytes that were not UTF-8, half a surrogate
    pair) are kept visible as U+FFFD in the copied columns."""
    if v is None:
        return v
    if isinstance(v, str):
        return replace_lone_surrogates(v)
    if isinstance(v, (dict, list)):
        return replace_lone_surrogates(json.dumps(v, ensure_ascii=False))
    return str(v)


def output_records(
    inputs: list[dict[str, Any]],
    preds: list[dict[str, Any]],
    keep: list[str],
    typed: bool,
    extra: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Output rows: the kept input columns (as read from Parquet, else as strings), then the predictions, then
    ``extra`` (the conversation columns), row by row."""
    records = []
    for i, (src, pred) in enumerate(zip(inputs, preds, strict=True)):
        record = {c: (src.get(c) if typed else _stringify(src.get(c))) for c in keep}
        record.update(pred)
        if extra is not None:
            record.update(extra[i])
        records.append(record)
    return records


#: The predictions of a brand reply: none, and the status that says why.
BRAND_PREDICTION: dict[str, Any] = {**{name: None for name, _ in PREDICTION_FIELDS}, "status": BRAND_STATUS}


def classified(rows: list[dict[str, Any]], start: int, replies: Replies | None) -> list[bool]:
    """Which of rows ``start, start+1, …`` are classified: all of them, or in a conversation archive the customer
    posts (a row whose inbound flag cannot be read is classified too)."""
    if replies is None:
        return [True] * len(rows)
    return (replies.role[start : start + len(rows)] != BRAND).tolist()


def merge_predictions(mask: list[bool], preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One prediction per row: the model's for the classified rows (``preds``, in order), BRAND_PREDICTION for
    the others."""
    it = iter(preds)
    merged = [next(it) if m else dict(BRAND_PREDICTION) for m in mask]
    if next(it, None) is not None:
        raise AssertionError("more predictions than classified rows")
    return merged


def conversation_fields(
    n: int, start: int, replies: Replies | None, fields: list[tuple[str, str]]
) -> list[dict[str, Any]] | None:
    """The conversation columns (``fields``) of rows ``start … start+n-1``, from ``replies`` (found over the
    whole input)."""
    if replies is None or not fields:
        return None
    names = [name for name, _ in fields]
    return [{k: v for k, v in replies.row_fields(start + i).items() if k in names} for i in range(n)]


def _write_part(partial: Path, k: int, records: list[dict[str, Any]], schema) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(records, schema=schema)
    tmp = partial / f".part-{k:08d}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, partial / f"part-{k:08d}.parquet")


def thread_fields(columns: ThreadColumns | None) -> list[tuple[str, str]]:
    """The conversation columns added to the output: ``role`` when posts have roles, the reply columns too when
    replies can be timed."""
    if columns is None or not columns.has_roles:
        return []
    return list(THREAD_FIELDS if columns.has_threads else THREAD_FIELDS[:1])


def output_schema(src: Path, keep: list[str], typed: bool, conversation: ThreadColumns | None = None):
    """Input columns (their Parquet types, or strings for CSV/JSONL) then earful's columns."""
    import pyarrow as pa

    if typed:
        import pyarrow.parquet as pq

        in_schema = pq.read_schema(src)
        input_fields = [in_schema.field(c) for c in keep]
    else:
        input_fields = [pa.field(c, pa.string()) for c in keep]
    types = {"f64": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "int": pa.int64()}
    added = [*PREDICTION_FIELDS, *thread_fields(conversation)]
    pred_fields = [pa.field(name, types[kind]) for name, kind in added]
    clash = [c for c in keep if c in {name for name, _ in added}]
    if clash:
        raise ScoreError(
            f"input columns {clash} clash with earful's output columns; rename them or leave them out with --columns"
        )
    return pa.schema(input_fields + pred_fields)


def assemble(partial: Path, out: Path) -> int:
    """Join the parts into OUT (via a temporary file and an atomic rename)."""
    import pyarrow.parquet as pq

    parts = sorted(partial.glob(PART_GLOB))
    fmt = detect_format(out)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    if fmt.format == "parquet":
        writer = None
        for p in parts:
            table = pq.read_table(p)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:
            raise ScoreError("no rows were scored: the input is empty")
        writer.close()
    else:
        import csv

        with open_text_writer(tmp, fmt.compression) as f:
            writer = None
            for p in parts:
                for rec in pq.read_table(p).to_pylist():
                    rows += 1
                    if fmt.format == "jsonl":
                        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    else:
                        if writer is None:
                            writer = csv.DictWriter(f, fieldnames=list(rec))
                            writer.writeheader()
                        writer.writerow(rec)
    os.replace(tmp, out)
    return rows


def score(
    input_path: str | Path,
    output_path: str | Path,
    options: ScoreOptions | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ScoreSummary:
    options = options or ScoreOptions()
    src, out = Path(input_path), Path(output_path)
    if not src.is_file():
        raise ScoreError(f"{src}: no such file")
    in_fmt = detect_format(src)
    detect_format(out)  # fail fast on an unknown output format
    keep = kept_columns(src, options)  # also checks the text column, before anything is written
    conversation = conversation_columns(src, options)
    schema = output_schema(src, keep, in_fmt.format == "parquet", conversation)
    partial = out.with_name(out.name + ".partial")
    run_record = run_fingerprint(src, options, conversation)
    if out.exists() and not overwrite and not resume:
        raise ScoreError(f"{out} already exists; pass --overwrite to replace it")
    if partial.exists() and not resume:
        if not overwrite:
            raise ScoreError(
                f"{partial} holds an interrupted run; pass --resume to finish it, or --overwrite to start over"
            )
        shutil.rmtree(partial)
    skip = 0
    if resume and partial.exists():
        recorded = json.loads((partial / RUN_FILE).read_text())
        if recorded != run_record:
            raise ScoreError(
                f"cannot resume: the input file or options changed since the interrupted run ({partial / RUN_FILE})"
            )
        for stray in partial.glob(".part-*.tmp"):  # a part cut off mid-write; its chunk is redone
            stray.unlink()
        done = sorted(int(p.stem.split("-")[1]) for p in partial.glob(PART_GLOB))
        if done != list(range(len(done))):
            raise ScoreError(f"{partial} has gaps in its parts {done[:10]}…; delete it and start over")
        skip = len(done) * options.chunk_size
    elif resume and out.exists():
        raise ScoreError(f"{out} is already complete; nothing to resume")
    else:
        partial.mkdir(parents=True)
        (partial / RUN_FILE).write_text(json.dumps(run_record, indent=2))

    typed = in_fmt.format == "parquet"
    added = thread_fields(conversation)
    try:  # roles and first replies of every row, before the first chunk (resumed or not)
        replies = build_replies(src, conversation) if added else None
    except TableError as e:
        raise ScoreError(str(e)) from None
    total = count_rows(src)
    extra_fields = 0
    replaced = 0
    started = time.monotonic()
    status_counts: dict[str, int] = {}
    scored = 0
    workers = max(1, options.workers)
    threads = max(1, (os.cpu_count() or 1) // workers)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=skip,
        unit="row",
        desc="score",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30,
    )
    pool = None
    try:
        if workers == 1:
            init_worker(options.bundle, options.variant, threads)
            results = _serial(_chunks(src, options, skip), options, replies)
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(
                workers, initializer=init_worker, initargs=(options.bundle, options.variant, threads)
            )
            results = _windowed(pool, _chunks(src, options, skip), options, replies, window=2 * workers)
        known = set(keep) | {options.text_column}
        for k, rows, mask, scored_preds in results:
            preds = merge_predictions(mask, scored_preds)
            extra = conversation_fields(len(rows), k * options.chunk_size, replies, added)
            _write_part(partial, k, output_records(rows, preds, keep, typed, extra), schema)
            extra_fields += sum(1 for r in rows if options.columns is None and not known.issuperset(r))
            replaced += sum(
                1 for r, m in zip(rows, mask, strict=True) if m and _needs_replacement(r.get(options.text_column))
            )
            for p in preds:
                status_counts[p["status"]] = status_counts.get(p["status"], 0) + 1
            scored += len(rows)
            bar.update(len(rows))
    except KeyboardInterrupt:
        raise ScoreError(f"interrupted after {skip + scored} rows; run again with --resume to finish") from None
    except TableError as e:
        raise ScoreError(str(e)) from None
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    rows_total = assemble(partial, out)
    shutil.rmtree(partial)
    seconds = time.monotonic() - started
    summary = ScoreSummary(
        str(out),
        rows_total,
        round(seconds, 2),
        round(scored / seconds, 1) if seconds else 0.0,
        status_counts,
        skip,
        keep,
        extra_fields,
        replaced,
        *conversation_summary(replies, conversation),
    )
    if conversation is None and options.conversation.detect_layout:
        hint = layout_hint(next(iter_rows(src)).data)
        if hint:
            summary.threads = {"notes": [hint]}
    return summary


def conversation_summary(replies: Replies | None, conversation: ThreadColumns | None):
    """ScoreSummary's ``roles`` and ``threads``, over the whole input (a resumed run's earlier rows too)."""
    if replies is None:
        return {}, {}
    brand = int((replies.role == BRAND).sum())
    roles = {"customer": len(replies.role) - brand, "brand": brand}
    if not conversation.has_threads:
        return roles, {"unreadable_inbound": replies.counts.unreadable_inbound, "notes": explain(replies.counts)}
    return roles, {**asdict(replies.counts), "notes": explain(replies.counts)}


def conversation_columns(src: Path, options: ScoreOptions) -> ThreadColumns | None:
    """The input's conversation mapping (see :class:`ScoreOptions`), checked against its first row."""
    from earful.batch.threads import ThreadError

    first = next(iter_rows(src)).data
    try:
        return options.conversation.resolve(list(first), str(src))
    except ThreadError as e:
        raise ScoreError(str(e)) from None


def run_fingerprint(src: Path, options: ScoreOptions, conversation: ThreadColumns | None) -> dict[str, Any]:
    """What ``--resume`` checks: the input file, the options that change the output, and the conversation
    mapping the input resolved to (recorded only for conversation archives)."""
    record = {
        "input": _fingerprint(src),
        "options": {k: v for k, v in asdict(options).items() if k not in ("workers", "conversation")},
    }
    if conversation is not None and conversation.has_roles:
        record["conversation"] = asdict(conversation)
    return json.loads(json.dumps(record))  # as run.json holds it (tuples become lists), so a resume compares equal


def kept_columns(src: Path, options: ScoreOptions) -> list[str]:
    """The input columns carried to the output: ``--columns``, or the first row's.
    Fixed for the whole run, so every part has one schema."""
    try:
        first = next(iter_rows(src))
    except StopIteration:
        raise ScoreError(f"{src}: no rows to score") from None
    except TableError as e:
        raise ScoreError(str(e)) from None
    if options.text_column not in first.data:
        raise ScoreError(
            f"{src} line {first.line}: no '{options.text_column}' column (columns: {', '.join(map(str, first.data))}); "
            "choose the text column with --text-column"
        )
    if options.columns is not None:
        missing = [c for c in options.columns if c not in first.data]
        if missing:
            raise ScoreError(f"{src}: --columns names columns that are not in the input: {missing}")
        return list(options.columns)
    return list(first.data)


def _texts(rows: list[dict[str, Any]], mask: list[bool], options: ScoreOptions) -> list[Any]:
    return [r.get(options.text_column) for r, m in zip(rows, mask, strict=True) if m]


def _serial(chunks, options: ScoreOptions, replies: Replies | None):
    for k, rows in chunks:
        mask = classified(rows, k * options.chunk_size, replies)
        _, preds = _score_chunk((k, _texts(rows, mask, options), options.batch_size))
        yield k, rows, mask, preds


def _windowed(pool, chunks, options: ScoreOptions, replies: Replies | None, window: int):
    """Ordered results with at most ``window`` chunks in flight: memory stays
    bounded however large the input (``Pool.imap`` would read ahead without limit)."""
    in_flight: deque = deque()
    for k, rows in chunks:
        mask = classified(rows, k * options.chunk_size, replies)
        in_flight.append(
            (k, rows, mask, pool.apply_async(_score_chunk, ((k, _texts(rows, mask, options), options.batch_size),)))
        )
        if len(in_flight) >= window:
            k0, rows0, mask0, res = in_flight.popleft()
            yield k0, rows0, mask0, res.get()[1]
    while in_flight:
        k0, rows0, mask0, res = in_flight.popleft()
        yield k0, rows0, mask0, res.get()[1]
