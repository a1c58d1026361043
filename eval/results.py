"""Regenerate the published figures: README's results section and the bundle's model card.

    .venv/bin/python -m earful.eval.results [--bundle models/default] [--fp32-bundle runs/default-bundle-full]

Runs ``earful eval`` (the same code as the CLI) on the validation files the
targets are defined on, with its baselines on the same rows (TF-IDF + logistic
regression trained on ``data/train``; langdetect and lingua), and ``earful bench``;
writes everything under ``eval/results/`` and replaces the README's text between
the ``results`` markers. The bundle's
MODEL_CARD.md and metrics.json get the same figures (its manifest is rewritten).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from earful.labelled import read_labelled
from earful.tabular import write_rows

OUT = Path("eval/results")
START, END = "<!-- results:start -->", "<!-- results:end -->"
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


def targets(metrics: dict, baselines: dict, languages: list[str]) -> list[dict]:
    """The issue's targets, each with the baselines' figure on the same rows beside it."""
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
                "target": name,
                "value": value,
                "goal": goal,
                "met": None if value is None else value >= goal,
                "file": stem,
                "note": "; ".join(x for x in (note, f"same rows: {refs}" if refs else "") if x),
            }
        )

    add("sentiment macro-F1, mean of the 8 UMSAB languages", 0.69, "xlm_t_umsab", "sentiment", mean_by_lang)
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
    add("troll macro-F1, mean of OffensEval 2020 languages", 0.80, "offenseval2020", "troll", mean_by_lang)
    for stem, goal in (("lingua_sentences", 0.99), ("lingua_word_pairs", 0.90)):
        add(
            f"language accuracy, {stem.split('_', 1)[1].replace('_', ' ')}, mean of head languages",
            goal,
            stem,
            "lang",
            lambda m: mean_by_lang(m, "accuracy", languages),
        )
    return rows


#: Figures made by their own (longer) commands, included when present: (file, command, title).
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


def _measured_elsewhere() -> list[str]:
    lines = []
    for path, command, title in OTHER_RESULTS:
        if path.exists():
            body = path.read_text().strip()
            if body.startswith("#"):  # the file's own title; the section gives one
                body = body.split("\n", 1)[1].strip()
            lines += ["", f"**{title}** (`.venv/bin/{command}`; measured on a 2-core machine):", "", body]
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
    from earful.eval.evaluate import bootstrap_macro_f1_difference

    out = {}
    for key, value in sorted(drift.items(), key=lambda kv: kv[1]):
        stem, head = key.split("/")
        if value < -0.005 and head != "lang":
            boot = bootstrap_macro_f1_difference(fp32_outcomes[stem][head], int8_outcomes[stem][head])
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
        }
    return evaluation.get("int8_minus_fp32_last_measured")


def _table(rows: list[dict]) -> list[str]:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for r in rows:
        v = "–" if r["value"] is None else f"{r['value']:.3f}"
        met = "–" if r["met"] is None else ("yes" if r["met"] else "**no**")
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['target']}{note} | {v} | ≥ {r['goal']} | {met} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    from earful.eval.bench import run_bench, write_bench
    from earful.eval.run import run_eval
    from earful.export.writer import edit_bundle
    from earful.models.bundle import Bundle

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="default: models/default")
    ap.add_argument("--fp32-bundle", help="an fp32 export of the same model, for the int8-vs-fp32 comparison")
    ap.add_argument("--skip-bench", action="store_true")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "inputs"
    work.mkdir(exist_ok=True)
    files = [
        f"data/validation/{stem}.csv.gz" for stem in TARGET_FILES if Path(f"data/validation/{stem}.csv.gz").exists()
    ]
    files += [str(p) for p in split_lingua(work)]
    bundle = Bundle.load(args.bundle)
    bench = None
    if not args.skip_bench:  # first, so its peak memory is the predictor's and not the evaluation's
        bench = run_bench(
            sorted(str(p) for p in Path("data/validation").glob("*.csv.gz")),
            bundle=args.bundle,
            fp32_bundle=args.fp32_bundle,
        )
        write_bench(bench, OUT / "bench")
    evaluation = run_eval(
        files,
        OUT / "int8",
        bundle=args.bundle,
        errors=10,
        baselines=["tfidf", "langdetect", "lingua"],
        baseline_train=sorted(str(p) for p in Path("data/train").glob("*.csv.gz")),
    )
    baselines = json.loads((OUT / "int8" / "baselines.json").read_text())
    rows = targets(evaluation.metrics, baselines, list(bundle.schema.task("lang").labels))
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
        "targets": rows,
        "ece": ece,
        "int8_minus_fp32_macro_f1": drift,
        "int8_minus_fp32_ci95_beyond_half_point": drift_ci,
    }
    if drift is None:  # keep the last measurement, named by the bundle it was made on
        summary["int8_minus_fp32_last_measured"] = _last_drift(bundle.metrics.get("evaluation") or {})
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))

    lines = [
        START,
        "",
        f"Measured on this repository's own validation splits (`data/validation/`) with bundle "
        f"`{bundle.name} {bundle.version}` (int8), by `.venv/bin/python -m earful.eval.results"
        + (f" --fp32-bundle {args.fp32_bundle}" if args.fp32_bundle else "")
        + (" --skip-bench" if args.skip_bench else "")
        + "`, which runs `earful eval`"
        + ("" if args.skip_bench else " and `earful bench`")
        + ". "
        "Full reports: `eval/results/int8/report.md`, `eval/results/bench/bench.md`.",
        "",
    ]
    lines += _table(rows)
    worst = max(ece.items(), key=lambda kv: kv[1]) if ece else None
    lines += [
        "",
        f"Expected calibration error per file and head (n ≥ 200): max {worst[1]:.3f} ({worst[0]}), "
        f"{sum(v <= 0.05 for v in ece.values())} of {len(ece)} at ≤ 0.05 (goal ≤ 0.05)."
        if worst
        else "",
    ]
    if drift:
        lines += _drift_lines(drift, drift_ci)
    elif summary["int8_minus_fp32_last_measured"]:
        last = summary["int8_minus_fp32_last_measured"]
        lines.append(
            f"int8 vs fp32 was not measured by this run (no --fp32-bundle; `make model` writes the fp32 export under "
            f"runs/). Last measured with `{last['bundle']}`:"
        )
        lines += _drift_lines(last["drift"], last["ci95"])
    if (OUT / "bench" / "bench.md").exists():  # this run's, or the last run's when it skipped the bench
        lines += ["", (OUT / "bench" / "bench.md").read_text().split("\n", 2)[2].strip()]
        if not bench:
            lines += ["", "(From the last `earful bench` run, `eval/results/bench/bench.md`: this run skipped it.)"]
    lines += _measured_elsewhere()
    lines += ["", END]
    readme = Path("README.md").read_text()
    if START in readme:
        readme = readme[: readme.index(START)] + "\n".join(lines) + readme[readme.index(END) + len(END) :]
    else:
        readme += "\n## Results\n\n" + "\n".join(lines) + "\n"
    Path("README.md").write_text(readme)

    with edit_bundle(bundle.path) as writer:
        text = writer.read_text("MODEL_CARD.md") or ""
        marker = "\n## Evaluation on validation data\n"
        text = (
            text.split(marker)[0]
            + marker
            + "\n"
            + "\n".join(lines[2:-2])
            + "\n\nPer language (sentiment, troll, language), from `eval/results/int8/metrics.json`:\n\n"
            + _per_language(evaluation.metrics)
            + "\n"
        )
        writer.write_text("MODEL_CARD.md", text)
        writer.update_json("metrics.json", {"evaluation": summary})
    print("\n".join(lines))


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
                lines.append(f"| {stem} | {head} | {code} | {v['n']} | {v[key]:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
