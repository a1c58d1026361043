"""Property-based tests: random Unicode (surrogates, control characters, zero-width and right-to-left marks, emoji
sequences, 10,000-character strings) and random JSON shapes thrown at the predictor, the table readers, batch
scoring and the HTTP API. No exception escapes, every row is accounted for, every HTTP answer is a 2xx or a 4xx that
names what is wrong. Derandomized, so a run is repeatable; the HTTP loop is bounded and targets loopback only."""

import csv
import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_service import Server

ODD = [
    "\ud83d",
    "\udc80",
    "\udfff",
    "\x00",
    "\x1b[31m",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\r\n",
    "\u2028",
    "👨\u200d👩\u200d👧",
    "🇺🇳",
    "e\u0301",
    '"',
    "\\",
    ",",
    "\t",
]
PIECES = st.one_of(st.characters(codec=None, categories=None), st.sampled_from(ODD))


def strings(min_size: int = 0, max_size: int = 60):
    return st.lists(PIECES, min_size=min_size, max_size=max_size).map("".join)


TEXTS = st.one_of(
    strings(),
    st.builds(lambda piece, n: (piece * n)[:10_000], strings(1, 4), st.integers(1, 10_000)),
)


def runs(n: int) -> settings:
    return settings(
        max_examples=n, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    from earful.models.predictor import Predictor

    return Predictor.load(tiny_bundle, threads=1)


@runs(60)
@given(st.lists(TEXTS, min_size=1, max_size=6))
def test_predict_answers_every_text(predictor, texts):
    out = predictor.predict(texts)
    assert len(out) == len(texts)
    for text, p in zip(texts, out, strict=True):
        assert p.status == ("empty" if not text.strip() else "ok")
        json.dumps(p.to_dict())  # the result itself is plain JSON


def _write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as f:  # json.dumps escapes lone surrogates, so the file is valid UTF-8
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")


def _write_csv(path, texts):
    # surrogatepass: a lone surrogate reaches the file as the bytes a careless writer would leave (not UTF-8)
    with open(path, "w", encoding="utf-8", errors="surrogatepass", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows([str(i), t] for i, t in enumerate(texts))


@runs(60)
@given(st.lists(TEXTS, min_size=1, max_size=6), st.sampled_from(["jsonl", "csv"]))
def test_readers_account_for_every_row(tmp_path_factory, texts, fmt):
    from earful.labelled import LabelledDataError, read_labelled
    from earful.tabular import iter_rows

    path = tmp_path_factory.mktemp("rows") / f"posts.{fmt}"
    (_write_jsonl if fmt == "jsonl" else _write_csv)(path, texts)
    rows = list(iter_rows(path))
    assert [r.data["id"] for r in rows] == [str(i) for i in range(len(texts))]
    if fmt == "jsonl":
        assert [r.data["text"] for r in rows] == texts
    try:  # labelled data is for training: bytes that are not UTF-8 are refused, naming where
        assert len(read_labelled(path, require_text=False)) == len(texts)
    except LabelledDataError as e:
        assert re.search(r"line \d+, field 'text': not valid UTF-8", str(e))


@runs(12)
@given(st.lists(TEXTS, min_size=1, max_size=5), st.sampled_from(["jsonl", "csv"]), st.sampled_from(["csv", "jsonl"]))
def test_score_accounts_for_every_row(tiny_bundle, tmp_path_factory, texts, fmt, out_fmt):
    from earful.batch.score import ScoreOptions, score
    from earful.tabular import iter_rows

    d = tmp_path_factory.mktemp("score")
    src = d / f"in.{fmt}"
    (_write_jsonl if fmt == "jsonl" else _write_csv)(src, texts)
    summary = score(src, d / f"out.{out_fmt}", ScoreOptions(bundle=str(tiny_bundle), chunk_size=2), progress=False)
    out = list(iter_rows(d / f"out.{out_fmt}"))
    assert summary.rows == len(out) == len(texts)
    assert [r.data["id"] for r in out] == [str(i) for i in range(len(texts))]
    assert sum(summary.status_counts.values()) == len(texts)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | strings(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings(max_size=8), inner, max_size=4),
    max_leaves=12,
)
POST = st.fixed_dictionaries(
    {"text": TEXTS},
    optional={
        "id": st.one_of(strings(max_size=10), JSON),
        "lang": st.one_of(st.sampled_from(["en", "EN", "xx", ""]), JSON),
    },
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"posts": st.one_of(JSON, st.lists(st.one_of(POST, JSON), max_size=10))}),
    st.fixed_dictionaries({"posts": st.lists(POST, min_size=1, max_size=10)}),
)


@pytest.fixture(scope="module")
def svc(tiny_bundle, tmp_path_factory):
    s = Server(tiny_bundle, tmp_path_factory.mktemp("svc_props"), "props", "--max-posts", "8")
    yield s
    s.stop()


@runs(150)
@given(BODIES)
def test_http_answers_2xx_or_a_4xx_naming_what_is_wrong(svc, body):
    r = httpx.post(
        svc.url + "/classify",
        content=json.dumps(body).encode(),
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (200, 400, 413), (r.status_code, r.text[:300])
    if r.status_code == 200:
        assert len(r.json()["results"]) == len(body["posts"])
    else:
        assert r.json()["error"]


def test_the_http_property_run_left_no_error_in_the_log(svc):
    logs = svc.logs()
    assert "Traceback" not in logs and '"level": "ERROR"' not in logs
