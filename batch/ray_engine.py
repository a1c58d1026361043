"""``earful score --engine ray``: the same scoring on a Ray cluster, through Ray Data.

Each Ray actor loads the bundle once and scores batches with the same function
as the local engine (:func:`earful.batch.score._score_texts`), so the output
columns, statuses and bad-row handling are identical. The driver streams the
scored blocks back in input order and joins them into one output file through
an atomic rename, as locally. Resuming is the local engine's feature; on a cluster Ray retries
failed tasks itself, and an interrupted job is rerun.

Point it at a cluster with ``--ray-address ray://head:10001`` (or ``RAY_ADDRESS``);
the input and the bundle must then be readable from every node (shared storage).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from earful.batch.score import ScoreError, ScoreOptions, ScoreSummary, _assemble, _kept_columns, _stringify
from earful.tabular import detect_format


class _Scorer:
    """A Ray Data callable class: one predictor per actor."""

    def __init__(self, bundle: str | None, variant: str, threads: int, text_column: str, keep: list[str], typed: bool, batch_size: int):
        from earful.batch import score as local

        local._init_worker(bundle, variant, threads)
        self.local = local
        self.text_column, self.keep, self.typed, self.batch_size = text_column, keep, typed, batch_size

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        preds = self.local._score_texts([r.get(self.text_column) for r in rows], self.batch_size)
        out = []
        for r, p in zip(rows, preds):
            record = {c: (r.get(c) if self.typed else _stringify(r.get(c))) for c in self.keep}
            record.update(p)
            out.append(record)
        return pa.Table.from_pylist(out)


def score_with_ray(input_path: str | Path, output_path: str | Path, options: ScoreOptions, address: str | None = None,
                   overwrite: bool = False) -> ScoreSummary:
    try:
        import ray
    except ImportError:
        raise ScoreError("the Ray engine needs Ray: pip install 'earful[ray]' (ray[data]==2.60.0)") from None
    src, out = Path(input_path), Path(output_path)
    if out.exists() and not overwrite:
        raise ScoreError(f"{out} already exists; pass --overwrite to replace it")
    fmt = detect_format(src)
    detect_format(out)
    keep = _kept_columns(src, options)
    typed = fmt.format == "parquet"
    started = time.monotonic()
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    stream_args = {"compression": fmt.compression} if fmt.compression else None
    if fmt.format == "parquet":
        ds = ray.data.read_parquet(str(src))
    elif fmt.format == "csv":
        import pyarrow.csv as pacsv

        # every column as a string, as the local engine reads CSV
        ds = ray.data.read_csv(str(src), arrow_open_stream_args=stream_args,
                               convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in keep}, strings_can_be_null=False))
    else:
        ds = ray.data.read_json(str(src), arrow_open_stream_args=stream_args, lines=True)
    workers = max(1, options.workers)
    threads = max(1, (os.cpu_count() or 1) // workers)
    scored = ds.map_batches(
        _Scorer, batch_format="pyarrow", batch_size=options.chunk_size, concurrency=workers,
        fn_constructor_kwargs={"bundle": options.bundle, "variant": options.variant, "threads": threads,
                               "text_column": options.text_column, "keep": keep, "typed": typed, "batch_size": options.batch_size},
    )
    # The cluster scores; the driver streams the results back in input order
    # (preserve_order) and writes them as numbered parts, joined at the end.
    import pyarrow.parquet as pq

    partial = out.with_name(out.name + ".ray-partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    counts: dict[str, int] = {}
    for k, table in enumerate(scored.iter_batches(batch_format="pyarrow", batch_size=None)):
        pq.write_table(table, partial / f"part-{k:08d}.parquet")
        for status in table.column("status").to_pylist():
            counts[status] = counts.get(status, 0) + 1
    rows = _assemble(partial, out)
    shutil.rmtree(partial)
    ray.shutdown()
    seconds = time.monotonic() - started
    return ScoreSummary(str(out), rows, round(seconds, 2), round(rows / seconds, 1) if seconds else 0.0, counts, 0, keep, 0)
