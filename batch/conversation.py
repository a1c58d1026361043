"""The report's conversation sections in one hook: threads and response times (:mod:`earful.batch.threads`) and
who is talking (:mod:`earful.batch.people`).

``earful report`` takes them as two sections (:func:`report_sections`, batch/report.py's ``Section``): both see
every row of the report's streaming pass, and the first to finish reads back, in one more streaming pass for the
two, only the few rows they quote (oldest unanswered complaints, the listed authors, the highest-reach
complaints). The mapping is resolved from the first row: the TWCS layout is recognised, flags and a mapping file
override it. Memory is the two hooks' (see their modules): about 70 bytes
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
    #: the brand's author names, comma-separated, for exports without an inbound flag
    brands: str | None = None
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
            brands=self.brands,
        )


class ConversationSections:
    def __init__(self, first_row: dict[str, Any], source: str | Path, options: ConversationOptions | None = None):
        options = options or ConversationOptions()
        self.columns = options.resolve(list(first_row), str(source))
        absent = None
        if self.columns is None:
            absent = threads.layout_hint(first_row) if options.detect_layout else None
            absent = absent or (
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


class _Shared:
    """What the two report sections share: the mapping (resolved from the first row) and one read-back pass."""

    def __init__(self, options: ConversationOptions):
        self.options = options
        self.sections: ConversationSections | None = None
        self.result: dict[str, Any] | None = None

    def add(self, data: dict[str, Any], part: str) -> None:
        if self.sections is None:
            from earful.batch.report import ReportError

            try:
                self.sections = ConversationSections(data, "the scored file", self.options)
            except threads.ThreadError as e:
                raise ReportError(str(e)) from None
        getattr(self.sections, part).add(data)

    def finish(self, path: str | Path) -> dict[str, Any]:
        if self.result is None:
            if self.sections is None:  # an empty file
                self.sections = ConversationSections({}, path, self.options)
            self.result = self.sections.finish(path)
        return self.result


class _ReportSection:
    """One of ``earful report``'s sections (batch/report.py's ``Section``): ``threads`` or ``people``."""

    def __init__(self, key: str, shared: _Shared):
        self.key = key
        self._shared = shared

    def add(self, data: dict[str, Any]) -> None:
        self._shared.add(data, self.key)

    def finish(self, path: str | Path) -> dict[str, Any]:
        return self._shared.finish(path)[self.key]

    def render_html(self, result: dict[str, Any]) -> str:
        if self.key == "threads":
            return threads.render_html(threads.ThreadSummary(**result))
        return people.render_html(people.PeopleSummary(**result))

    def render_markdown(self, result: dict[str, Any]) -> str:
        if self.key == "threads":
            return threads.render_markdown(threads.ThreadSummary(**result))
        return people.render_markdown(people.PeopleSummary(**result))


def report_sections(options: ConversationOptions | None = None) -> list[_ReportSection]:
    """``earful report``'s threads and people sections (pass them to ``write_report(..., sections=...)``); their
    results land in the report's JSON under ``sections.threads`` and ``sections.people``."""
    shared = _Shared(options or ConversationOptions())
    return [_ReportSection("threads", shared), _ReportSection("people", shared)]


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
