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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("csv", "jsonl", "parquet")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_SUFFIX_FORMAT = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

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


class _ZstdReader(io.RawIOBase):
    """zstd decompression, frame after frame, that raises ``EOFError`` on a file cut off mid-frame:
    zstandard's ``stream_reader`` just ends there, and the rows after the cut would be lost silently."""

    def __init__(self, path: Path):
        import zstandard

        self._decompressor = zstandard.ZstdDecompressor()
        self._corrupt = zstandard.ZstdError
        self._file = open(path, "rb")
        self._frame = self._decompressor.decompressobj()
        self._mid_frame = False
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            data = self._file.read(1 << 17)
            if not data:
                if self._mid_frame:
                    raise EOFError("the zstd data ends in the middle of a frame: the file is cut off")
                return 0
            out = []
            while data:
                try:
                    out.append(self._frame.decompress(data))
                except self._corrupt as e:
                    raise OSError(f"corrupt zstd data ({e})") from None
                self._mid_frame = not self._frame.eof
                data = b""
                if self._frame.eof:  # the next frame, if any, starts in the rest of this read
                    data = self._frame.unused_data
                    self._frame = self._decompressor.decompressobj()
            self._pending = memoryview(b"".join(out))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_binary(path: Path, compression: str | None, mode: str = "rb"):
    if compression == "gzip":
        return gzip.open(path, mode)
    if compression == "zstd":
        if "r" in mode:
            return io.BufferedReader(_ZstdReader(path))
        import zstandard

        return zstandard.ZstdCompressor(level=6).stream_writer(open(path, mode), closefd=True)
    return open(path, mode)


def open_text(path: str | Path, compression: str | None) -> TextIO:
    """Open for reading text. Undecodable bytes become lone surrogates
    (``surrogateescape``) so one bad row can be reported or scored as bad
    instead of failing the whole file."""
    return io.TextIOWrapper(
        _open_binary(Path(path), compression), encoding="utf-8", errors="surrogateescape", newline=""
    )


def open_text_writer(path: str | Path, compression: str | None) -> TextIO:
    """Open for writing UTF-8 text, compressed as asked (the same compressions the readers take)."""
    return io.TextIOWrapper(_open_binary(Path(path), compression, "wb"), encoding="utf-8", newline="")


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
        rows = _iter_csv(path, tf.compression)
    elif tf.format == "jsonl":
        rows = _iter_jsonl(path, tf.compression)
    else:
        rows = _iter_parquet(path, columns)
    line = 0
    try:
        for row in rows:
            line = row.line
            yield row
    except (EOFError, OSError, zlib.error) as e:  # a cut-off or corrupt compressed file
        raise TableError(f"{path}: unreadable after line {line} ({e}); the file is cut off or corrupt") from None


def _iter_csv(path: Path, compression: str | None) -> Iterator[Row]:
    """Rows of a CSV file, each with the line it starts on. Strict: a quote left open runs to the end of the
    file, swallowing the rows after it into one field, so it is an error naming the line where it opened."""
    with open_text(path, compression) as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise TableError(f"{path}: empty file, expected a CSV header line") from None
        except csv.Error as e:
            raise TableError(f"{path} line 1: malformed CSV header ({e})") from None
        header = [h.lstrip("\ufeff").strip() for h in header]
        if len(set(header)) != len(header):
            raise TableError(f"{path} line 1: duplicate column names in header {header}")
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise TableError(
                    f"{path} line {start}: malformed CSV ({e}, reading up to line {reader.line_num}); "
                    'a field that opens a quote must close it, and a quote inside a quoted field is written ""'
                ) from None
            if not values:
                continue
            if len(values) != len(header):
                lines = f"line {start}" if start == reader.line_num else f"lines {start}-{reader.line_num}"
                raise TableError(
                    f"{path} {lines}: {len(values)} fields, the header has {len(header)}; "
                    "quote fields that contain commas or newlines"
                )
            yield Row(start, dict(zip(header, values, strict=True)))


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
    with open_text_writer(path, tf.compression) as f:
        if tf.format == "jsonl":
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            columns = list(dict.fromkeys(k for r in rows for k in r))
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
