"""Reading and writing tables of posts: CSV, JSONL or Parquet, optionally gzip/zstd.

Everything that takes files (training, eval, batch scoring) goes through here, so
all of them accept the same formats and report a bad file the same way: the file,
the line or row, and what is wrong.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("csv", "jsonl", "parquet")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_SUFFIX_FORMAT = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class TableError(ValueError):
    """A table could not be read: names the file and the line/row."""


@dataclass(frozen=True)
class TableFormat:
    format: str
    compression: str | None


def detect_format(path: str | Path, fmt: str | None = None) -> TableFormat:
    """Format from the file name (``posts.jsonl.zst`` → jsonl, zstd) unless given."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    if fmt is None:
        fmt = _SUFFIX_FORMAT.get(suffixes[-1]) if suffixes else None
    if fmt not in FORMATS:
        raise TableError(
            f"{path}: cannot tell the format from the name; use a .csv, .jsonl or .parquet file "
            "(optionally .gz or .zst compressed), or say the format explicitly"
        )
    if fmt == "parquet" and compression:
        raise TableError(f"{path}: Parquet files compress internally; do not wrap them in {compression}")
    return TableFormat(fmt, compression)


def _open_binary(path: Path, compression: str | None, mode: str = "rb"):
    if compression == "gzip":
        return gzip.open(path, mode)
    if compression == "zstd":
        import zstandard

        if "r" in mode:
            return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return zstandard.ZstdCompressor(level=6).stream_writer(open(path, mode), closefd=True)
    return open(path, mode)


def open_text(path: str | Path, compression: str | None) -> TextIO:
    """Open for reading text. Undecodable bytes become lone surrogates
    (``surrogateescape``) so one bad row can be reported or scored as bad
    instead of failing the whole file."""
    return io.TextIOWrapper(_open_binary(Path(path), compression), encoding="utf-8", errors="surrogateescape", newline="")


def has_undecodable(text: str) -> bool:
    """True when the text carries bytes that were not valid UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


@dataclass
class Row:
    """One input row with where it came from (1-based line for CSV/JSONL, row index for Parquet)."""

    line: int
    data: dict[str, Any]


def iter_rows(path: str | Path, fmt: str | None = None, columns: list[str] | None = None) -> Iterator[Row]:
    """Stream the rows of a table in bounded memory."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    tf = detect_format(path, fmt)
    if tf.format == "csv":
        yield from _iter_csv(path, tf.compression)
    elif tf.format == "jsonl":
        yield from _iter_jsonl(path, tf.compression)
    else:
        yield from _iter_parquet(path, columns)


def _iter_csv(path: Path, compression: str | None) -> Iterator[Row]:
    with open_text(path, compression) as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise TableError(f"{path}: empty file, expected a CSV header line") from None
        except csv.Error as e:
            raise TableError(f"{path} line 1: {e}") from None
        header = [h.lstrip("\ufeff").strip() for h in header]
        if len(set(header)) != len(header):
            raise TableError(f"{path} line 1: duplicate column names in header {header}")
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise TableError(f"{path} line {reader.line_num}: malformed CSV ({e})") from None
            if not values:
                continue
            if len(values) != len(header):
                raise TableError(
                    f"{path} line {reader.line_num}: {len(values)} fields, the header has {len(header)}; "
                    "quote fields that contain commas or newlines"
                )
            yield Row(reader.line_num, dict(zip(header, values)))


def _iter_jsonl(path: Path, compression: str | None) -> Iterator[Row]:
    with open_text(path, compression) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TableError(f"{path} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise TableError(f"{path} line {n}: expected a JSON object, got {type(obj).__name__}")
            yield Row(n, obj)


def _iter_parquet(path: Path, columns: list[str] | None) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise TableError(f"{path}: not a readable Parquet file ({e})") from None
    n = 0
    for batch in pf.iter_batches(batch_size=4096, columns=columns):
        for record in batch.to_pylist():
            n += 1
            yield Row(n, record)


def count_rows(path: str | Path, fmt: str | None = None) -> int | None:
    """Row count when cheap to know (Parquet metadata), else None."""
    tf = detect_format(path, fmt)
    if tf.format == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def write_rows(path: str | Path, rows: list[dict[str, Any]], fmt: str | None = None) -> None:
    """Write a small table at once (labelled data, fixtures). Large outputs stream via the batch writer."""
    path = Path(path)
    tf = detect_format(path, fmt)
    if tf.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    with io.TextIOWrapper(_open_binary(path, tf.compression, "wb"), encoding="utf-8", newline="") as f:
        if tf.format == "jsonl":
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            columns = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
