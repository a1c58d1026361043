"""Regenerate the published figures: README's results section, docs/results.md and the bundle's model card.

    .venv/bin/python -m earful.eval.results [--bundle models/default] [--fp32-bundle FULL_EXPORT] [--skip-bench]
    .venv/bin/python -m earful.eval.results --render     # measure nothing, write the text again

Runs ``earful eval`` (the same code as the CLI) on the validation files the
quality figures are defined on, with its baselines on the same rows (TF-IDF + logistic
regression trained on ``data/train``; langdetect and lingua), and ``earful bench``;
writes everything under ``eval/results/``, replaces the README's text between
the ``results`` markers (the quality figures) and writes ``docs/results.md`` (every
table). The bundle's MODEL_CARD.md and metrics.json get the same figures (through
:mod:`earful.export.writer`). Every table is headed by the machine
and date the run that measured it recorded (:mod:`earful.machine`): this run's for
the evaluation, the stored JSON's for figures carried over (bench.json with
``--skip-bench``, the service load test, batch scoring).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from earful.labelled import read_labelled
from earful.machine import heading, stamp
from earful.tabular import write_rows

OUT = Path("eval/results")
START, END = "<!-- results:start -->", "<!-- results:end -->"
RESULTS_PAGE = Path("docs/results.md")
#: Where the model card's evaluation section starts (everything from it on is this module's).
EVALUATION_SECTION = "\n## Evaluation on validation data\n"
TARGET_FILES = [
    "xlm_t_umsab",
    "complaints_preotiuc2019",
    "twcs_annotated",
    "olid",
    "offenseval2020",
    "twitter_us_airline",
    "germeval2017",
    "semeval2016_absa",
    "tweeteval_sentiment",
    "chinese_sophonplus",
]


def split_lingua(work: Path) -> list[Path]:
    """The lingua validation file, cut by kind (the id says which) into files of their own."""
    s = read_labelled("data/validation/lingua_langid.csv.gz")
    paths = []
    for kind in ("sentences", "word-pairs"):
        rows = [
            {"id": i, "text": t, "lang": lang}
            for i, t, lang in zip(s.id, s.text, s.lang, strict=True)
            if i.split(":")[1] == kind
        ]
        path = work / f"lingua_{kind.replace('-', '_')}.csv"
        write_rows(path, rows)
        paths.append(path)
    return paths


#: The languages of a set whose figure is the mean over its languages. Named, because a validation post read as
#: another language (data/annotation/lang_audit) would otherwise enter the mean as a language of one post.
SET_LANGUAGES = {
    "xlm_t_umsab": ("ar", "de", "en", "es", "fr", "hi", "it", "pt"),
    "offenseval2020": ("ar", "da", "el", "tr"),
}


def quality_figures(metrics: dict, baselines: dict, languages: list[str]) -> list[dict]:
    """The model's quality figures with the goal each is held to, each with the baselines' figure on the
    same rows beside it."""
    rows = []

    def mean_by_lang(m: dict | None, key="macro_f1", only=None):
        if not m:
            return None
        vals = [v[key] for k, v in m["by_lang"].items() if only is None or k in only]
        return float(np.mean(vals)) if vals else None

    def add(name, goal, stem, head, value_of, note=""):
        value = value_of(metrics.get(stem, {}).get(head))
        refs = ", ".join(
            f"{b} {v:.3f}" for b, m in baselines.get(stem, {}).get(head, {}).items() if (v := value_of(m)) is not None
        )
        rows.append(
            {
                "figure": name,
                "value": value,
                "goal": goal,
                "file": stem,
                "note": "; ".join(x for x in (note, f"same rows: {refs}" if refs else "") if x),
            }
        )

    add(
        "sentiment macro-F1, mean of the 8 UMSAB languages",
        0.69,
        "xlm_t_umsab",
        "sentiment",
        lambda m: mean_by_lang(m, only=SET_LANGUAGES["xlm_t_umsab"]),
    )
    add(
        "complaint vs not, Preotiuc-Pietro tweets, macro-F1",
        0.87,
        "complaints_preotiuc2019",
        "complaint_type",
        lambda m: (m or {}).get("binary_macro_f1"),
    )
    add(
        "complaint type macro-F1, hand-annotated support tweets (twcs_annotated)",
        0.75,
        "twcs_annotated",
        "complaint_type",
        lambda m: (m or {}).get("macro_f1"),
    )
    add(
        "complaint type macro-F1, hand-annotated Preotiuc-Pietro tweets",
        0.75,
        "complaints_preotiuc2019",
        "complaint_type",
        lambda m: (m or {}).get("macro_f1"),
    )
    add("troll macro-F1, OLID", 0.80, "olid", "troll", lambda m: (m or {}).get("macro_f1"))
    add(
        "troll macro-F1, mean of OffensEval 2020 languages",
        0.80,
        "offenseval2020",
        "troll",
        lambda m: mean_by_lang(m, only=SET_LANGUAGES["offenseval2020"]),
    )
    for stem, goal in (("lingua_sentences", 0.99), ("lingua_word_pairs", 0.90)):
        add(
            f"language accuracy, {stem.split('_', 1)[1].replace('_', ' ')}, mean of head languages",
            goal,
            stem,
            "lang",
            lambda m: mean_by_lang(m, "accuracy", languages),
        )
    return rows


#: Figures made by their own (longer) commands, included when present: (Markdown file, command, title); each
#: is headed by the machine and date its JSON beside it recorded.
OTHER_RESULTS = [
    (
        OUT / "service" / "loadtest.md",
        "python -m earful.serving.loadtest --out eval/results/service",
        "The classify service under load",
    ),
    (
        OUT / "batch" / "batch_bench.md",
        "python -m earful.batch.bench --rows 100000 --out eval/results/batch",
        "Batch scoring",
    ),
]


def _body(markdown: str) -> str:
    """A results file's Markdown without its title and machine line (the section gives both)."""
    lines = markdown.strip().split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(line for line in lines if not line.startswith("Machine:")).strip()


def measured_elsewhere(others: list[tuple[Path, str, str]] = OTHER_RESULTS) -> list[str]:
    """The sections of the figures other commands measured, each headed by the machine its run recorded."""
    lines = []
    for path, command, title in others:
        if path.exists():
            record_path = path.with_suffix(".json")
            record = json.loads(record_path.read_text()) if record_path.exists() else None
            lines += ["", f"**{title}** (`.venv/bin/{command}`):", "", heading(record), "", _body(path.read_text())]
    return lines


def _drift_key(head: str) -> str:
    """The figure int8 and fp32 are compared on: accuracy for the language head,
    whose macro-F1 on a one-language file swings wildly when one post is called
    another language (a new class with F1 0), macro-F1 for the others."""
    return "accuracy" if head == "lang" else "macro_f1"


def drift_intervals(drift: dict[str, float], int8_outcomes: dict, fp32_outcomes: dict) -> dict[str, dict]:
    """For each file/head (language excepted: it is compared on accuracy) whose int8
    figure is more than 0.5 points below fp32: the paired bootstrap of the
    int8 − fp32 macro-F1 difference, so a reader can tell a real loss from a few
    borderline posts flipping on a small file."""
    from earful.eval.evaluate import bootstrap_difference

    out = {}
    for key, value in sorted(drift.items(), key=lambda kv: kv[1]):
        stem, head = key.split("/")
        if value < -0.005 and head != "lang":
            boot = bootstrap_difference(fp32_outcomes[stem][head], int8_outcomes[stem][head])
            out[key] = {"difference": boot["difference"], "ci95": boot["ci95"]}
    return out


def _drift_lines(drift: dict[str, float], drift_ci: dict | None) -> list[str]:
    worst = min(drift.items(), key=lambda kv: kv[1])
    within = sum(v >= -0.005 for v in drift.values())
    lines = [
        f"int8 vs fp32 (macro-F1; accuracy for lang): largest drop {100 * -worst[1]:.2f} points "
        f"({worst[0]}), {within} of {len(drift)} file/head pairs within 0.5 points (goal: all)."
    ]
    if drift_ci:
        lines.append(
            "Drops beyond 0.5 points, int8 − fp32 macro-F1 with a paired bootstrap 95% interval over rows: "
            + "; ".join(
                f"{k} {100 * v['difference']:+.2f} [{100 * v['ci95'][0]:+.2f}, {100 * v['ci95'][1]:+.2f}]"
                for k, v in drift_ci.items()
            )
            + "."
        )
    return lines


def _last_drift(evaluation: dict) -> dict | None:
    """The int8-vs-fp32 figures of a bundle's previous evaluation (or the ones it carried), with the bundle they
    were measured on."""
    if evaluation.get("int8_minus_fp32_macro_f1"):
        return {
            "bundle": evaluation["bundle"],
            "drift": evaluation["int8_minus_fp32_macro_f1"],
            "ci95": evaluation.get("int8_minus_fp32_ci95_beyond_half_point"),
            **{k: evaluation[k] for k in ("machine", "date") if evaluation.get(k)},
        }
    return evaluation.get("int8_minus_fp32_last_measured")


def _table(rows: list[dict]) -> list[str]:
    lines = ["| figure | int8 | goal |", "|---|---|---|"]
    for r in rows:
        v = "–" if r["value"] is None else f"{r['value']:.3f}"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r.get('figure') or r.get('target')}{note} | {v} | ≥ {r['goal']} |")
    return lines


def block_lines(summary: dict, bench=None, others: list[tuple[Path, str, str]] = OTHER_RESULTS) -> list[str]:
    """Every published figure (the results page and the model card) from an evaluation's ``summary`` (as
    summary.json holds it), ``bench`` (an :class:`earful.eval.bench.BenchResult`, when there is one) and the
    files of ``others``. Every table is headed by the machine and date its own run recorded
    (:func:`earful.machine.heading`)."""
    return quality_lines(summary) + speed_lines(bench, others)


def readme_lines(summary: dict) -> list[str]:
    """The README's Results block (without its markers): the quality figures, and where the rest is."""
    return quality_lines(summary) + [
        "",
        f"Speed and memory, the service under load and batch scoring, each table with its machine: "
        f"[{RESULTS_PAGE.as_posix()}]({RESULTS_PAGE.as_posix()}).",
    ]


def quality_lines(summary: dict) -> list[str]:
    """The quality figures, calibration and int8-vs-fp32 lines of an evaluation's ``summary``."""
    command = summary.get("command") or ".venv/bin/python -m earful.eval.results"
    lines = [
        f"Measured on this repository's own validation splits (`data/validation/`) with bundle `{summary['bundle']}` "
        f"(int8) by `{command}`, which runs `earful eval` with its baselines on the same rows. Full reports: "
        "`eval/results/int8/report.md`, `eval/results/bench/bench.md`.",
        "",
        "**Quality figures** (macro-F1 or accuracy per file and head; the baselines' figures on the same rows in "
        "parentheses):",
        "",
        heading(summary),
        "",
    ]
    lines += _table(summary.get("figures") or summary.get("targets") or [])
    ece = summary.get("ece") or {}
    if ece:
        worst = max(ece.items(), key=lambda kv: kv[1])
        lines += [
            "",
            f"Expected calibration error per file and head (n ≥ 200): max {worst[1]:.3f} ({worst[0]}), "
            f"{sum(v <= 0.05 for v in ece.values())} of {len(ece)} at ≤ 0.05 (goal ≤ 0.05).",
        ]
    if summary.get("int8_minus_fp32_macro_f1"):
        ci95 = summary.get("int8_minus_fp32_ci95_beyond_half_point")
        lines += _drift_lines(summary["int8_minus_fp32_macro_f1"], ci95)
    elif summary.get("int8_minus_fp32_last_measured"):
        last = summary["int8_minus_fp32_last_measured"]
        lines.append(
            f"int8 vs fp32, from the evaluation of `{last['bundle']}` with an fp32 export of the same model "
            f"(`--fp32-bundle`). {heading(last)}"
        )
        lines += _drift_lines(last["drift"], last["ci95"])
    return lines


def speed_lines(bench=None, others: list[tuple[Path, str, str]] = OTHER_RESULTS) -> list[str]:
    """The speed tables: ``earful bench``'s, then the figures other commands measured."""
    from earful.eval.bench import bench_markdown

    lines = []
    if bench is not None:
        lines += [
            "",
            f"**Speed and memory** (`earful bench`, bundle `{bench.bundle}`, `eval/results/bench/bench.json`):",
            "",
            heading(asdict(bench)),
            "",
            _body(bench_markdown(bench)),
        ]
    lines += measured_elsewhere(others)
    return lines


def card_section(block: list[str], metrics: dict, summary: dict) -> str:
    """The model card's evaluation section: the Results block and the per-language figures of the same
    evaluation (``summary`` says on which machine)."""
    return (
        "\n".join(block)
        + "\n\nPer language (sentiment, troll, language), from `eval/results/int8/metrics.json`:\n\n"
        + heading(summary)
        + "\n\n"
        + _per_language(metrics)
        + "\n"
    )


def write_readme(block: list[str], readme_path: Path = Path("README.md")) -> None:
    lines = [START, "", *block, "", END]
    readme = readme_path.read_text()
    if START in readme:
        readme = readme[: readme.index(START)] + "\n".join(lines) + readme[readme.index(END) + len(END) :]
    else:
        readme += "\n## Results\n\n" + "\n".join(lines) + "\n"
    readme_path.write_text(readme)


def write_results_page(block: list[str], path: Path | None = None) -> None:
    """docs/results.md: every table, written whole by this module (never edited by hand)."""
    path = path or RESULTS_PAGE
    head = [
        "# Results",
        "",
        "<!-- Generated by `python -m earful.eval.results` (`--render` writes it again from eval/results/). -->",
        "",
    ]
    path.write_text("\n".join(head + block) + "\n")


def write_card(bundle_path: Path, section: str, summary: dict) -> None:
    """Replace the card's evaluation section and metrics.json's ``evaluation`` (through the bundle writer)."""
    from earful.export.writer import edit_bundle

    with edit_bundle(bundle_path) as writer:
        text = writer.read_text("MODEL_CARD.md") or ""
        writer.write_text("MODEL_CARD.md", text.split(EVALUATION_SECTION)[0] + EVALUATION_SECTION + "\n" + section)
        writer.update_json("metrics.json", {"evaluation": summary})


def _measure(args, bundle, command: str) -> tuple[dict, dict]:
    """Run the evaluation (and the bench unless skipped): the summary and the int8 metrics."""
    from earful.eval.bench import run_bench, write_bench
    from earful.eval.run import run_eval

    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "inputs"
    work.mkdir(exist_ok=True)
    files = [
        f"data/validation/{stem}.csv.gz" for stem in TARGET_FILES if Path(f"data/validation/{stem}.csv.gz").exists()
    ]
    files += [str(p) for p in split_lingua(work)]
    if not args.skip_bench:  # first, so its peak memory is the predictor's and not the evaluation's
        bench = run_bench(
            sorted(str(p) for p in Path("data/validation").glob("*.csv.gz")),
            bundle=args.bundle,
            fp32_bundle=args.fp32_bundle,
        )
        write_bench(bench, OUT / "bench")
    measured = stamp()
    evaluation = run_eval(
        files,
        OUT / "int8",
        bundle=args.bundle,
        errors=10,
        baselines=["tfidf", "langdetect", "lingua"],
        baseline_train=sorted(str(p) for p in Path("data/train").glob("*.csv.gz")),
    )
    baselines = json.loads((OUT / "int8" / "baselines.json").read_text())
    rows = quality_figures(evaluation.metrics, baselines, list(bundle.schema.task("lang").labels))
    ece = {
        f"{stem}/{head}": m["ece"]
        for stem, heads in evaluation.metrics.items()
        for head, m in heads.items()
        if m["n"] >= 200
    }
    drift = drift_ci = None
    if args.fp32_bundle:
        fp32 = run_eval(files, OUT / "fp32", bundle=args.fp32_bundle, variant="fp32")
        drift = {
            f"{stem}/{head}": evaluation.metrics[stem][head][_drift_key(head)] - m[_drift_key(head)]
            for stem, heads in fp32.metrics.items()
            for head, m in heads.items()
            if head in evaluation.metrics.get(stem, {})
        }
        drift_ci = drift_intervals(drift, evaluation.outcomes, fp32.outcomes)
    summary = {
        "bundle": f"{bundle.name} {bundle.version}",
        **measured,
        "command": command,
        "figures": rows,
        "ece": ece,
        "int8_minus_fp32_macro_f1": drift,
        "int8_minus_fp32_ci95_beyond_half_point": drift_ci,
    }
    if drift is None:  # keep the last measurement, named by the bundle (and machine) it was made on
        summary["int8_minus_fp32_last_measured"] = _last_drift(bundle.metrics.get("evaluation") or {})
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary, evaluation.metrics


def main(argv: list[str] | None = None) -> None:
    from earful.eval.bench import load_bench
    from earful.models.bundle import Bundle

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="default: models/default")
    ap.add_argument("--fp32-bundle", help="an fp32 export of the same model, for the int8-vs-fp32 comparison")
    ap.add_argument("--skip-bench", action="store_true", help="keep the last bench.json (shown with its machine)")
    ap.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: write the README block and the card's evaluation section again from eval/results/",
    )
    args = ap.parse_args(argv)
    bundle = Bundle.load(args.bundle)
    if args.fp32_bundle and not args.render:
        from earful.eval.bench import full_export_of

        try:  # before the long measurement, not after the bench
            full_export_of(bundle, args.fp32_bundle)
        except ValueError as e:
            raise SystemExit(f"earful.eval.results: {e}") from None
    if args.render:
        summary = json.loads((OUT / "summary.json").read_text())
        if summary["bundle"] != f"{bundle.name} {bundle.version}":
            raise SystemExit(
                f"eval/results/summary.json holds the figures of {summary['bundle']}, not of "
                f"{bundle.name} {bundle.version}: measure this bundle (without --render)"
            )
        metrics = json.loads((OUT / "int8" / "metrics.json").read_text())
    else:
        command = ".venv/bin/python -m earful.eval.results" + "".join(
            f" {_shown(a)}" for a in (argv if argv is not None else sys.argv[1:])
        )
        summary, metrics = _measure(args, bundle, command)
    bench_json = OUT / "bench" / "bench.json"
    bench = load_bench(bench_json) if bench_json.exists() else None  # this run's, or the last one with its machine
    block = block_lines(summary, bench)
    write_readme(readme_lines(summary))
    write_results_page(block)
    write_card(bundle.path, card_section(block, metrics, summary), summary)
    print("\n".join(block))


def _shown(arg: str) -> str:
    """An argument as the published command shows it: a path outside the checkout by its name alone, so that the
    README and the model card name no folder of the machine that measured them."""
    path = Path(arg)
    if not path.is_absolute() or not path.exists() or path.resolve().is_relative_to(Path.cwd().resolve()):
        return arg
    return f"…/{path.name}"


def _per_language(metrics: dict) -> str:
    lines = ["| file | head | language | n | macro-F1 / accuracy |", "|---|---|---|---|---|"]
    for stem, head, key in (
        ("xlm_t_umsab", "sentiment", "macro_f1"),
        ("offenseval2020", "troll", "macro_f1"),
        ("lingua_sentences", "lang", "accuracy"),
        ("lingua_word_pairs", "lang", "accuracy"),
    ):
        m = metrics.get(stem, {}).get(head)
        if m:
            for code, v in m["by_lang"].items():
                if code in SET_LANGUAGES.get(stem, (code,)):  # the languages its figure averages over
                    lines.append(f"| {stem} | {head} | {code} | {v['n']} | {v[key]:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
