"""Who is talking: the most active authors, repeat complainers and, with a reach column, complaints weighted by reach.

Only customer posts count (a brand's replies are not its customers talking). A repeat complainer is an author
with at least ``min_complaints`` complaints (posts classified order_error, product or poor_service) in the
archive. With a reach column (followers, say), each complaint also counts for its author's reach at the time of
the post: the reach-weighted complaint mix says whose complaints many people saw, and the highest-reach complaints
are listed.

Memory: :class:`PeopleSection` keeps 26 bytes per customer post (author key int64, row int64, reach float64,
complaint type and sentiment int8) and a heap of ``top_n`` posts; an author's name is read back from the file
only for the authors it lists.
"""

from __future__ import annotations

import heapq
import html
import math
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from earful.batch.threads import BRAND, COMPLAINTS, MISSING, ReplyIndex, ThreadColumns, _h3, _table, id_key
from earful.schema import COMPLAINT_TYPES, SENTIMENTS

#: Repeat complainers listed at most (the JSON's ``repeat_complainers.authors``); the count covers all of them.
MAX_LISTED = 50


@dataclass
class PeopleSummary:
    absent: str | None = None
    author_column: str | None = None
    reach_column: str | None = None
    min_complaints: int = 3
    customer_posts: int = 0
    authors: int = 0
    posts_without_author: int = 0
    most_active: list[dict] = field(default_factory=list)
    repeat_complainers: dict[str, Any] = field(default_factory=dict)
    reach: dict[str, Any] = field(default_factory=dict)


def reach_value(v: Any) -> float:
    """A reach cell as a non-negative number; NaN when empty or unreadable."""
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        x = float(str(v).replace(",", "").strip()) if isinstance(v, str) else float(v)
    except ValueError:
        return math.nan
    return x if math.isfinite(x) and x >= 0 else math.nan


class PeopleSection:
    """The report's streaming hook for authors: :meth:`add` every row (roles come from the conversation columns
    where the archive has them; without them every post is a customer post), then :meth:`wanted_rows`, then
    :meth:`finish` with those rows' cells."""

    def __init__(self, columns: ThreadColumns | None, min_complaints: int = 3, top_n: int = 10):
        if min_complaints < 1:
            raise ValueError("--min-complaints must be at least 1")
        self.columns = columns
        self.author = columns.author if columns else None
        self.reach = columns.reach if columns else None
        self.min_complaints = min_complaints
        self.top_n = top_n
        self._roles = ReplyIndex(columns) if columns and columns.has_roles else None
        self._authors = array("q")
        self._rows = array("q")
        self._reach = array("d")
        self._ct = array("b")
        self._sent = array("b")
        self._heap: list = []
        self._n = 0
        self._no_author = 0
        self._selected: dict[str, Any] = {}

    def add(self, data: dict[str, Any]) -> None:
        i = self._n
        self._n += 1
        if self.author is None and self.reach is None:
            return
        if self._roles is not None and self._roles.role_of(data) == BRAND:
            return
        ok = data.get("status") == "ok"
        ct, sent = data.get("complaint_type"), data.get("sentiment")
        ct_code = COMPLAINT_TYPES.index(ct) if ok and ct in COMPLAINT_TYPES else -1
        key = id_key(data.get(self.author)) if self.author else MISSING
        if self.author and key == MISSING:
            self._no_author += 1
        self._authors.append(key)
        self._rows.append(i)
        self._ct.append(ct_code)
        self._sent.append(SENTIMENTS.index(sent) if ok and sent in SENTIMENTS else -1)
        reach = reach_value(data.get(self.reach)) if self.reach else math.nan
        self._reach.append(reach)
        if 0 <= ct_code < len(COMPLAINTS) and not math.isnan(reach):
            item = (reach, -i, i)
            (heapq.heappush if len(self._heap) < self.top_n else heapq.heappushpop)(self._heap, item)

    def _arrays(self):
        def arr(a, dtype):
            return np.frombuffer(a, dtype=dtype) if len(a) else np.zeros(0, dtype)

        return (
            arr(self._authors, np.int64),
            arr(self._rows, np.int64),
            arr(self._reach, np.float64),
            arr(self._ct, np.int8),
            arr(self._sent, np.int8),
        )

    def wanted_rows(self) -> set[int]:
        """Rows to read back: an earliest post of each listed author, and the highest-reach complaints."""
        wanted = {i for _, _, i in self._heap}
        if not self.author:
            return wanted
        authors, rows, _, ct, _ = self._arrays()
        has = authors != MISSING
        if not has.any():
            return wanted
        uniq, first, inverse = np.unique(authors[has], return_index=True, return_inverse=True)
        posts = np.bincount(inverse, minlength=len(uniq))
        complaint = (ct[has] >= 0) & (ct[has] < len(COMPLAINTS))
        complaints = np.bincount(inverse, weights=complaint, minlength=len(uniq)).astype(np.int64)
        active = np.lexsort((first, -posts))[: self.top_n]
        repeat = np.flatnonzero(complaints >= self.min_complaints)
        repeat = repeat[np.lexsort((first[repeat], -complaints[repeat]))]
        self._selected = {
            "uniq": uniq,
            "inverse": inverse,
            "first_row": rows[has][first],
            "posts": posts,
            "complaints": complaints,
            "active": active,
            "repeat": repeat,
        }
        wanted.update(int(rows[has][first][j]) for j in np.concatenate([active, repeat[:MAX_LISTED]]))
        return wanted

    def fetch_columns(self) -> list[str]:
        return [c for c in (self.author, self.reach, self.columns.id if self.columns else None, "text") if c]

    def finish(self, fetched: dict[int, dict[str, Any]]) -> PeopleSummary:
        s = PeopleSummary(author_column=self.author, reach_column=self.reach, min_complaints=self.min_complaints)
        if self.author is None and self.reach is None:
            s.absent = "the archive has no author column (name it with --author-column, or score a TWCS-layout archive)"
            return s
        authors, rows, reach, ct, sent = self._arrays()
        s.customer_posts = len(rows)
        s.posts_without_author = self._no_author
        if self.author and self._selected:
            sel = self._selected
            has = authors != MISSING
            ct_h, sent_h = ct[has], sent[has]
            s.authors = len(sel["uniq"])

            def profile(j: int) -> dict[str, Any]:
                mine = sel["inverse"] == j
                cts = np.bincount(ct_h[mine][ct_h[mine] >= 0], minlength=len(COMPLAINT_TYPES))
                sents = np.bincount(sent_h[mine][sent_h[mine] >= 0], minlength=len(SENTIMENTS))
                return {
                    "author": _name(fetched.get(int(sel["first_row"][j]), {}).get(self.author)),
                    "posts": int(sel["posts"][j]),
                    "complaints": int(sel["complaints"][j]),
                    "complaint_types": {c: int(n) for c, n in zip(COMPLAINT_TYPES, cts, strict=True)},
                    "sentiments": {c: int(n) for c, n in zip(SENTIMENTS, sents, strict=True)},
                }

            s.most_active = [profile(int(j)) for j in sel["active"]]
            repeat = sel["repeat"]
            total_complaints = int(sel["complaints"].sum())
            s.repeat_complainers = {
                "authors": [profile(int(j)) for j in repeat[:MAX_LISTED]],
                "count": int(len(repeat)),
                "listed": int(min(len(repeat), MAX_LISTED)),
                "complaints": int(sel["complaints"][repeat].sum()),
                "share_of_complaints": round(float(sel["complaints"][repeat].sum() / total_complaints), 4)
                if total_complaints
                else None,
            }
        elif self.author:
            s.repeat_complainers = {
                "authors": [],
                "count": 0,
                "listed": 0,
                "complaints": 0,
                "share_of_complaints": None,
            }
        if self.reach:
            known = ~np.isnan(reach)
            by_type = {}
            for i, name in enumerate(COMPLAINT_TYPES):
                m = known & (ct == i)
                by_type[name] = {"posts": int(m.sum()), "reach": float(reach[m].sum())}
            complaint_reach = sum(by_type[c]["reach"] for c in COMPLAINTS)
            for name in COMPLAINTS:
                by_type[name]["share_of_complaint_reach"] = (
                    round(by_type[name]["reach"] / complaint_reach, 4) if complaint_reach else None
                )
            s.reach = {
                "posts_with_reach": int(known.sum()),
                "posts_without_reach": int((~known).sum()),
                "by_complaint_type": by_type,
                "top_complaints": [
                    {
                        "reach": r,
                        "complaint_type": COMPLAINT_TYPES[int(ct[np.searchsorted(rows, i)])],
                        "author": _name(fetched.get(i, {}).get(self.author)) if self.author else None,
                        "id": _name(fetched.get(i, {}).get(self.columns.id)) if self.columns.id else None,
                        "text": _name(fetched.get(i, {}).get("text")),
                    }
                    for r, _, i in sorted(self._heap, reverse=True)
                ],
            }
        else:
            s.reach = {"absent": "no reach column (name one, followers for instance, with --reach-column)"}
        return s


def _name(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def _mix(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if v) or "–"


def render_html(s: PeopleSummary) -> str:
    e = html.escape
    out = ["<h2>Who is talking</h2>"]
    if s.absent:
        return out[0] + f"<p>No author section: {e(s.absent)}.</p>"
    if s.author_column:
        out.append(
            f"<p>{s.customer_posts} customer posts by {s.authors} "
            f"authors (column <code>{e(s.author_column)}</code>).</p>"
        )
        head = ("author", "posts", "complaints", "complaint types", "sentiment")
        rows = [
            (p["author"], p["posts"], p["complaints"], _mix(p["complaint_types"]), _mix(p["sentiments"]))
            for p in s.most_active
        ]
        out.append(_h3("Most active authors") + _table(head, rows))
        rc = s.repeat_complainers
        share = (
            f", {100 * rc['share_of_complaints']:.0f}% of all complaints"
            if rc.get("share_of_complaints") is not None
            else ""
        )
        out.append(
            _h3(f"Repeat complainers (≥ {s.min_complaints} complaints)") + f"<p>{rc['count']} authors, "
            f"{rc['complaints']} complaints{share}"
            + (f"; the first {rc['listed']} listed" if rc["count"] > rc["listed"] else "")
            + ".</p>"
        )
        if rc["authors"]:
            rows = [
                (p["author"], p["posts"], p["complaints"], _mix(p["complaint_types"]), _mix(p["sentiments"]))
                for p in rc["authors"]
            ]
            out.append(_table(head, rows))
    else:
        out.append("<p>No author column, so no most active authors or repeat complainers.</p>")
    r = s.reach
    if "absent" in r:
        out.append(f"<p>No reach: {e(r['absent'])}.</p>")
    else:
        out.append(_h3(f"Complaints weighted by reach ({s.reach_column or ''})"))
        rows = [
            (
                k,
                v["posts"],
                f"{v['reach']:,.0f}",
                f"{100 * v['share_of_complaint_reach']:.0f}%" if v.get("share_of_complaint_reach") is not None else "–",
            )
            for k, v in r["by_complaint_type"].items()
            if k in COMPLAINTS
        ]
        out.append(_table(("complaint type", "posts", "total reach", "share of complaint reach"), rows, num=(2, 3)))
        out.append(_h3("Highest-reach complaints"))
        rows = [
            (f"{p['reach']:,.0f}", p["complaint_type"], p["author"] or "", p["id"] or "", str(p["text"] or "")[:300])
            for p in r["top_complaints"]
        ]
        out.append(_table(("reach", "type", "author", "id", "text"), rows, num=(0,), wide=True))
    return "\n".join(out)


def render_markdown(s: PeopleSummary) -> str:
    lines = ["## Who is talking", ""]
    if s.absent:
        return "\n".join(lines + [f"No author section: {s.absent}.", ""])
    if s.author_column:
        rc = s.repeat_complainers
        lines += [
            f"{s.customer_posts} customer posts by {s.authors} authors; "
            f"{rc['count']} repeat complainers (≥ {s.min_complaints} complaints).",
            "",
        ]
        lines += ["| author | posts | complaints | complaint types |", "|---|---|---|---|"]
        lines += [
            f"| {p['author']} | {p['posts']} | {p['complaints']} | {_mix(p['complaint_types'])} |"
            for p in s.most_active
        ]
        lines.append("")
    if "absent" not in s.reach:
        lines += ["| complaint type | total reach |", "|---|---|"]
        lines += [f"| {k} | {v['reach']:,.0f} |" for k, v in s.reach["by_complaint_type"].items() if k in COMPLAINTS]
        lines.append("")
    return "\n".join(lines)


def render_json(s: PeopleSummary) -> dict[str, Any]:
    return asdict(s)
