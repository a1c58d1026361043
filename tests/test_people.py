"""Who is talking: most active authors, repeat complainers, reach-weighted complaints, and why the section is
absent when the archive cannot say."""

import json
from pathlib import Path

import pytest

from earful.batch.conversation import ConversationOptions, ConversationSections, render_html, render_markdown
from earful.batch.people import PeopleSection, reach_value
from earful.tabular import iter_rows, write_rows

TWCS_SAMPLE = Path(__file__).parent / "fixtures" / "twcs_threads_sample.csv"


def _post(i, author, ct, sent="negative", reach=None, customer=True):
    row = {
        "id": f"p{i}",
        "who": author,
        "inbound": "true" if customer else "false",
        "text": f"post {i} by {author}",
        "status": "ok" if customer else "brand_reply",
        "complaint_type": ct if customer else None,
        "sentiment": sent if customer else None,
        "lang": "en",
    }
    if reach is not None:
        row["followers"] = reach
    return row


def _rows():
    rows = []
    i = 0
    plan = {  # author: complaint types of their posts
        "ann": ["order_error", "order_error", "product", "none"],
        "bob": ["poor_service", "poor_service"],
        "cy": ["none", "none", "none", "none", "none"],
        "dee": ["product", "order_error", "poor_service"],
    }
    reach = {"ann": "100", "bob": "50000", "cy": "10", "dee": "1,200"}
    for author, kinds in plan.items():
        for ct in kinds:
            rows.append(_post(i, author, ct, "positive" if ct == "none" else "negative", reach[author]))
            i += 1
    for _ in range(6):  # the brand talks most, and never counts
        rows.append(_post(i, "AcmeHelp", None, customer=False, reach="999999"))
        i += 1
    return rows


def _people(path, options):
    first = next(iter_rows(path)).data
    sections = ConversationSections(first, path, options)
    for row in iter_rows(path):
        sections.add(row.data)
    return sections.finish(path)["people"]


OPTS = ConversationOptions(author_column="who", inbound_column="inbound", reach_column="followers", min_complaints=3)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_repeat_complainers_most_active_and_reach(tmp_path, fmt):
    path = tmp_path / f"scored.{fmt}"
    write_rows(path, _rows())
    p = _people(path, OPTS)
    assert p["customer_posts"] == 14 and p["authors"] == 4
    assert [a["author"] for a in p["most_active"]] == ["cy", "ann", "dee", "bob"]  # brand replies never count
    rc = p["repeat_complainers"]
    assert [a["author"] for a in rc["authors"]] == ["ann", "dee"]  # cy posts most but never complains
    ann = rc["authors"][0]
    assert ann["complaints"] == 3 and ann["complaint_types"] == {
        "order_error": 2,
        "product": 1,
        "poor_service": 0,
        "none": 1,
    }
    assert ann["sentiments"] == {"negative": 3, "neutral": 0, "positive": 1}
    assert rc["count"] == 2 and rc["complaints"] == 6 and rc["share_of_complaints"] == round(6 / 8, 4)
    by_type = p["reach"]["by_complaint_type"]
    assert by_type["poor_service"]["reach"] == 2 * 50000 + 1200
    assert by_type["order_error"]["reach"] == 2 * 100 + 1200
    top = p["reach"]["top_complaints"]
    assert [t["author"] for t in top[:2]] == ["bob", "bob"] and top[2]["author"] == "dee"
    assert all(t["complaint_type"] != "none" for t in top) and top[0]["text"].startswith("post")
    assert (
        _people(path, ConversationOptions(author_column="who", inbound_column="inbound", min_complaints=2))[
            "repeat_complainers"
        ]["count"]
        == 3
    )


def test_without_author_or_reach_the_section_says_why(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("who", "followers")} for r in _rows()]
    write_rows(tmp_path / "s.csv", rows)
    p = _people(tmp_path / "s.csv", ConversationOptions())
    assert "no author column" in p["absent"]
    write_rows(tmp_path / "a.csv", [{k: v for k, v in r.items() if k != "followers"} for r in _rows()])
    p = _people(tmp_path / "a.csv", ConversationOptions(author_column="who"))
    assert p["absent"] is None and "no reach column" in p["reach"]["absent"]
    assert p["customer_posts"] == 20  # without an inbound flag every post is a customer's


def test_twcs_sample_authors(tmp_path):
    rows = [r.data for r in iter_rows(TWCS_SAMPLE)]
    for r in rows:
        customer = r["inbound"] == "TRUE"
        r.update(
            status="ok" if customer else "brand_reply",
            complaint_type="product" if customer else None,
            sentiment="negative" if customer else None,
            lang="en",
        )
    write_rows(tmp_path / "scored.parquet", rows)
    result_options = ConversationOptions(min_complaints=4)
    first = rows[0]
    sections = ConversationSections(first, tmp_path / "scored.parquet", result_options)
    for r in iter_rows(tmp_path / "scored.parquet"):
        sections.add(r.data)
    result = sections.finish(tmp_path / "scored.parquet")
    p = result["people"]
    per_author = {}
    for r in rows:
        if r["inbound"] == "TRUE":
            per_author[r["author_id"]] = per_author.get(r["author_id"], 0) + 1
    assert p["authors"] == len(per_author) and p["customer_posts"] == 66
    assert p["most_active"][0]["posts"] == max(per_author.values())
    assert p["repeat_complainers"]["count"] == sum(n >= 4 for n in per_author.values())
    page = render_html(result)
    assert "Repeat complainers" in page and "No reach" in page
    assert "Who is talking" in render_markdown(result)
    json.dumps(result)


def test_reach_cells_and_settings():
    assert reach_value("1,200") == 1200 and reach_value(7) == 7
    assert all(reach_value(v) != reach_value(v) for v in ("", None, "many", -5, True))  # NaN: unknown
    with pytest.raises(ValueError, match="at least 1"):
        PeopleSection(None, min_complaints=0)
