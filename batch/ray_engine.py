"""``earful score --engine ray``: the same scoring on a Ray cluster, through Ray Data.

Each Ray actor loads the bundle once and scores batches with the same functions
as the local engine (:func:`earful.batch.score.score_texts` and
:func:`~earful.batch.score.output_records`), so the output columns, statuses and
bad-row handling are identical, but for what Ray's own readers do: its JSON
reader drops half a surrogate pair (a cut emoji) from a text where the local
engine scores it with U+FFFD and counts it (``rows_with_replaced_characters``
stays 0 here). The driver streams the
scored blocks back in input order and joins them into one output file through
an atomic rename, as locally. A conversation archive is handled as locally: the
driver finds every row's role and first brand reply in one pass over the input
first, actors classify customer posts only, and the driver fills each scored
block's reply columns by its place in the input. Resuming is the local engine's
feature; on a cluster Ray retries failed tasks itself, and an interrupted job is rerun.

Point it at a cluster with ``--ray-address ray://head:10001`` (or ``RAY_ADDRESS``);
the input and the bundle must then be readable from every node (shared storage).

The actors together ask for at most all of the cluster's CPUs but one: Ray Data
reads the input in tasks that need a CPU too, and with every CPU held by an
actor the read would wait for ever (say ``--workers 2`` on two cores).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from earful.batch.score import (
    ScoreError,
    ScoreOptions,
    ScoreSummary,
    assemble,
    conversation_columns,
    conversation_fields,
    conversation_summary,
    init_worker,
    kept_columns,
    merge_predictions,
    output_records,
    output_schema,
    score_texts,
    thread_fields,
)
from earful.batch.threads import BRAND, ReplyIndex, ThreadColumns, build_replies
from earful.tabular import detect_format


def actor_cpus(cluster_cpus: float, workers: int) -> float:
    """CPUs each scoring actor asks Ray for: one, or less so that one CPU stays free for reading the input."""
    return min(1.0, max(cluster_cpus - 1, 0) / workers)


class _Scorer:
    """A Ray Data callable class: one predictor per actor."""

    def __init__(
        self,
        bundle: str | None,
        variant: str,
        threads: int,
        text_column: str,
        keep: list[str],
        typed: bool,
        batch_size: int,
        schema,
        conversation: ThreadColumns | None = None,
    ):
        init_worker(bundle, variant, threads)
        self.text_column, self.keep, self.typed, self.batch_size = text_column, keep, typed, batch_size
        self.schema = schema
        self.added = [name for name, _ in thread_fields(conversation)]
        self.roles = ReplyIndex(conversation) if self.added else None

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        mask = [self.roles is None or self.roles.role_of(r) != BRAND for r in rows]
        texts = [r.get(self.text_column) for r, m in zip(rows, mask, strict=True) if m]
        preds = merge_predictions(mask, score_texts(texts, self.batch_size))
        # the role here; the reply columns need the whole input, and the driver fills them
        extra = (
            [{**dict.fromkeys(self.added), "role": "customer" if m else "brand"} for m in mask] if self.added else None
        )
        return pa.Table.from_pylist(output_records(rows, preds, self.keep, self.typed, extra), schema=self.schema)


def score_with_ray(
    input_path: str | Path,
    output_path: str | Path,
    options: ScoreOptions,
    address: str | None = None,
    overwrite: bool = False,
) -> ScoreSummary:
    try:
        import ray
    except ImportError:
        raise ScoreError("the Ray engine needs Ray: pip install 'earful[ray]' (ray[data]==2.60.0)") from None
    import pyarrow.parquet as pq

    src, out = Path(input_path), Path(output_path)
    if out.exists() and not overwrite:
        raise ScoreError(f"{out} already exists; pass --overwrite to replace it")
    fmt = detect_format(src)
    detect_format(out)
    keep = kept_columns(src, options)
    typed = fmt.format == "parquet"
    conversation = conversation_columns(src, options)
    schema = output_schema(src, keep, typed, conversation)
    added = thread_fields(conversation)
    replies = build_replies(src, conversation) if added else None
    workers = max(1, options.workers)
    threads = max(1, (os.cpu_count() or 1) // workers)
    started = time.monotonic()
    ray.init(
        address=address or os.environ.get("RAY_ADDRESS"),
        ignore_reinit_error=True,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        scored = _read(ray, src, fmt, keep).map_batches(
            _Scorer,
            batch_format="pyarrow",
            batch_size=options.chunk_size,
            concurrency=workers,
            num_cpus=actor_cpus(ray.cluster_resources().get("CPU", 1), workers),
            fn_constructor_kwargs={
                "bundle": options.bundle,
                "variant": options.variant,
                "threads": threads,
                "text_column": options.text_column,
                "keep": keep,
                "typed": typed,
                "batch_size": options.batch_size,
                "schema": schema,
                "conversation": conversation,
            },
        )
        # The cluster scores; the driver streams the results back in input order
        # (preserve_order) and writes them as numbered parts, joined at the end.
        partial = out.with_name(out.name + ".ray-partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        counts: dict[str, int] = {}
        offset = 0
        for k, table in enumerate(scored.iter_batches(batch_format="pyarrow", batch_size=None)):
            table = _fill_replies(table, offset, replies, added, schema)
            offset += table.num_rows
            pq.write_table(table, partial / f"part-{k:08d}.parquet")
            for status in table.column("status").to_pylist():
                counts[status] = counts.get(status, 0) + 1
    finally:
        ray.shutdown()
    rows = assemble(partial, out)
    shutil.rmtree(partial)
    seconds = time.monotonic() - started
    rate = round(rows / seconds, 1) if seconds else 0.0
    return ScoreSummary(
        str(out), rows, round(seconds, 2), rate, counts, 0, keep, 0, 0, *conversation_summary(replies, conversation)
    )


def _fill_replies(table, offset: int, replies, added, schema):
    """A scored block's reply columns, from the replies found over the whole input (rows ``offset`` on)."""
    import pyarrow as pa

    names = [name for name, _ in added if name != "role"]
    if replies is None or not names:
        return table
    values = conversation_fields(table.num_rows, offset, replies, added)
    for name in names:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, schema.field(name), pa.array([v[name] for v in values], schema.field(name).type))
    return table


def _read(ray, src: Path, fmt, keep: list[str]):
    """The input as a Ray dataset; CSV columns as strings, as the local engine reads them."""
    stream_args = {"compression": fmt.compression} if fmt.compression else None
    if fmt.format == "parquet":
        return ray.data.read_parquet(str(src))
    if fmt.format == "csv":
        import pyarrow.csv as pacsv

        return ray.data.read_csv(
            str(src),
            arrow_open_stream_args=stream_args,
            convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in keep}, strings_can_be_null=False),
        )
    return ray.data.read_json(str(src), arrow_open_stream_args=stream_args, lines=True)
