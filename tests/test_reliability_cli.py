"""The `earful` command and the Makefile on inputs and set-ups that used to fail: training data without a lang
column, a language macro-F1 that counted languages the file never has, --batch-size meaning one thing, bundles
kept out of git, and `make bento` from a checkout under a folder whose name starts with a dot."""

import csv
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from earful.cli import build_parser, main
from earful.tabular import write_rows

ROOT = Path(__file__).resolve().parents[1]
#: What `make bento` needs: a git checkout to copy from, make, and BentoML in this environment.
TOOLS = (ROOT / ".git").exists() and shutil.which("make") and Path(sys.executable).with_name("bentoml").exists()


def test_train_without_a_lang_column(tmp_path, tiny_base, tiny_data, capsys):
    train = tmp_path / "no_lang.csv"
    write_rows(train, [{k: v for k, v in r.items() if k != "lang"} for r in csv.DictReader(open(tiny_data[0]))])
    args = [
        "train",
        "--train",
        str(train),
        "--validation",
        str(tiny_data[1]),
        "--out",
        str(tmp_path / "run"),
        "--base",
        str(tiny_base),
        "--max-length",
        "32",
        "--max-steps",
        "1",
        "--threads",
        "1",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(train) in err and "no row has a lang label" in err and "--languages" in err
    assert main(args + ["--languages", "EN"]) == 2
    assert "invalid language codes for the lang head: ['EN']" in capsys.readouterr().err
    assert main(args + ["--languages", "en", "de"]) == 0  # the other heads train; the lang head stays untrained
    training = json.loads((tmp_path / "run" / "best" / "training.json").read_text())
    assert training["head_training_rows"]["lang"] == 0 and training["head_training_rows"]["sentiment"] > 0


def test_eval_language_macro_f1_averages_over_the_languages_of_the_file(tiny_bundle, tmp_path, capsys):
    data = tmp_path / "langs.csv"
    write_rows(
        data,
        [
            {"text": "my order never came", "lang": "en"},
            {"text": "danke für die schnelle hilfe", "lang": "de"},
            {"text": "👍👍", "lang": "en"},
        ],
    )
    assert main(["eval", str(data), "--bundle", str(tiny_bundle), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())["langs"]["lang"]
    assert m["per_class"]["und"]["support"] == 0  # predicted for a post without letters; no post here is und
    gold = [c["f1"] for c in m["per_class"].values() if c["support"]]
    assert len(gold) == 2 and m["macro_f1"] == pytest.approx(sum(gold) / 2)
    # per language: the F1 of that language on its own rows, not lowered by the languages guessed instead
    en = m["confusion"]["labels"].index("en")
    row = m["confusion"]["matrix"][en]
    assert m["by_lang"]["en"]["macro_f1"] == pytest.approx(2 * row[en] / (row[en] + sum(row)))


def _help(command: str, flag: str) -> str | None:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next((a.help for a in sub._actions if flag in a.option_strings), None)


def test_batch_size_is_always_posts_through_the_model_at_once():
    assert "onnxruntime run" in _help("score", "--batch-size")
    assert "training step" in _help("train", "--batch-size")
    for command in ("classify", "score"):  # rows read together are a chunk
        assert "read" in _help(command, "--chunk-size")
    assert _help("classify", "--batch-size") == "==SUPPRESS==", "kept for old scripts only, out of the help"


def test_classify_chunk_size_and_its_old_name(tiny_bundle, tmp_path):
    lines = "".join(json.dumps({"id": str(i), "text": f"my order {i} never came"}) + "\n" for i in range(5))
    command = [sys.executable, "-m", "earful.cli", "classify", "-", "--bundle", str(tiny_bundle)]
    outs = [
        subprocess.run(command + [flag, "2"], input=lines, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        for flag in ("--chunk-size", "--batch-size")
    ]
    assert [r.returncode for r in outs] == [0, 0], outs[0].stderr + outs[1].stderr
    assert outs[0].stdout == outs[1].stdout and len(outs[0].stdout.splitlines()) == 5


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="needs a git checkout")
def test_bundles_are_ignored_by_git():
    r = subprocess.run(["git", "check-ignore", "-q", "bundles/mine/bundle.json"], cwd=ROOT)
    assert r.returncode == 0, "bundles/ (where the README exports bundles) would be committed"


@pytest.mark.skipif(not TOOLS, reason="needs a git checkout, make and BentoML here")
def test_make_bento_from_a_checkout_under_a_hidden_folder(tmp_path):
    checkout = tmp_path / ".hidden" / "earful"
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    sources = ["Makefile", "pyproject.toml", "README.md", *sorted(set(package_dirs.values()))]
    listed = subprocess.run(["git", "ls-files", *sources], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in listed.stdout.split():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, checkout / name)
    pyproject = checkout / "pyproject.toml"  # any version: the Bento takes the wheel just built, whatever its name
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', 'version = "9.9.9"', pyproject.read_text()))
    (checkout / ".venv").symlink_to(Path(sys.executable).parents[1])  # this environment; -o: do not reinstall it
    r = subprocess.run(
        ["make", "bento", "-o", ".venv/.installed"], cwd=checkout, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Successfully built Bento" in r.stdout + r.stderr
