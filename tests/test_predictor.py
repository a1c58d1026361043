"""The predictor on a tiny bundle: typed results, edge cases, batching, language fallback."""

import numpy as np
import pytest

from earful import Predictor


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor.load(tiny_bundle, threads=1)


def test_results_are_typed_and_probabilities_are_distributions(predictor):
    [p] = predictor.predict(["you charged me twice for order 12, refund it now"])
    assert p.status == "ok" and p.complaint_type.label in ("order_error", "product", "poor_service", "none")
    assert sum(p.complaint_type.probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert sum(p.sentiment.probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert p.complaint_type.label == max(p.complaint_type.probabilities, key=p.complaint_type.probabilities.get)
    assert 0 <= p.troll <= 1 and 0 <= p.lang.confidence <= 1
    assert set(p.to_dict()) >= {"complaint_type", "sentiment", "troll", "lang", "truncated", "status"}


EDGE = ["", "   \n\t ", "🙂🙂🙂", "https://example.com/a/b", "@user #tag", "12345", "ok", "word " * 5000, "x" * 200_000]


def test_edge_cases_do_not_fail(predictor):
    out = predictor.predict(EDGE)
    assert len(out) == len(EDGE)
    assert out[0].status == out[1].status == "empty"
    assert out[0].complaint_type.label is None and out[0].troll is None and out[0].lang.code == "und"
    for p in out[2:6]:  # nothing linguistic: classified, but language undetermined
        assert p.status == "ok" and p.lang.code == "und" and p.lang.source == "rule"
    assert out[7].truncated and out[8].truncated and not out[6].truncated
    assert out[7].n_tokens == predictor.bundle.max_length


@pytest.mark.parametrize("variant, tol", [("fp32", 1e-5), ("int8", 5e-2)])
def test_batch_results_equal_one_by_one(tiny_bundle, variant, tol):
    # int8 quantizes activations with one scale per batch tensor, hence its looser tolerance
    # (this tiny random net is far noisier under int8 than a trained one)
    predictor = Predictor.load(tiny_bundle, variant=variant, threads=1)
    texts = [
        "you charged me twice",
        "la aplicación falla",
        "danke für die hilfe",
        "",
        "🙂",
        "word " * 100,
        "support agent was rude",
        "gracias",
    ]
    batched = predictor.predict(texts, batch_size=3)
    for text, b in zip(texts, batched, strict=True):
        [single] = predictor.predict([text])
        assert single.status == b.status and single.lang.code == b.lang.code and single.truncated == b.truncated
        for k, v in single.complaint_type.probabilities.items():
            assert b.complaint_type.probabilities[k] == pytest.approx(v, abs=tol)
        for k, v in single.sentiment.probabilities.items():
            assert b.sentiment.probabilities[k] == pytest.approx(v, abs=tol)
        if single.troll is not None:
            assert b.troll == pytest.approx(single.troll, abs=tol)


def test_unknown_language_falls_back_to_langdetect(predictor, monkeypatch):
    from earful.models import predictor as mod

    text = "Le service client ne répond jamais à mes messages, c'est inadmissible"
    lang_probs = np.full(3, 1 / 3)  # the head is unsure among de/en/es
    result = predictor.decide_language(text, lang_probs)
    assert (result.code, result.source) == ("fr", "langdetect")
    monkeypatch.setattr(mod, "langdetect_guess", lambda t: None)  # langdetect cannot tell either
    assert predictor.decide_language(text, lang_probs).code == "und"
    confident = np.array([0.9, 0.05, 0.05])
    assert predictor.decide_language(text, confident).code == "de"  # a confident head wins


def test_langdetect_is_asked_only_where_the_script_needs_it(predictor, monkeypatch):
    from earful.models import predictor as mod

    unsure = np.full(3, 1 / 3)
    # The tiny head knows de/en/es: Cyrillic is a script only languages it lacks are written in.
    assert predictor.decide_language("Служба поддержки не отвечает уже неделю", unsure).code == "ru"

    def no_langdetect(text):
        raise AssertionError(f"langdetect asked about {text!r}")

    monkeypatch.setattr(mod, "langdetect_guess", no_langdetect)
    # No language earful or langdetect knows is written in Ethiopic.
    assert (predictor.decide_language("ሰላም እንዴት ነህ", unsure).code, predictor.decide_language("ሰላም", unsure).source) == (
        "und",
        "rule",
    )
    # Where every langdetect language of the script is one the head knows, the head's best guess stands.
    monkeypatch.setattr(predictor, "_fallback_scripts", set())
    result = predictor.decide_language("Le service client ne répond jamais", np.array([0.2, 0.45, 0.35]))
    assert (result.code, result.source, result.confidence) == ("en", "model", 0.45)


def test_every_langdetect_language_has_its_script():
    from earful.models.language import SCRIPTS, langdetect_languages, main_script, scripts_of

    assert langdetect_languages() <= set(SCRIPTS)
    assert main_script("Привет, hello мир") == "CYRILLIC" and main_script("🙂 123") is None
    # The default head's 75 languages leave langdetect only Kannada, Malayalam and Nepali (Devanagari).
    head = set(SCRIPTS) - {"kn", "ml", "ne"}
    assert scripts_of(langdetect_languages() - head) == {"KANNADA", "MALAYALAM", "DEVANAGARI"}


def test_language_hint_is_reported_as_such(predictor):
    [p] = predictor.predict(["hello there"], lang_hints=["pt"])
    assert (p.lang.code, p.lang.source) == ("pt", "hint")


def test_langdetect_is_deterministic():
    from earful.models.language import langdetect_guess

    runs = {langdetect_guess("this is fine but short") for _ in range(5)}
    assert len(runs) == 1


def test_predict_rejects_a_bare_string(predictor):
    with pytest.raises(TypeError, match="list"):
        predictor.predict("one text")


def test_fp32_and_int8_agree_on_labels(tiny_bundle):
    texts = ["you charged me twice for order 1", "the app crashes", "danke für die hilfe", "sois unos imbéciles"]
    a = Predictor.load(tiny_bundle, variant="int8", threads=1).probabilities(texts)
    b = Predictor.load(tiny_bundle, variant="fp32", threads=1).probabilities(texts)
    assert np.abs(a.complaint_type - b.complaint_type).max() < 0.1
    assert np.abs(a.troll - b.troll).max() < 0.1


def test_parallel_runs_give_the_same_answers_in_the_same_order(tiny_bundle):
    # many posts of varied length, so the call is cut into several runs that two callers share
    texts = [f"my order {i} never came " * (1 + i % 9) for i in range(120)]
    one = Predictor.load(tiny_bundle, variant="fp32", threads=1).probabilities(texts, batch_size=8)
    two = Predictor.load(tiny_bundle, variant="fp32", threads=2).probabilities(texts, batch_size=8)
    for head in ("complaint_type", "sentiment", "troll", "lang"):
        np.testing.assert_allclose(getattr(two, head), getattr(one, head), atol=1e-6)
    assert (two.n_tokens == one.n_tokens).all()


class RecordingSession:
    """Wraps an onnxruntime session and records the (posts, width) of every run."""

    def __init__(self, session):
        self.session = session
        self.shapes = []

    def run(self, names, feeds):
        self.shapes.append(feeds["input_ids"].shape)
        return self.session.run(names, feeds)


def test_a_few_posts_still_get_one_run_per_caller(tiny_bundle):
    texts = ["my order never came", "my order never went", "the app keeps crashing", "the app keeps failing"]
    for threads, expected in ((1, [4]), (2, [2, 2])):
        predictor = Predictor.load(tiny_bundle, threads=threads)
        predictor.session = RecordingSession(predictor.session)
        predictor.probabilities(texts)
        assert sorted(posts for posts, _ in predictor.session.shapes) == expected, threads


def test_the_run_overhead_decides_how_a_batch_is_cut(tiny_bundle):
    texts = [("late " * (1 + i % 7)).strip() for i in range(14)]  # 7 lengths, two posts each
    predictor = Predictor.load(tiny_bundle, threads=1)
    session = predictor.session
    cuts = {}
    for overhead in (1, 128):
        predictor.run_overhead_tokens = overhead
        predictor.session = RecordingSession(session)
        predictor.probabilities(texts)
        cuts[overhead] = predictor.session.shapes
    assert len(cuts[1]) == 7  # a run is nearly free: one run per length, no padding
    assert len(cuts[128]) < len(cuts[1])  # a run is dear: fewer runs, more padding


def test_measured_run_overhead_is_used_and_within_bounds(tiny_bundle):
    from earful.models.batching import OVERHEAD_TOKENS_RANGE

    predictor = Predictor.load(tiny_bundle, threads=1)
    overhead = predictor.measure_run_cost(repeats=2)
    assert overhead == predictor.run_overhead_tokens
    assert isinstance(overhead, int) and OVERHEAD_TOKENS_RANGE[0] <= overhead <= OVERHEAD_TOKENS_RANGE[1]
