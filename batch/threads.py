"""Conversations in an archive: who is the customer, who is the brand, and how long the brand took to answer.

An archive holds conversations when each post has an id, a time, a way to tell customer posts from brand replies
(an ``inbound`` flag, or a list of the brand's author names) and a link between posts: a reply names the post it
answers (``in_response_to_tweet_id``), and/or a post lists the replies it got (``response_tweet_id``,
comma-separated). The Customer Support on Twitter layout (``tweet_id, author_id, inbound, created_at, text,
response_tweet_id, in_response_to_tweet_id``) is recognised by its column names; other exports name their columns
with :class:`ThreadColumns` (command-line flags or a small JSON/TOML mapping file).

The first brand reply to a customer post is the earliest brand post linked to it either way; its delay is the
reply's time minus the post's. What cannot be used is counted and explained, never fatal: reply ids that name no
post in the archive, replies stamped before the post they answer (the post counts as answered, its delay as
unknown), missing or unreadable times, duplicate ids (the first row with an id is the post), unreadable
``inbound`` flags (read as customer posts, so they are classified), and times without a zone (read as UTC).

Memory: :class:`ReplyIndex` keeps, per row, four numbers in compact arrays (id key int64, time float64, reply-to
key int64, role int8: 25 bytes) plus 16 bytes per id listed in a response list; resolving sorts the ids (another
~16 bytes per row for a moment). A million rows cost about 40 MB, whatever the length of the ids: an id that is
not a plain integer is kept as a 62-bit hash of its text.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import html
import json
import math
import tomllib
from array import array
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import numpy as np

from earful.schema import COMPLAINT_TYPES, NOT_A_COMPLAINT, SENTIMENTS
from earful.tabular import iter_rows

CUSTOMER, BRAND = 0, 1
ROLE_NAMES = ("customer", "brand")
#: The status of a brand reply in ``earful score``'s output: kept, never classified, never a complaint.
BRAND_STATUS = "brand_reply"
#: Output columns ``earful score`` adds to a conversation archive, with their types.
THREAD_FIELDS: tuple[tuple[str, str], ...] = (
    ("role", "str"),
    ("replied", "bool"),
    ("first_reply_at", "str"),
    ("response_seconds", "f64"),
)
COMPLAINTS = tuple(c for c in COMPLAINT_TYPES if c != NOT_A_COMPLAINT)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ThreadError(ValueError):
    """The conversation columns asked for cannot be used; the message names them and what to do."""


@dataclass(frozen=True)
class ThreadColumns:
    """Which input columns hold a conversation's parts. ``None`` where the archive has no such column.

    ``brands`` names the brand's authors, for exports without an ``inbound`` flag: a post by one of them is a
    brand reply, any other a customer post."""

    id: str | None = None
    author: str | None = None
    inbound: str | None = None
    time: str | None = None
    reply_to: str | None = None
    responses: str | None = None
    reach: str | None = None
    brands: tuple[str, ...] = ()

    @property
    def has_roles(self) -> bool:
        return bool(self.inbound or (self.author and self.brands))

    @property
    def has_threads(self) -> bool:
        """Enough to find brand replies and their delays."""
        return bool(self.id and self.time and self.has_roles and (self.reply_to or self.responses))

    def columns(self) -> list[str]:
        return [v for f in fields(self) if f.name != "brands" and (v := getattr(self, f.name))]

    def check(self, present: Iterable[str], source: str) -> None:
        """A ThreadError naming the mapped columns the input lacks."""
        have = set(present)
        missing = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name != "brands" and getattr(self, f.name) and getattr(self, f.name) not in have
        ]
        if missing:
            raise ThreadError(
                f"{source}: the conversation columns {', '.join(missing)} are not in the input "
                f"(columns: {', '.join(map(str, present))}); name the right ones (--id-column, --author-column, "
                "--inbound-column, --time-column, --reply-to-column, --reach-column or --mapping FILE)"
            )
        if (self.reply_to or self.responses) and not (self.id and self.time and self.has_roles):
            need = [n for n, ok in (("--id-column", self.id), ("--time-column", self.time)) if not ok]
            if not self.has_roles:
                need.append("--inbound-column (or 'brands' in a --mapping file)")
            raise ThreadError(f"{source}: reply links are named, but replies cannot be timed without {', '.join(need)}")


#: The Customer Support on Twitter layout (Kaggle, thoughtvector), recognised by its column names.
TWCS = ThreadColumns(
    id="tweet_id",
    author="author_id",
    inbound="inbound",
    time="created_at",
    reply_to="in_response_to_tweet_id",
    responses="response_tweet_id",
)

_MAPPING_KEYS = {f.name for f in fields(ThreadColumns)}


def detect(columns: Iterable[str]) -> ThreadColumns | None:
    """The TWCS mapping when every TWCS column is present, else None."""
    have = set(columns)
    return TWCS if set(TWCS.columns()) <= have else None


def _twcs_missing(have: set[str]) -> list[str]:
    """The TWCS mapping's fields whose column ``have`` lacks."""
    return [f.name for f in fields(TWCS) if f.name != "brands" and (c := getattr(TWCS, f.name)) and c not in have]


def layout_hint(columns: Iterable[str]) -> str | None:
    """Why an archive that looks like the TWCS layout is not read as threads (None when it is not near it): it has
    a reply column and lacks at most two of the others."""
    have = set(columns)
    missing = _twcs_missing(have)
    if not missing or len(missing) > 2 or not ({TWCS.reply_to, TWCS.responses} & have):
        return None
    names = ", ".join(str(getattr(TWCS, m)) for m in missing)
    fix = "--inbound-column, or --brand-authors A,B" if missing == ["inbound"] else "--help lists the flags"
    return (
        f"the archive has Customer Support on Twitter columns but not {names}, so its threads are not read "
        f"(no brand replies told apart, no response times); name the columns ({fix}) to read them"
    )


def load_mapping(path: str | Path) -> dict[str, Any]:
    """A mapping file: JSON or TOML, keys among id, author, inbound, time, reply_to, responses, reach, brands."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ThreadError(f"{p}: cannot read the mapping file ({e.strerror})") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ThreadError(
            f"{p}: not a valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'} mapping ({e})"
        ) from None
    if not isinstance(data, dict):
        raise ThreadError(f'{p}: a mapping file holds an object of column names, like {{"id": "post_id"}}')
    unknown = sorted(set(data) - _MAPPING_KEYS)
    if unknown:
        raise ThreadError(f"{p}: unknown keys {unknown}; the keys are {sorted(_MAPPING_KEYS)}")
    return data


def resolve_columns(
    present: Iterable[str], source: str, mapping_file: str | Path | None = None, detect_layout: bool = True, **flags
) -> ThreadColumns | None:
    """The conversation mapping for an input with columns ``present``: the TWCS layout when recognised (unless
    ``detect_layout`` is false), overridden by a mapping file, overridden by flags (``id=..., author=...``; None
    means not given). None when nothing names a conversation column. Checked against ``present``."""
    present = list(present)
    given: dict[str, Any] = load_mapping(mapping_file) if mapping_file else {}
    given.update({k: v for k, v in flags.items() if v is not None})
    base = detect(present) if detect_layout else None
    if detect_layout and base is None:
        # the layout with some columns missing, where what is given stands in for them (brands for inbound)
        missing = _twcs_missing(set(present))
        covered = {k for k, v in given.items() if v} | ({"inbound"} if given.get("brands") else set())
        if missing and set(missing) <= covered and (TWCS.reply_to in present or TWCS.responses in present):
            base = ThreadColumns(**{**asdict(TWCS), **dict.fromkeys(missing)})
    values: dict[str, Any] = asdict(base) if base else {}
    values.update(given)
    if values.get("brands") and not values.get("author"):
        raise ThreadError(
            f"{source}: brand authors are named (--brand-authors or 'brands'), but no author column to find "
            "them in; name it with --author-column"
        )
    if not any(v for k, v in values.items() if k != "brands"):
        return None
    brands = values.get("brands") or ()
    if isinstance(brands, str):
        brands = [b.strip() for b in brands.split(",") if b.strip()]
    values["brands"] = tuple(str(b) for b in brands)
    try:
        mapping = ThreadColumns(**values)
    except TypeError as e:
        raise ThreadError(f"{source}: bad conversation mapping ({e})") from None
    mapping.check(present, source)
    return mapping


# -- reading cells --------------------------------------------------------------
_HASHED = 1 << 62
MISSING = -1


def id_key(value: Any) -> int:
    """An id as an int64 key: a plain non-negative integer is itself (below 2^62), anything else a 62-bit hash of
    its text with bit 62 set (so the two never meet). ``MISSING`` (-1) for an empty cell."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        value = str(value)
    elif isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if value.is_integer():  # ids that went through a float column (NaN for missing)
            value = int(value)
    if isinstance(value, int) and 0 <= value < _HASHED:
        return value
    s = str(value).strip()
    if not s:
        return MISSING
    if s.isascii() and s.isdigit() and len(s) < 19 and (s[0] != "0" or s == "0"):
        return int(s)
    if s.endswith(".0") and s[:-2].isascii() and s[:-2].isdigit() and 0 < len(s) - 2 < 19 and s[0] != "0":
        return int(s[:-2])  # "12.0": an integer id written by a float column
    digest = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return _HASHED | (int.from_bytes(digest, "little") & (_HASHED - 1))


def id_keys(value: Any) -> list[int]:
    """The ids of a response list: "12,15", a list, or one id."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                items = json.loads(s)
            except ValueError:
                items = s.strip("[]").split(",")
        else:
            items = s.split(",")
    else:
        items = [value]
    keys = [id_key(v) for v in items]
    return [k for k in keys if k != MISSING]


_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def inbound_role(value: Any) -> int | None:
    """CUSTOMER for a true ``inbound`` flag, BRAND for a false one, None when it cannot be read."""
    if isinstance(value, bool):
        return CUSTOMER if value else BRAND
    if isinstance(value, (int, float)) and value in (0, 1):
        return CUSTOMER if value else BRAND
    s = str(value).strip().lower() if value is not None else ""
    return CUSTOMER if s in _TRUE else BRAND if s in _FALSE else None


_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
#: Kinds of time cell, as counted by :func:`epoch_seconds`.
T_MISSING, T_UNREADABLE, T_ZONED, T_NAIVE = 0, 1, 2, 3


def _from_datetime(d: dt.datetime) -> tuple[float, int]:
    if d.tzinfo is None or d.utcoffset() is None:
        return d.replace(tzinfo=dt.UTC).timestamp(), T_NAIVE
    return d.timestamp(), T_ZONED


def epoch_seconds(value: Any) -> tuple[float, int]:
    """(seconds since 1970 UTC, kind). ISO 8601, epoch seconds (or milliseconds, for values past year 5000),
    Twitter's "Tue Oct 31 22:10:47 +0000 2017", RFC 2822, or a datetime. A time without a zone is read as UTC and
    its kind is ``T_NAIVE``; NaN with ``T_MISSING`` or ``T_UNREADABLE`` when there is no time."""
    if value is None or value == "":
        return math.nan, T_MISSING
    if isinstance(value, dt.datetime):
        return _from_datetime(value)
    if isinstance(value, dt.date):
        return _from_datetime(dt.datetime(value.year, value.month, value.day))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            return math.nan, T_MISSING
        return (value / 1000 if abs(value) > 1e11 else float(value)), T_ZONED
    s = str(value).strip()
    if not s:
        return math.nan, T_MISSING
    parts = s.split()
    if len(parts) == 6 and parts[1][:3].lower() in _MONTHS:  # Twitter: fast path, no strptime
        try:
            h, m, sec = (int(x) for x in parts[3].split(":"))
            off = parts[4]
            sign = -1 if off[0] == "-" else 1
            offset = sign * (int(off[1:3]) * 3600 + int(off[3:5]) * 60)
            t = calendar.timegm((int(parts[5]), _MONTHS[parts[1][:3].lower()], int(parts[2]), h, m, sec))
            return float(t - offset), T_ZONED
        except (ValueError, IndexError):
            pass
    try:
        return _from_datetime(dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s))
    except ValueError:
        pass
    try:
        x = float(s)
        if math.isfinite(x):
            return (x / 1000 if abs(x) > 1e11 else x), T_ZONED
    except ValueError:
        pass
    try:
        return _from_datetime(parsedate_to_datetime(s))
    except (TypeError, ValueError, IndexError):
        return math.nan, T_UNREADABLE


def iso_utc(seconds: float) -> str | None:
    if seconds is None or math.isnan(seconds):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


# -- the reply index ------------------------------------------------------------------
@dataclass
class ThreadCounts:
    """What the reply lookup found, and what it had to leave out (each with its reason in :func:`explain`)."""

    rows: int = 0
    customer_posts: int = 0
    brand_replies: int = 0
    answered: int = 0
    answered_with_time: int = 0
    unreadable_inbound: int = 0
    missing_ids: int = 0
    duplicate_ids: int = 0
    reply_targets_not_found: int = 0
    response_ids_not_found: int = 0
    replies_before_post: int = 0
    replies_without_time: int = 0
    times_missing: int = 0
    times_unreadable: int = 0
    times_without_zone: int = 0
    times_with_zone: int = 0


def explain(c: ThreadCounts) -> list[str]:
    """One sentence per kind of row or link that was skipped or read with an assumption."""
    notes = []
    if c.unreadable_inbound:
        notes.append(
            f"{c.unreadable_inbound} rows have an inbound flag that is "
            "neither true nor false; they are read as customer posts"
        )
    if c.missing_ids:
        notes.append(f"{c.missing_ids} rows have no id; nothing can reply to them")
    if c.duplicate_ids:
        notes.append(
            f"{c.duplicate_ids} rows repeat an earlier row's id; replies are linked to the first row with that id"
        )
    if c.reply_targets_not_found:
        notes.append(
            f"{c.reply_targets_not_found} replies answer a post that "
            "is not in the archive (an extract cut mid-thread); "
            "they are kept but answer nothing here"
        )
    if c.response_ids_not_found:
        notes.append(
            f"{c.response_ids_not_found} ids in response lists name posts that are not in the archive; they are ignored"
        )
    if c.replies_before_post:
        notes.append(
            f"{c.replies_before_post} brand replies are stamped before the post they answer (times out of order); "
            "the post counts as answered but the delay is unknown"
        )
    if c.replies_without_time:
        notes.append(
            f"{c.replies_without_time} reply links have no usable time on "
            "one side; the post counts as answered, the delay as unknown"
        )
    if c.times_missing or c.times_unreadable:
        notes.append(
            f"{c.times_missing} rows have no time and {c.times_unreadable} a time that cannot be read "
            "(ISO 8601, epoch seconds or Twitter's format are read); they have no delay"
        )
    if c.times_without_zone:
        mixed = " (the archive mixes times with and without a zone)" if c.times_with_zone else ""
        notes.append(f"{c.times_without_zone} times have no zone and are read as UTC{mixed}")
    return notes


@dataclass
class Replies:
    """Per input row (file order): role, whether a brand reply was found (customer posts), the row of the first
    brand reply (-1 if none) and its delay in seconds (NaN when unknown)."""

    role: np.ndarray
    replied: np.ndarray
    reply_row: np.ndarray
    delay: np.ndarray
    times: np.ndarray
    counts: ThreadCounts

    def row_fields(self, i: int) -> dict[str, Any]:
        """The :data:`THREAD_FIELDS` of row ``i``."""
        if self.role[i] == BRAND:
            return {"role": "brand", "replied": None, "first_reply_at": None, "response_seconds": None}
        d = float(self.delay[i])
        r = int(self.reply_row[i])
        return {
            "role": "customer",
            "replied": bool(self.replied[i]),
            "first_reply_at": iso_utc(float(self.times[r])) if r >= 0 else None,
            "response_seconds": None if math.isnan(d) else d,
        }


class ReplyIndex:
    """Collects, row by row, what the reply lookup needs (see the module's memory note), then :meth:`resolve`."""

    def __init__(self, columns: ThreadColumns):
        self.columns = columns
        self._brands = set(columns.brands)
        self._ids = array("q")
        self._times = array("d")
        self._reply_to = array("q")
        self._roles = array("b")
        self._resp_rows = array("q")
        self._resp_ids = array("q")
        self.counts = ThreadCounts()
        self._time_kinds = [0, 0, 0, 0]

    def role_of(self, data: dict[str, Any]) -> int | None:
        """CUSTOMER or BRAND; None for an inbound flag that cannot be read (counted by :meth:`add`)."""
        c = self.columns
        if c.inbound:
            return inbound_role(data.get(c.inbound))
        if c.author and self._brands:
            author = data.get(c.author)
            return BRAND if author is not None and str(author).strip() in self._brands else CUSTOMER
        return CUSTOMER

    def add(self, data: dict[str, Any]) -> int:
        """Record one row; returns its role."""
        c = self.columns
        n = len(self._ids)
        role = self.role_of(data)
        if role is None:
            self.counts.unreadable_inbound += 1
            role = CUSTOMER
        self._roles.append(role)
        self._ids.append(id_key(data.get(c.id)) if c.id else MISSING)
        if c.time:
            t, kind = epoch_seconds(data.get(c.time))
            self._time_kinds[kind] += 1
        else:
            t = math.nan
        self._times.append(t)
        self._reply_to.append(id_key(data.get(c.reply_to)) if c.reply_to else MISSING)
        if c.responses and role == CUSTOMER:
            for k in id_keys(data.get(c.responses)):
                self._resp_rows.append(n)
                self._resp_ids.append(k)
        return role

    def __len__(self) -> int:
        return len(self._ids)

    def resolve(self) -> Replies:
        c = self.counts
        ids = np.frombuffer(self._ids, dtype=np.int64) if len(self._ids) else np.zeros(0, np.int64)
        times = np.frombuffer(self._times, dtype=np.float64) if len(self._times) else np.zeros(0)
        reply_to = np.frombuffer(self._reply_to, dtype=np.int64) if len(self._reply_to) else np.zeros(0, np.int64)
        role = np.frombuffer(self._roles, dtype=np.int8) if len(self._roles) else np.zeros(0, np.int8)
        n = len(ids)
        c.rows = n
        c.brand_replies = int((role == BRAND).sum())
        c.customer_posts = n - c.brand_replies
        c.missing_ids = int((ids == MISSING).sum()) if self.columns.id else 0
        c.times_missing, c.times_unreadable, c.times_with_zone, c.times_without_zone = self._time_kinds
        # the table of ids: sorted, the first row of each id (a stable sort keeps file order among equals)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        first = np.ones(n, dtype=bool)
        first[1:] = sorted_ids[1:] != sorted_ids[:-1]
        first &= sorted_ids != MISSING
        c.duplicate_ids = int(((~first) & (sorted_ids != MISSING)).sum())
        table_ids, table_rows = sorted_ids[first], order[first]
        del order, sorted_ids, first

        def lookup(keys: np.ndarray) -> np.ndarray:
            if not len(table_ids):
                return np.full(len(keys), -1, dtype=np.int64)
            pos = np.minimum(np.searchsorted(table_ids, keys), len(table_ids) - 1)
            return np.where(table_ids[pos] == keys, table_rows[pos], -1)

        # links (customer row, brand row): a brand reply naming the post it answers …
        linked = np.flatnonzero(reply_to != MISSING)
        target = lookup(reply_to[linked])
        c.reply_targets_not_found = int((target < 0).sum())
        keep = (target >= 0) & (role[linked] == BRAND)
        keep[keep] &= role[target[keep]] == CUSTOMER
        cust, brand = [target[keep]], [linked[keep]]
        # … and a customer post listing its replies
        if len(self._resp_rows):
            resp_rows = np.frombuffer(self._resp_rows, dtype=np.int64)
            found = lookup(np.frombuffer(self._resp_ids, dtype=np.int64))
            c.response_ids_not_found = int((found < 0).sum())
            ok = found >= 0
            ok[ok] &= role[found[ok]] == BRAND
            cust.append(resp_rows[ok])
            brand.append(found[ok])
        cust_rows, brand_rows = np.concatenate(cust), np.concatenate(brand)
        if len(cust_rows):  # the same link seen both ways counts once
            pairs = np.unique(np.stack([cust_rows, brand_rows], axis=1), axis=0)
            cust_rows, brand_rows = pairs[:, 0], pairs[:, 1]
        delay = times[brand_rows] - times[cust_rows]
        no_time = np.isnan(delay)
        before = delay < 0
        c.replies_without_time = int(no_time.sum())
        c.replies_before_post = int(before.sum())
        usable = np.where(no_time | before, np.inf, delay)
        replied = np.zeros(n, dtype=bool)
        replied[cust_rows] = True
        best_delay = np.full(n, np.nan)
        best_row = np.full(n, -1, dtype=np.int64)
        if len(cust_rows):
            o = np.lexsort((usable, cust_rows))  # by post, then delay: the first of each post is its first reply
            cr, br, us = cust_rows[o], brand_rows[o], usable[o]
            head = np.ones(len(cr), dtype=bool)
            head[1:] = cr[1:] != cr[:-1]
            cr, br, us = cr[head], br[head], us[head]
            timed = np.isfinite(us)
            best_delay[cr[timed]] = us[timed]
            best_row[cr[timed]] = br[timed]
        c.answered = int(replied.sum())
        c.answered_with_time = int((~np.isnan(best_delay)).sum())
        return Replies(role.copy(), replied, best_row, best_delay, times.copy(), c)


def build_replies(path: str | Path, columns: ThreadColumns) -> Replies:
    """One pass over an input file: its :class:`Replies`."""
    index = ReplyIndex(columns)
    for row in iter_rows(path, columns=columns.columns() if Path(path).suffix.lower() in (".parquet", ".pq") else None):
        index.add(row.data)
    return index.resolve()


def fetch_rows(path: str | Path, wanted: set[int], columns: list[str]) -> dict[int, dict[str, Any]]:
    """The given cells of the given rows (0-based, file order), in one streaming pass."""
    if not wanted:
        return {}
    last = max(wanted)
    parquet = Path(path).suffix.lower() in (".parquet", ".pq")
    out = {}
    for i, row in enumerate(iter_rows(path, columns=columns if parquet else None)):
        if i in wanted:
            out[i] = {c: row.data.get(c) for c in columns}
        if i >= last:
            break
    return out


# -- the report section ----------------------------------------------------------------
def _stats(delays: np.ndarray) -> dict[str, Any]:
    d = delays[~np.isnan(delays)]
    if not len(d):
        return {"answered_with_time": 0, "median_s": None, "p90_s": None}
    return {
        "answered_with_time": int(len(d)),
        "median_s": round(float(np.median(d)), 1),
        "p90_s": round(float(np.quantile(d, 0.9)), 1),
    }


@dataclass
class ThreadSummary:
    """The report's threads section; ``absent`` says why it is empty."""

    absent: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    overall: dict[str, Any] = field(default_factory=dict)
    by_complaint_type: dict[str, dict] = field(default_factory=dict)
    by_sentiment: dict[str, dict] = field(default_factory=dict)
    by_language: dict[str, dict] = field(default_factory=dict)
    #: median first-response seconds, [weekday][hour] (UTC) of the customer post; None where nothing was answered
    heatmap_median_s: list[list[float | None]] = field(default_factory=list)
    heatmap_answered: list[list[int]] = field(default_factory=list)
    histogram: dict[str, list] = field(default_factory=dict)
    unanswered_complaints: dict[str, Any] = field(default_factory=dict)
    oldest_unanswered: dict[str, list[dict]] = field(default_factory=dict)


#: Upper edges (seconds) of the response-time histogram's bins; the last bin is open.
HIST_EDGES = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400)
HIST_LABELS = ("<1m", "1-5m", "5-15m", "15-30m", "30-60m", "1-2h", "2-4h", "4-8h", "8-24h", "1-3d", ">3d")


class ThreadSection:
    """The report's streaming hook for conversations: :meth:`add` every row of a scored file (brand replies too),
    then :meth:`wanted_rows`, then :meth:`finish` with those rows' cells. Keeps the :class:`ReplyIndex` plus 4 bytes
    per row (complaint type, sentiment, language codes)."""

    def __init__(self, columns: ThreadColumns | None, top_n: int = 5, absent: str | None = None):
        self.columns = columns
        self.top_n = top_n
        self.absent = absent if columns is None or not columns.has_threads else None
        if columns is not None and not columns.has_threads and self.absent is None:
            self.absent = (
                "the archive has no reply links with ids, times and roles (see --reply-to-column, --inbound-column)"
            )
        self.index = ReplyIndex(columns) if self.absent is None else None
        self._ct = array("b")
        self._sent = array("b")
        self._lang = array("h")
        self._langs: dict[str, int] = {}
        self._replies: Replies | None = None
        self._oldest: dict[str, list[int]] = {}

    def add(self, data: dict[str, Any]) -> None:
        if self.index is None:
            return
        role = self.index.add(data)
        ok = role == CUSTOMER and data.get("status") == "ok"
        ct, sent = data.get("complaint_type"), data.get("sentiment")
        self._ct.append(COMPLAINT_TYPES.index(ct) if ok and ct in COMPLAINT_TYPES else -1)
        self._sent.append(SENTIMENTS.index(sent) if ok and sent in SENTIMENTS else -1)
        lang = str(data.get("lang")) if ok else None
        self._lang.append(
            self._langs.setdefault(lang, len(self._langs)) if lang is not None and len(self._langs) < 32000 else -1
        )

    def wanted_rows(self) -> set[int]:
        """The rows whose text the section shows (the oldest unanswered complaints); resolves the replies."""
        if self.index is None:
            return set()
        r = self._replies = self.index.resolve()
        ct = np.frombuffer(self._ct, dtype=np.int8) if len(self._ct) else np.zeros(0, np.int8)
        wanted: set[int] = set()
        for i, name in enumerate(COMPLAINTS):
            rows = np.flatnonzero((ct == i) & ~r.replied & (r.role == CUSTOMER))
            t = np.where(np.isnan(r.times[rows]), np.inf, r.times[rows])
            chosen = rows[np.lexsort((rows, t))[: self.top_n]]
            self._oldest[name] = [int(x) for x in chosen]
            wanted.update(self._oldest[name])
        return wanted

    def fetch_columns(self) -> list[str]:
        c = self.columns
        return [x for x in (c.id, c.author, c.time, "text") if x] if c else []

    def finish(self, fetched: dict[int, dict[str, Any]]) -> ThreadSummary:
        if self.index is None:
            return ThreadSummary(absent=self.absent)
        r = self._replies if self._replies is not None else self.index.resolve()
        s = ThreadSummary(columns={k: v for k, v in asdict(self.columns).items() if v})
        s.counts = asdict(r.counts)
        s.notes = explain(r.counts)
        ct = np.frombuffer(self._ct, dtype=np.int8)
        sent = np.frombuffer(self._sent, dtype=np.int8)
        lang = np.frombuffer(self._lang, dtype=np.int16)
        customer = r.role == CUSTOMER
        s.overall = {
            "customer_posts": int(customer.sum()),
            "answered": int(r.replied[customer].sum()),
            **_stats(r.delay[customer]),
        }

        def group(mask: np.ndarray) -> dict[str, Any]:
            return {"posts": int(mask.sum()), "answered": int(r.replied[mask].sum()), **_stats(r.delay[mask])}

        s.by_complaint_type = {name: group(ct == i) for i, name in enumerate(COMPLAINT_TYPES)}
        s.by_sentiment = {name: group(sent == i) for i, name in enumerate(SENTIMENTS)}
        by_lang = {name: group(lang == code) for name, code in self._langs.items()}
        s.by_language = dict(sorted(by_lang.items(), key=lambda kv: -kv[1]["posts"])[:15])
        # hour of day × day of week (UTC) of the customer post
        timed = customer & ~np.isnan(r.delay)
        when = r.times[timed].astype("datetime64[s]")
        hours = (when.astype("datetime64[h]").astype(np.int64) % 24).astype(int)
        weekdays = ((when.astype("datetime64[D]").astype(np.int64) + 3) % 7).astype(int)  # 1970-01-01 was a Thursday
        delays = r.delay[timed]
        s.heatmap_median_s = [[None] * 24 for _ in range(7)]
        s.heatmap_answered = [[0] * 24 for _ in range(7)]
        cell = weekdays * 24 + hours
        order = np.argsort(cell, kind="stable")
        cells, starts, sizes = np.unique(cell[order], return_index=True, return_counts=True)
        for k, start, size in zip(cells, starts, sizes, strict=True):
            vals = delays[order[start : start + size]]
            s.heatmap_median_s[k // 24][k % 24] = round(float(np.median(vals)), 1)
            s.heatmap_answered[k // 24][k % 24] = int(len(vals))
        counts = np.bincount(
            np.searchsorted(np.asarray(HIST_EDGES, dtype=float), delays, side="right"), minlength=len(HIST_LABELS)
        )
        s.histogram = {"labels": list(HIST_LABELS), "answered": [int(x) for x in counts]}
        complaint = customer & (ct >= 0) & (ct < len(COMPLAINTS))
        never = complaint & ~r.replied
        s.unanswered_complaints = {
            "complaints": int(complaint.sum()),
            "unanswered": int(never.sum()),
            "share": round(float(never.sum() / complaint.sum()), 4) if complaint.any() else None,
            "by_type": {
                name: {
                    "complaints": int((complaint & (ct == i)).sum()),
                    "unanswered": int((never & (ct == i)).sum()),
                }
                for i, name in enumerate(COMPLAINTS)
            },
        }
        c = self.columns
        for name, rows in self._oldest.items():
            s.oldest_unanswered[name] = [
                {
                    "id": _plain(fetched.get(i, {}).get(c.id)) if c.id else None,
                    "author": _plain(fetched.get(i, {}).get(c.author)) if c.author else None,
                    "posted_at": iso_utc(float(r.times[i])),
                    "text": _plain(fetched.get(i, {}).get("text")),
                }
                for i in rows
            ]
        return s


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def duration(seconds: float | None) -> str:
    """42s, 12m, 3.5h, 2.1d."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _share(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "–"


def _group_rows(groups: dict[str, dict]) -> list[tuple[str, int, int, str, str]]:
    return [
        (k, g["posts"], g["answered"], duration(g["median_s"]), duration(g["p90_s"]))
        for k, g in groups.items()
        if g["posts"]
    ]


def _heatmap_svg(s: ThreadSummary) -> str:
    """Median first-response time per hour of day × day of week, darker is slower (log scale)."""
    vals = [v for row in s.heatmap_median_s for v in row if v is not None]
    if not vals:
        return ""
    lo, hi = math.log1p(min(vals)), math.log1p(max(vals))
    w, h, left, top = 22, 18, 36, 16
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + 24 * w + 4}' "
        f"height='{top + 7 * h + 20}' font-size='10' font-family='sans-serif'>"
    ]
    for hour in range(0, 24, 3):
        parts.append(f"<text x='{left + hour * w + w / 2}' y='11' text-anchor='middle'>{hour:02d}</text>")
    for d in range(7):
        parts.append(f"<text x='2' y='{top + d * h + 13}'>{WEEKDAYS[d]}</text>")
        for hour in range(24):
            v = s.heatmap_median_s[d][hour]
            n = s.heatmap_answered[d][hour]
            if v is None:
                fill, tip = "#f4f4f4", "no answered posts"
            else:
                x = (math.log1p(v) - lo) / (hi - lo) if hi > lo else 0.5
                fill = f"rgb({int(255 - 60 * x)},{int(235 - 175 * x)},{int(220 - 180 * x)})"
                tip = f"median {duration(v)} over {n} answered posts"
            parts.append(
                f"<rect x='{left + hour * w}' y='{top + d * h}' width='{w - 1}' height='{h - 1}' fill='{fill}'>"
                f"<title>{WEEKDAYS[d]} {hour:02d}:00 UTC: {tip}</title></rect>"
            )
    parts.append(
        f"<text x='{left}' y='{top + 7 * h + 14}'>hour of day (UTC) of the customer post; darker = slower first "
        f"reply (lightest {duration(min(vals))}, darkest {duration(max(vals))}; grey: no answered post)</text></svg>"
    )
    return "".join(parts)


def _histogram_svg(s: ThreadSummary) -> str:
    counts = s.histogram.get("answered") or []
    if not sum(counts):
        return ""
    w, h, top = 48, 100, 14
    peak = max(counts)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w * len(counts) + 8}' "
        f"height='{h + top + 30}' font-size='10' font-family='sans-serif'>"
    ]
    for i, (label, n) in enumerate(zip(s.histogram["labels"], counts, strict=True)):
        bh = h * n / peak
        parts.append(
            f"<rect x='{i * w + 4}' y='{top + h - bh}' width='{w - 6}' "
            f"height='{bh}' fill='#2c7fb8'><title>{label}: {n}</title></rect>"
        )
        parts.append(f"<text x='{i * w + w / 2}' y='{top + h - bh - 3}' text-anchor='middle'>{n}</text>")
        parts.append(f"<text x='{i * w + w / 2}' y='{top + h + 14}' text-anchor='middle'>{html.escape(label)}</text>")
    parts.append(
        f"<text x='4' y='{top + h + 28}'>time to the first brand "
        "reply (answered customer posts with times)</text></svg>"
    )
    return "".join(parts)


_RIGHT = " style='text-align:right;font-variant-numeric:tabular-nums'"


def _table(head: tuple[str, ...], rows: list[tuple], num: Iterable[int] = (), wide: bool = False) -> str:
    """A table in the report's style; columns ``num`` right-aligned, as are those holding only numbers. Narrow
    unless ``wide`` (a column of post texts)."""
    e = html.escape
    right = set(num) | {i for i in range(len(head)) if rows and all(isinstance(r[i], (int, float)) for r in rows)}
    width = "" if wide else " style='width:auto'"
    out = [
        f"<table class='posts'{width}><tr>"
        + "".join(f"<th{_RIGHT if i in right else ''}>{e(h)}</th>" for i, h in enumerate(head))
        + "</tr>"
    ]
    out += [
        "<tr>" + "".join(f"<td{_RIGHT if i in right else ''}>{e(str(x))}</td>" for i, x in enumerate(row)) + "</tr>"
        for row in rows
    ]
    return "".join(out) + "</table>"


def _h3(title: str) -> str:
    """A sub-heading with room above it (the report's h3 has none: it is made for cards)."""
    return f"<h3 style='margin-top:18px'>{html.escape(title)}</h3>"


def render_html(s: ThreadSummary) -> str:
    """The threads section as an HTML fragment (inline SVG, no scripts)."""
    e = html.escape
    out = ["<h2>Threads and response times</h2>"]
    if s.absent:
        return out[0] + f"<p>No response times: {e(s.absent)}.</p>"
    o, c = s.overall, s.counts
    out.append(
        f"<p>{c['customer_posts']} customer posts and {c['brand_replies']} brand replies (kept, not classified). "
        f"{o['answered']} customer posts ({_share(o['answered'], o['customer_posts'])}) got a brand reply; "
        f"first reply after <b>{duration(o['median_s'])}</b> "
        f"(median), <b>{duration(o['p90_s'])}</b> (90th percentile), "
        f"over the {o['answered_with_time']} with usable times.</p>"
    )
    u = s.unanswered_complaints
    if u["complaints"]:
        out.append(
            f"<p>Complaints never answered: <b>{u['unanswered']} of "
            f"{u['complaints']} ({_share(u['unanswered'], u['complaints'])})</b>"
            " (posts near the archive's end may simply not have been answered yet).</p>"
        )
    out.append(_histogram_svg(s))
    for title, groups in (
        ("complaint type", s.by_complaint_type),
        ("sentiment", s.by_sentiment),
        ("language", s.by_language),
    ):
        head = (title, "posts", "answered", "median", "p90")
        out.append(_h3(f"First response by {title}") + _table(head, _group_rows(groups), num=(3, 4)))
    svg = _heatmap_svg(s)
    if svg:
        out.append(_h3("Median first response by hour of day × day of week") + svg)
    out.append(_h3("Oldest unanswered complaints"))
    for name, posts in s.oldest_unanswered.items():
        by = u["by_type"][name]
        out.append(f"<h4>{e(name)}: {by['unanswered']} of {by['complaints']} unanswered</h4>")
        if posts:
            out.append(
                _table(
                    ("posted", "id", "author", "text"),
                    [
                        (p["posted_at"] or "", p["id"] or "", p["author"] or "", str(p["text"] or "")[:300])
                        for p in posts
                    ],
                    wide=True,
                )
            )
    if s.notes:
        out.append("<p><small>Left out or assumed: " + "; ".join(e(n) for n in s.notes) + ".</small></p>")
    return "\n".join(out)


def render_markdown(s: ThreadSummary) -> str:
    lines = ["## Threads and response times", ""]
    if s.absent:
        return "\n".join(lines + [f"No response times: {s.absent}.", ""])
    o, u = s.overall, s.unanswered_complaints
    lines += [
        f"{o['customer_posts']} customer posts, {s.counts['brand_replies']} "
        f"brand replies; {o['answered']} customer posts answered; "
        f"first reply median {duration(o['median_s'])}, p90 {duration(o['p90_s'])}.",
        "",
    ]
    if u["complaints"]:
        lines += [
            f"Complaints never answered: {u['unanswered']} of "
            f"{u['complaints']} ({_share(u['unanswered'], u['complaints'])}).",
            "",
        ]
    lines += ["| complaint type | posts | answered | median | p90 |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {p} | {a} | {m} | {q} |" for k, p, a, m, q in _group_rows(s.by_complaint_type)]
    lines += [""] + [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
    return "\n".join(lines)


def render_json(s: ThreadSummary) -> dict[str, Any]:
    return asdict(s)
