"""earful's labelled-data format, read and validated.

A table (CSV, JSONL or Parquet, see :mod:`earful.tabular`) with a ``text`` column
and any of ``lang``, ``complaint_type``, ``sentiment``, ``troll`` (0/1). A blank
or null cell means "unknown" and that head simply gets no loss/score for the row.
``complaint_type`` may also be ``complaint``: a complaint of unknown type.
Optional ``id`` and ``source`` columns are kept (``source`` drives balanced
sampling in training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earful.schema import COMPLAINT, COMPLAINT_TYPES, SENTIMENTS, is_lang_code
from earful.tabular import TableError, has_undecodable, iter_rows

LABEL_COLUMNS = ("complaint_type", "sentiment", "troll", "lang")
MAX_REPORTED_ERRORS = 20


class LabelledDataError(ValueError):
    """Bad labelled data; the message lists each problem as file, line, field."""


@dataclass
class LabelledSet:
    """Validated rows of one file, column-wise. Labels are ``None`` where unknown;
    ``troll`` is 0/1."""

    name: str
    path: Path
    text: list[str] = field(default_factory=list)
    complaint_type: list[str | None] = field(default_factory=list)
    sentiment: list[str | None] = field(default_factory=list)
    troll: list[int | None] = field(default_factory=list)
    lang: list[str | None] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    id: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.text)

    def labels(self, task: str) -> list[Any]:
        return getattr(self, task)

    def has_labels(self, task: str) -> bool:
        return any(v is not None for v in self.labels(task))

    def label_counts(self, task: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.labels(task):
            if v is not None:
                counts[str(v)] = counts.get(str(v), 0) + 1
        return dict(sorted(counts.items()))


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


def _parse_troll(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)) and v in (0, 1):
        return int(v)
    s = str(v).strip().lower()
    if s in ("0", "1", "0.0", "1.0"):
        return int(float(s))
    if s in ("true", "false"):
        return int(s == "true")
    raise ValueError(f"{v!r} is not 0 or 1")


def _parse_choice(v: Any, allowed: tuple[str, ...]) -> str:
    s = str(v).strip()
    if s not in allowed:
        raise ValueError(f"{s!r} is not one of {', '.join(allowed)}")
    return s


def _parse_lang(v: Any) -> str:
    s = str(v).strip().lower()
    if not is_lang_code(s):
        raise ValueError(f"{s!r} is not an ISO 639-1 language code (like 'en') or 'und'")
    return s


_PARSERS = {
    "complaint_type": lambda v: _parse_choice(v, (*COMPLAINT_TYPES, COMPLAINT)),
    "sentiment": lambda v: _parse_choice(v, SENTIMENTS),
    "troll": _parse_troll,
    "lang": _parse_lang,
}


def read_labelled(path: str | Path, require_text: bool = True) -> LabelledSet:
    """Read and validate one labelled file. Raises :class:`LabelledDataError`
    listing every bad cell (up to 20) as ``file line N, field F: problem``."""
    path = Path(path)
    out = LabelledSet(name=path.name.split(".")[0], path=path)
    errors: list[str] = []
    saw_text_column = False
    try:
        for row in iter_rows(path):
            data = row.data
            if "text" not in data:
                if not saw_text_column:
                    raise LabelledDataError(
                        f"{path}: no 'text' column (columns: {', '.join(map(str, data))}); "
                        "labelled data needs a text column and any of " + ", ".join(LABEL_COLUMNS)
                    )
            saw_text_column = True
            where = f"{path} line {row.line}"
            text = data.get("text")
            if _blank(text) or not isinstance(text, str):
                if require_text:
                    errors.append(f"{where}, field 'text': empty or not a string")
                    continue
                text = "" if _blank(text) else str(text)
            elif has_undecodable(text):
                errors.append(f"{where}, field 'text': not valid UTF-8")
                continue
            parsed: dict[str, Any] = {}
            for col, parse in _PARSERS.items():
                v = data.get(col)
                if _blank(v):
                    parsed[col] = None
                    continue
                try:
                    parsed[col] = parse(v)
                except ValueError as e:
                    errors.append(f"{where}, field '{col}': {e}")
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
            out.text.append(text)
            for col in LABEL_COLUMNS:
                out.labels(col).append(parsed.get(col))
            src = data.get("source")
            out.source.append(out.name if _blank(src) else str(src))
            rid = data.get("id")
            out.id.append(None if _blank(rid) else str(rid))
    except TableError as e:
        raise LabelledDataError(str(e)) from None
    if errors:
        more = " (stopped after 20 problems)" if len(errors) >= MAX_REPORTED_ERRORS else ""
        raise LabelledDataError(f"{len(errors)} problem(s) in {path}{more}:\n  " + "\n  ".join(errors))
    if not saw_text_column:
        raise LabelledDataError(f"{path}: no rows")
    return out
