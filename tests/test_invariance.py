"""``earful eval --invariance``: the share of labels that change when @handles and URLs are removed or added."""

import json

from conftest import make_rows, write_csv

from earful.cli import main
from earful.eval.invariance import TARGET, measure_invariance
from earful.models.predictor import LabelScore, LanguageResult, Prediction, Predictor
from earful.schema import COMPLAINT_TYPES

POSTS = [
    "@AmazonHelp my parcel went to the wrong address",
    "the app crashes after the update https://t.co/x",
    "thanks for the quick help",
    "Mi pedido nunca llegó",
]


class HandleReader:
    """A model that learned the shortcut: a leading @handle means an order error."""

    def predict(self, texts, batch_size=64):
        def one(t):
            label = "order_error" if t.startswith("@") else "none"
            return Prediction(
                LabelScore(label, {c: float(c == label) for c in COMPLAINT_TYPES}),
                LabelScore("neutral", {"neutral": 1.0}),
                0.1,
                False,
                LanguageResult("en", 1.0, "model"),
                False,
                5,
            )

        return [one(t) for t in texts]


def test_the_measure_catches_a_model_that_reads_handles():
    r = measure_invariance(HandleReader(), POSTS)
    assert r.edits["handles_urls_removed"]["posts"] == 2  # the two posts with a handle or URL
    assert r.edits["handles_urls_removed"]["changed"]["complaint_type"] == 0.5  # the leading handle's post flips
    assert r.edits["handle_added"]["changed"]["complaint_type"] == 0.75  # every post that had none flips
    assert r.edits["handle_added"]["changed"]["sentiment"] == 0.0
    assert r.worst == 0.75 and not r.to_dict()["within_target"]


def test_a_bundle_that_strips_handles_and_urls_is_invariant(tiny_bundle):
    predictor = Predictor.load(tiny_bundle)
    assert predictor.bundle.normalize
    r = measure_invariance(predictor, POSTS * 3)
    assert r.worst == 0.0 <= TARGET and r.edits["handle_url_added"]["posts"] == 12


def test_eval_invariance_writes_its_figures(tiny_bundle, tmp_path, capsys):
    data = write_csv(tmp_path / "val.csv", make_rows(2, seed=5))
    assert main(["eval", str(data), "--bundle", str(tiny_bundle), "--out", str(tmp_path / "out"), "--invariance"]) == 0
    shown = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "out" / "invariance.json").read_text())
    assert shown["invariance_worst_change"] == {"val": saved["val"]["worst"]}
    assert set(saved["val"]["edits"]) == {"handles_urls_removed", "handle_added", "handle_url_added"}
    assert "val: invariance to @handles and URLs" in (tmp_path / "out" / "report.md").read_text()


def test_eval_without_handles_scores_the_posts_as_a_handle_free_model_reads_them(tmp_path, monkeypatch):
    """A model that reads the handle scores well on posts that carry one; ``--without-handles`` shows what is left."""
    from types import SimpleNamespace

    import earful.eval.run as run

    reader = HandleReader()
    reader.bundle = SimpleNamespace(name="handle-reader", version="1", untrained_heads=())
    monkeypatch.setattr(run.Predictor, "load", lambda *a, **k: reader)
    rows = [
        {"text": "@AmazonHelp my parcel went to the wrong address", "complaint_type": "order_error"},
        {"text": "@AmazonHelp I was charged twice https://t.co/x", "complaint_type": "order_error"},
        {"text": "thanks for the quick help", "complaint_type": "none"},
        {"text": "what a lovely day", "complaint_type": "none"},
        {"text": "@AmazonHelp https://t.co/y", "complaint_type": "none"},  # nothing left: left out, not scored
    ]
    data = write_csv(tmp_path / "val.csv", rows)
    as_posted = run.run_eval([str(data)], tmp_path / "a")
    stripped = run.run_eval([str(data)], tmp_path / "b", without_handles=True, invariance=True)
    assert stripped.invariance["val"]["edits"]["handles_urls_removed"]["posts"] == 3  # measured on the posts as written
    assert as_posted.metrics["val"]["complaint_type"]["accuracy"] == 0.8  # the handle-only post reads as an order
    assert stripped.metrics["val"]["complaint_type"]["n"] == 4
    assert stripped.metrics["val"]["complaint_type"]["accuracy"] == 0.5  # both order errors lose their handle
    assert stripped.metrics["val"]["complaint_type"]["macro_f1"] == 1 / 3  # order_error 0, none 2/3: no empty class
    assert (
        "Posts with @handles and URLs deleted (1 that held nothing else left out)."
        in (tmp_path / "b" / "report.md").read_text()
    )
    assert "deleted" not in (tmp_path / "a" / "report.md").read_text()


def test_eval_cli_takes_without_handles(tiny_bundle, tmp_path, capsys):
    data = write_csv(tmp_path / "val.csv", make_rows(2, seed=5))
    out = tmp_path / "out"
    assert main(["eval", str(data), "--bundle", str(tiny_bundle), "--out", str(out), "--without-handles"]) == 0
    assert (
        "Posts with @handles and URLs deleted (0 that held nothing else left out)." in (out / "report.md").read_text()
    )
