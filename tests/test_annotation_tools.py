"""The hand-annotation tools in data/tools: the second round's draw, its place in
the twcs split, and the agreement report."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "data" / "tools"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"earful_data_tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


build_data = _load("build_data")
batches = _load("make_annotation_batches")
report = _load("annotation_report")


def test_kappa_is_one_for_perfect_agreement_and_undefined_with_a_single_label():
    assert report.cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert math.isnan(report.cohen_kappa(["0"] * 5, ["0"] * 5))
    # Observed 0.8, chance 0.5 (each pass says "a" half the time): (0.8 - 0.5) / (1 - 0.5).
    a = list("aaaaabbbbb")
    b = list("aaaabbbbba")
    assert report.cohen_kappa(a, b) == pytest.approx(0.6)


def test_agreement_table_flags_a_label_both_passes_always_gave():
    first = {
        str(i): {"complaint_type": "none" if i % 2 else "product", "sentiment": "neutral", "troll": "0"}
        for i in range(10)
    }
    second = {k: dict(v) for k, v in first.items()}
    lines = report.agreement(first, second, "test")
    troll = next(line for line in lines if line.startswith("| troll |"))
    assert troll == "| troll | undefined | 1.000 |"
    assert any("troll (0: 20 over both passes)" in line for line in lines)
    assert "| complaint_type | 1.000 | 1.000 |" in lines


def test_round_two_draws_fresh_posts_reproducibly():
    pools = {kind: [(f"{kind}:{i}", kind, f"{kind} post {i}") for i in range(3000)] for kind in ("airline", "spotify")}
    taken = {f"airline:{i}" for i in range(0, 3000, 3)} | {f"spotify:{i}" for i in range(0, 3000, 2)}
    drawn = batches._round2(pools, taken)
    assert {name: len(rows) for name, rows in drawn.items()} == batches.ROUND2
    ids = [row[0] for rows in drawn.values() for row in rows]
    assert len(ids) == len(set(ids)) and not set(ids) & taken
    assert all(row[0].startswith("spotify") for row in drawn["spotify_c"])
    assert batches._round2(pools, taken) == drawn


def _write_batch(annotation: Path, name: str, rows: list[tuple[str, str, str]]) -> None:
    """A batch file and a complete label file for it (complaint types cycling, so the split has strata)."""
    labels = [(r[0], ("product", "none", "order_error")[i % 3], "negative", "0", "en") for i, r in enumerate(rows)]
    for folder, header, cells in (
        ("batches", ["item_id", "source", "text"], rows),
        ("labels", ["item_id", "complaint_type", "sentiment", "troll", "lang"], labels),
    ):
        (annotation / folder).mkdir(parents=True, exist_ok=True)
        with (annotation / folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(cells)


def test_round_two_only_adds_training_rows(tmp_path):
    annotation = tmp_path / "annotation"
    for n, name in enumerate(build_data.TWCS_ROUND1):
        kind = "airline_first" if name.startswith("airline") else "spotifycares"
        _write_batch(
            annotation, name, [(f"{name}:{i}", kind, f"round one post {n} {i} about my flight") for i in range(60)]
        )
    before = build_data.twcs_annotated(tmp_path, annotation, [])

    for n, name in enumerate(build_data.TWCS_ROUND2):
        rows = [(f"{name}:{i}", "airline_first", f"round two post {n} {i} about my bag") for i in range(30)]
        rows.append((f"{name}:copy", "airline_first", "round one post 0 5 about my flight"))  # a text round 1 has
        _write_batch(annotation, name, rows)
    notes: list[str] = []
    after = build_data.twcs_annotated(tmp_path, annotation, notes)

    assert [r.id for r in after.validation] == [r.id for r in before.validation]
    round2_ids = {r.id for r in after.train} - {r.id for r in before.train}
    assert len(round2_ids) == 4 * 30 and not any(i.endswith(":copy") for i in round2_ids)
    assert after.stats["round2_training_rows"] == 120
    assert after.stats["hand_label_batches_used"] == [*build_data.TWCS_ROUND1, *build_data.TWCS_ROUND2]


def _readings(tmp_path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    folder = tmp_path / "lang_audit"
    folder.mkdir()
    with (folder / "readings.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "reader1", "reader2", "blind"])
        w.writerows(rows)
    return tmp_path


def test_lang_readings_apply_only_where_both_readers_agree_on_a_blind_reading(tmp_path):
    rows = [build_data.Row(f"s:{i}", f"post {i}", "da", troll="0") for i in range(5)]
    source = build_data.Source(name="s", train=[], validation=rows, meta={}, stats={})
    annotation = _readings(
        tmp_path,
        [
            ("s:0", "en", "en", "yes"),
            ("s:1", "und", "und", "yes"),
            ("s:2", "en", "nb", "yes"),
            ("s:3", "en", "en", "no"),
            ("s:4", "da", "da", "yes"),
            ("gone:9", "en", "en", "yes"),
        ],
    )
    notes: list[str] = []
    assert build_data.apply_lang_readings([source], annotation, notes) == 2
    # read as English; no language can be told (blank: unknown); readers disagree; not read blind; unchanged
    assert [r.lang for r in rows] == ["en", "", "da", "da", "da"]
    assert any("1 read posts are not in the validation files" in n for n in notes)


def test_the_built_validation_files_carry_the_agreed_readings():
    import gzip

    data = TOOLS.parent
    with (data / "annotation" / "lang_audit" / "readings.csv").open(encoding="utf-8", newline="") as f:
        read = {
            r["id"]: r["reader1"] for r in csv.DictReader(f) if r["reader1"] == r["reader2"] and r["blind"] == "yes"
        }
    built = {}
    for path in (data / "validation").glob("*.csv.gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            built.update({r["id"]: r["lang"] for r in csv.DictReader(f) if r["id"] in read})
    assert set(built) == set(read)
    assert all(built[i] == ("" if code == "und" else code) for i, code in read.items())


def test_agreed_complaint_readings_move_unlabelled_training_posts_into_a_set_of_their_own(tmp_path):
    train = [build_data.Row(f"s:{i}", f"post {i}", "en", sentiment="negative", source="s") for i in range(4)]
    train[3].complaint_type = "product"  # a source's own label is never replaced
    held_out = build_data.Row("s:9", "post 9", "en", sentiment="negative", source="s")
    source = build_data.Source(name="s", train=list(train), validation=[held_out], meta={}, stats={})
    folder = tmp_path / "complaint_audit"
    folder.mkdir()
    with (folder / "readings.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "reader1", "reader2"])
        w.writerows([("s:0", "none", "none"), ("s:1", "none", "product"), ("s:2", "product", "product")])
        w.writerows([("s:3", "none", "none"), ("s:9", "none", "none")])
    notes: list[str] = []
    audit = build_data.complaint_audit([source], tmp_path, notes)
    assert [(r.id, r.complaint_type, r.sentiment, r.source) for r in audit.train] == [
        ("s:0", "none", "negative", "complaint_audit"),
        ("s:2", "product", "negative", "complaint_audit"),
    ]
    assert audit.validation == [] and audit.stats["taken_from"] == {"s": 2}
    # the readers disagreed on s:1: it stays in its source, unlabelled; s:3 keeps its own label
    assert [(r.id, r.complaint_type) for r in source.train] == [("s:1", ""), ("s:3", "product")]
    assert held_out.complaint_type == "" and source.validation == [held_out]  # validation is never touched
    assert any("2 read posts are not unlabelled training rows" in n for n in notes)


def test_complaint_readings_are_joined_only_when_every_post_has_an_allowed_label(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TOOLS))  # the script imports its sibling annotation_report
    audit = _load("draw_complaint_audit")
    monkeypatch.setattr(audit, "FOLDER", tmp_path)
    monkeypatch.setattr(audit, "OUT", tmp_path / "posts.csv")

    def write(name, header, rows):
        with (tmp_path / name).open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, *rows])
        return tmp_path / name

    write("posts.csv", ["item_id", "id", "file", "text"], [(f"c{i}", f"s:{i}", "s", f"post {i}") for i in range(4)])
    first = write("r1.csv", ["item_id", "complaint_type", "confidence"], [(f"c{i}", "none", "sure") for i in range(4)])
    second = write(
        "r2.csv",
        ["item_id", "complaint_type", "confidence"],
        [("c0", "none", "sure"), ("c1", "none", "sure"), ("c2", "none", "sure"), ("c3", "product", "unsure")],
    )
    lines = audit.merge(first, second)
    assert lines[0].startswith("4 posts; the readers agree on 3 (75.0%)") and lines[1] == "agreed labels: none 3"
    with (tmp_path / "readings.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["reader1"], r["reader2"]) for r in rows][3] == ("s:3", "none", "product")
    short = write("short.csv", ["item_id", "complaint_type", "confidence"], [("c0", "none", "sure")])
    with pytest.raises(SystemExit, match="every post needs one label"):
        audit.merge(first, short)
    odd = write("odd.csv", ["item_id", "complaint_type", "confidence"], [(f"c{i}", "rant", "sure") for i in range(4)])
    with pytest.raises(SystemExit, match="'rant' is not one of"):
        audit.merge(first, odd)
