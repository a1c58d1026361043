"""The report's conversation sections in one hook: threads and response times (:mod:`earful.batch.threads`) and
who is talking (:mod:`earful.batch.people`).

``earful report`` makes one :class:`ConversationSections` from the first row of the scored file, passes it every
row of its streaming pass (:meth:`~ConversationSections.add`), then calls :meth:`~ConversationSections.finish`,
which reads back, in one more streaming pass, only the few rows the sections quote (oldest unanswered complaints,
the listed authors, the highest-reach complaints). Memory is the two hooks' (see their modules): about 70 bytes
per row on a conversation archive with authors and reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earful.batch import people, threads


@dataclass(frozen=True)
class ConversationOptions:
    """What ``earful report`` was told about the archive's conversation columns (None: not given)."""

    id_column: str | None = None
    author_column: str | None = None
    inbound_column: str | None = None
    time_column: str | None = None
    reply_to_column: str | None = None
    responses_column: str | None = None
    reach_column: str | None = None
    mapping: str | None = None
    detect_layout: bool = True
    min_complaints: int = 3
    top_n: int = 5

    def resolve(self, present: list[str], source: str) -> threads.ThreadColumns | None:
        return threads.resolve_columns(
            present,
            source,
            mapping_file=self.mapping,
            detect_layout=self.detect_layout,
            id=self.id_column,
            author=self.author_column,
            inbound=self.inbound_column,
            time=self.time_column,
            reply_to=self.reply_to_column,
            responses=self.responses_column,
            reach=self.reach_column,
        )


class ConversationSections:
    def __init__(self, first_row: dict[str, Any], source: str | Path, options: ConversationOptions | None = None):
        options = options or ConversationOptions()
        self.columns = options.resolve(list(first_row), str(source))
        absent = None
        if self.columns is None:
            absent = (
                "the archive has no conversation columns (the Customer Support on Twitter layout is recognised; "
                "otherwise name them with --id-column, --inbound-column, --reply-to-column, --time-column or --mapping)"
            )
        self.threads = threads.ThreadSection(self.columns, top_n=options.top_n, absent=absent)
        self.people = people.PeopleSection(
            self.columns, min_complaints=options.min_complaints, top_n=max(10, options.top_n)
        )

    def add(self, data: dict[str, Any]) -> None:
        self.threads.add(data)
        self.people.add(data)

    def finish(self, path: str | Path) -> dict[str, Any]:
        """``{"threads": ..., "people": ...}``, JSON-ready."""
        wanted = self.threads.wanted_rows() | self.people.wanted_rows()
        cols = list(dict.fromkeys(self.threads.fetch_columns() + self.people.fetch_columns()))
        fetched = threads.fetch_rows(path, wanted, cols) if wanted else {}
        return {
            "threads": threads.render_json(self.threads.finish(fetched)),
            "people": people.render_json(self.people.finish(fetched)),
        }


def render_html(result: dict[str, Any]) -> str:
    """The two sections' HTML fragments, from :meth:`ConversationSections.finish`'s result."""
    if not result:
        return ""
    return (
        threads.render_html(threads.ThreadSummary(**result["threads"]))
        + "\n"
        + people.render_html(people.PeopleSummary(**result["people"]))
    )


def render_markdown(result: dict[str, Any]) -> str:
    if not result:
        return ""
    return (
        threads.render_markdown(threads.ThreadSummary(**result["threads"]))
        + "\n"
        + people.render_markdown(people.PeopleSummary(**result["people"]))
    )
