"""The label schema and the labelled-data format: one source of truth, clear errors."""

import gzip
import json

import pytest

from earful.labelled import LabelledDataError, read_labelled
from earful.schema import COMPLAINT_TYPES, SENTIMENTS, Schema
from earful.tabular import TableError, iter_rows, write_rows


def test_schema_task_order_and_round_trip():
    s = Schema(languages=("de", "en"))
    assert [t.name for t in s.tasks] == ["complaint_type", "sentiment", "troll", "lang"]
    assert s.task("complaint_type").labels == COMPLAINT_TYPES
    assert s.task("sentiment").labels == SENTIMENTS
    assert s.task("troll").n_outputs == 1 and s.task("lang").n_outputs == 2
    assert Schema.from_dict(s.to_dict()) == s


def test_schema_refuses_a_bundle_with_other_labels():
    d = Schema(languages=("en",)).to_dict()
    d["tasks"][1]["labels"] = ["bad", "good"]
    with pytest.raises(ValueError, match="schema mismatch for task 'sentiment'"):
        Schema.from_dict(d)


@pytest.mark.parametrize("bad", [("EN",), ("und",), ("en", "en"), ()])
def test_schema_rejects_bad_languages(bad):
    with pytest.raises(ValueError):
        Schema(languages=bad)


ROWS = [
    {"text": "my order never came", "lang": "en", "complaint_type": "order_error", "sentiment": "negative", "troll": 0},
    {"text": "la app no funciona", "lang": "es", "complaint_type": "complaint", "sentiment": None, "troll": None},
    {"text": "danke!", "lang": "de", "complaint_type": None, "sentiment": "positive", "troll": 1},
]


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.parquet", "d.csv.gz", "d.jsonl.zst"])
def test_read_labelled_all_formats(tmp_path, name):
    write_rows(tmp_path / name, ROWS)
    s = read_labelled(tmp_path / name)
    assert s.text == [r["text"] for r in ROWS]
    assert s.complaint_type == ["order_error", "complaint", None]
    assert s.sentiment == ["negative", None, "positive"]
    assert s.troll == [0, None, 1]
    assert s.lang == ["en", "es", "de"]
    assert s.label_counts("complaint_type") == {"complaint": 1, "order_error": 1}


def test_read_labelled_names_line_and_field(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(
        "text,sentiment,troll,lang\nfine,negative,0,en\nhello,happy,0,en\nworld,neutral,2,en\n,neutral,0,EN!\n"
    )
    with pytest.raises(LabelledDataError) as e:
        read_labelled(p)
    msg = str(e.value)
    assert "line 3, field 'sentiment': 'happy' is not one of negative, neutral, positive" in msg
    assert "line 4, field 'troll': '2' is not 0 or 1" in msg
    assert "line 5, field 'text': empty" in msg


def test_read_labelled_requires_text_column(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"body": "hi", "lang": "en"}) + "\n")
    with pytest.raises(LabelledDataError, match="no 'text' column"):
        read_labelled(p)


def test_malformed_jsonl_names_the_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b",,}\n')
    with pytest.raises(TableError, match="line 2: not valid JSON"):
        list(iter_rows(p))


def test_csv_with_wrong_field_count_names_the_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("text,lang\na,en\nb,en,extra\n")
    with pytest.raises(TableError, match="line 3: 3 fields, the header has 2"):
        list(iter_rows(p))


def test_invalid_utf8_is_reported_not_crashing(tmp_path):
    p = tmp_path / "x.csv.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"text,lang\nok,en\nbad \xff\xfe bytes,en\n")
    with pytest.raises(LabelledDataError, match="line 3, field 'text': not valid UTF-8"):
        read_labelled(p)


def test_unknown_format_is_a_clear_error(tmp_path):
    p = tmp_path / "x.xlsx"
    p.write_text("nope")
    with pytest.raises(TableError, match="cannot tell the format"):
        list(iter_rows(p))
