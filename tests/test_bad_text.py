"""Text that is not quite text — cut emoji, bytes that are not UTF-8, odd language hints — through the predictor
and `earful classify`: scored or refused with a message naming where, never a crash."""

import json
import subprocess
import sys

import pytest

CUT_EMOJI = "emoji cut \ud83d here"
BAD_BYTES = b"bad \xff\xfe bytes".decode("utf-8", "surrogateescape")


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    from earful.models.predictor import Predictor

    return Predictor.load(
        tiny_bundle, variant="fp32", threads=1
    )  # fp32: a post's result is its own, whatever the batch


def test_lone_surrogates_are_scored_as_replacement_characters(predictor):
    got = predictor.predict(["ok", CUT_EMOJI, BAD_BYTES])
    assert [p.status for p in got] == ["ok"] * 3
    [same] = predictor.predict(["emoji cut \ufffd here"])
    # fp32 runs of different batches differ in the last float digits, so a rounded probability may differ by 1e-6
    assert got[1].complaint_type.label == same.complaint_type.label and got[1].lang.code == same.lang.code
    assert got[1].complaint_type.probabilities == pytest.approx(same.complaint_type.probabilities, abs=1e-5)
    assert got[1].lang.confidence == pytest.approx(same.lang.confidence, abs=1e-5)


def test_language_hints_are_normalised_or_refused_by_position(predictor):
    got = predictor.predict(["hola", "hallo", "hi"], ["ES", " de", None])
    assert [p.lang.code for p in got] == ["es", "de", got[2].lang.code]
    assert got[0].lang.source == "hint" and got[2].lang.source != "hint"
    with pytest.raises(ValueError, match=r"lang_hints\[1\]: 'english' is not an ISO 639-1"):
        predictor.predict(["a", "b"], [None, "english"])


def test_a_text_that_is_not_a_string_is_named(predictor):
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, not a string"):
        predictor.predict(["fine", None])


def _classify(tiny_bundle, stdin: bytes):
    return subprocess.run(
        [sys.executable, "-m", "earful.cli", "classify", "-", "--bundle", str(tiny_bundle), "--threads", "1"],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_classify_reads_on_past_cut_emoji_and_bytes_that_are_not_utf8(tiny_bundle):
    stdin = (
        b'{"id": "1", "text": "ok"}\n'
        b'{"id": "2\\ud83d", "text": "emoji cut \\ud83d here"}\n'
        b"plain line with \xff\xfe bytes\n"
        b'{"id": "4", "text": "last", "lang": "FR"}\n'
    )
    r = _classify(tiny_bundle, stdin)
    assert r.returncode == 0, r.stderr.decode()
    lines = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]
    assert [x.get("id") for x in lines] == ["1", "2\ud83d", None, "4"]  # the id comes back as it was sent
    assert all(x["status"] == "ok" for x in lines)
    assert lines[3]["lang"] == {"code": "fr", "confidence": 1.0, "source": "hint"}


def test_classify_refuses_a_hint_that_is_no_language_code_naming_the_line(tiny_bundle):
    r = _classify(tiny_bundle, b'{"text": "a"}\n{"text": "b", "lang": "english"}\n')
    assert r.returncode == 2
    assert "stdin line 2: field 'lang': 'english' is not an ISO 639-1 language code" in r.stderr.decode()
    assert "Traceback" not in r.stderr.decode()
